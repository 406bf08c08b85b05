package tlspump

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPump runs a short pump over loopback, and a probe.
func TestPump(t *testing.T) {
	dir := t.TempDir()
	c, err := WriteCert(dir, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Pin, "pin-sha256:") || len(c.Pin) != len("pin-sha256:")+44 {
		t.Fatalf("pin %q", c.Pin)
	}
	if kt, err := CertFileKeyType(c.CertFile); err != nil || kt != "ECDSA P-256" {
		t.Fatalf("key type %q, %v", kt, err)
	}
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(c.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		r   Report
		err error
	}
	got := make(chan res, 1)
	go func() {
		r, err := Receive(ctx, ln, pair)
		got <- res{r, err}
	}()
	s, err := Send(ctx, ln.Addr().String(), "127.0.0.1", roots, 200*time.Millisecond, 64<<10)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	rr := <-got
	if rr.err != nil {
		t.Fatalf("receive: %v", rr.err)
	}
	if rr.r.Bytes != s.Bytes || rr.r.Mbps <= 0 || rr.r.Version != "TLS 1.3" || rr.r.Suite == "" {
		t.Fatalf("receiver %+v, sender %+v", rr.r, s)
	}
	if s.ServerKey != "ECDSA P-256" || s.Suite != rr.r.Suite {
		t.Fatalf("sender %+v", s)
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		conn, err := ln2.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{pair}})
		_ = tc.HandshakeContext(ctx)
		_, _ = tc.Read(make([]byte, 1))
	}()
	p, err := Probe(ctx, ln2.Addr().String(), "127.0.0.1")
	if err != nil || p.Version != "TLS 1.3" || p.ServerKey != "ECDSA P-256" {
		t.Fatalf("probe %+v, %v", p, err)
	}
}
