package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterMasters is how many masters NewCluster starts.
const ClusterMasters = 3

// Cluster is a real Redis Cluster for one test: ClusterMasters masters,
// no replicas, all redis-server processes on free loopback ports (and bus
// ports), joined with redis-cli --cluster create and killed at cleanup.
type Cluster struct {
	// Addrs are the masters' host:port, for REDIS_CLUSTER_ADDRS: their
	// TLS ports with WithTLS.
	Addrs []string
	// TLS is the CA and certificate the nodes serve, with WithTLS.
	TLS *TLSFiles
}

// Option changes the servers NewCluster or NewSentinel starts.
type Option func(*options)

type options struct {
	tls *TLSFiles
}

// WithTLS makes every server serve TLS (to clients, between nodes, to
// replicas and Sentinels) with a certificate for 127.0.0.1 that a CA of
// its own signed (the TLS field of Cluster and Sentinel); clients present
// no certificate. The addresses given out are the TLS ports.
func WithTLS(t testing.TB) Option {
	return func(o *options) {
		f := NewTLSFiles(t)
		o.tls = &f
	}
}

// withTLS returns args with the redis-server arguments that serve TLS
// with f on a free port of its own, and that port; args and 0 when f is
// nil.
func withTLS(t testing.TB, f *TLSFiles, args []string) ([]string, int) {
	t.Helper()
	if f == nil {
		return args, 0
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return append(args, "--tls-port", strconv.Itoa(port), "--tls-auth-clients", "no", "--tls-replication", "yes",
		"--tls-cert-file", f.Cert, "--tls-key-file", f.Key, "--tls-ca-cert-file", f.CA), port
}

// clientAddr is the address clients use for p: its TLS port, if any.
func clientAddr(p *process, tlsPort int) string {
	if tlsPort == 0 {
		return p.addr
	}
	host, _, _ := net.SplitHostPort(p.addr)
	return net.JoinHostPort(host, strconv.Itoa(tlsPort))
}

// tlsConfig is a client's TLS configuration trusting f's CA.
func tlsConfig(t testing.TB, f *TLSFiles) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// NewCluster starts a Cluster for t and waits until every node reports
// cluster_state:ok. It skips t when redis-server or redis-cli is missing,
// and fails it instead with REQUIRE_REDIS=1.
func NewCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err == nil {
		_, err = exec.LookPath("redis-cli")
	}
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("redistest: %s=1 and redis-server or redis-cli is not on PATH: %v", EnvRequire, err)
		}
		t.Skipf("redistest: redis-server or redis-cli is not on PATH (%v): the Cluster test needs real servers", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Cluster{TLS: o.tls}
	var plain []string // where the readiness probes go
	for i := range ClusterMasters {
		bus, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		args := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "2000",
		}
		if c.TLS != nil {
			args = append(args, "--tls-cluster", "yes")
		}
		args, tlsPort := withTLS(t, c.TLS, args)
		p, err := startFree(t, server, args)
		if err != nil {
			t.Fatalf("redistest: start cluster node %d: %v", i, err)
		}
		plain = append(plain, p.addr)
		c.Addrs = append(c.Addrs, clientAddr(p, tlsPort))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	args := []string{"--cluster", "create"}
	if c.TLS != nil {
		args = append([]string{"--tls", "--cacert", c.TLS.CA}, args...)
	}
	args = append(args, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range plain {
		rc := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && infoField(info, "cluster_state") == "ok" && infoField(info, "cluster_known_nodes") == strconv.Itoa(ClusterMasters) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: node %s never reported the cluster ok: %v\n%s", a, err, info)
			}
			time.Sleep(50 * time.Millisecond) // nothing signals it
		}
		_ = rc.Close()
	}
	return c
}

// URL is the form of c that REDIS_CLUSTER_ADDRS takes.
func (c *Cluster) URL() string { return strings.Join(c.Addrs, ",") }

// Client returns a Cluster client for c, closed at t's cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	o := &redis.ClusterOptions{Addrs: c.Addrs}
	if c.TLS != nil {
		o.TLSConfig = tlsConfig(t, c.TLS)
	}
	rc := redis.NewClusterClient(o)
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// MasterOf returns the host:port of the master that holds key's slot.
func (c *Cluster) MasterOf(t testing.TB, rc *redis.ClusterClient, key string) string {
	t.Helper()
	m, err := rc.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatalf("redistest: master of %q: %v", key, err)
	}
	return m.Options().Addr
}
