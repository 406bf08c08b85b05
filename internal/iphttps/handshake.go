package iphttps

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/iphttps/iphttps/internal/batchio"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Conn is an IP-HTTPS connection over TLS. Under the TLS layer a cork lets
// a batch of packets leave in one system call and reads that do not wait
// for the network (package batchio).
type Conn struct {
	*tls.Conn
	cork *batchio.Conn
	host string
	// In TLS 1.3 the server judges the client certificate after the client
	// finished the handshake: whether it asked for one explains a failure
	// on the first read.
	asked    atomic.Bool
	haveCert bool
}

// Handshake is the second phase: TLS with cfg on raw (TLSConfig: the
// Windows checks of the server certificate). The client sends its first
// certificate in cfg.Certificates, if any, whatever CAs the server names,
// as Windows does; a server asking for one the client lacks gives
// SEC_I_INCOMPLETE_CREDENTIALS (0x90320). raw is closed on failure.
func Handshake(ctx context.Context, raw net.Conn, cfg *tls.Config, tr *Trace) (*Conn, error) {
	tr = tr.hooks()
	c := &Conn{cork: batchio.New(raw, nil), host: cfg.ServerName}
	cfg = cfg.Clone()
	certs := cfg.Certificates
	cfg.Certificates = nil
	c.haveCert = len(certs) > 0
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c.asked.Store(true)
		if h := tr.CertificateRequested; h != nil {
			h()
		}
		if len(certs) > 0 {
			return &certs[0], nil
		}
		return &tls.Certificate{}, nil
	}
	c.Conn = tls.Client(c.cork, cfg)
	err := c.HandshakeContext(ctx)
	if h := tr.TLSHandshakeDone; h != nil {
		h(c.ConnectionState(), err)
	}
	if err != nil {
		raw.Close()
		return nil, c.explain(err)
	}
	return c, nil
}

// explain adds to a failure of the handshake, or of a read after it, what
// the client knows about it.
func (c *Conn) explain(err error) error {
	if c.asked.Load() && !c.haveCert {
		return winerr.New(winerr.IncompleteCredentials,
			fmt.Errorf("the server requires a client certificate (authentication mode certificates) and none is configured (--cert/--key): %w", err))
	}
	return fmt.Errorf("TLS with %s: %w", c.host, err)
}
