//go:build unix

package worker

import (
	"errors"
	"syscall"
)

// processExists reports whether a process with pid exists on this
// machine: kill(pid, 0) fails with ESRCH only when none does (EPERM means
// it exists, as someone else's).
func processExists(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
