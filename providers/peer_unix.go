//go:build unix

package providers

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// closedByPeer reports whether an idle connection can no longer carry a
// request: the peer closed or reset it, or sent bytes nobody asked for (a
// TLS close_notify, a stray reply). It peeks without blocking, one system
// call, and consumes nothing.
func closedByPeer(c net.Conn) bool {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = !errors.Is(err, syscall.EAGAIN) || n > 0
		return true // never wait: the answer is now
	})
	return closed || err != nil
}
