package providers

import (
	"crypto/tls"
	"time"
)

// NewFastClientDial is NewFastClient with the dialer replaced.
var NewFastClientDial = newFastClient

// SetIdleCheck sets how long f's connections sit idle before a call checks
// them.
func SetIdleCheck(f *FastClient, d time.Duration) { f.idleCheck = d }

// SetTLSConfig sets the TLS configuration of f's connections; call it
// before f's first call.
func SetTLSConfig(f *FastClient, c *tls.Config) { f.tlsConfig = c }
