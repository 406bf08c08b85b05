package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

// tcpPair returns the two ends of a loopback TCP connection. (net.Pipe
// has no buffer: a TLS 1.2 server refusing a client certificate writes
// its alert while the client is still writing the rest of its flight, and
// both wait.)
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	return server, client
}

// serverHandshake runs the server's side of a TLS handshake with cfg on a
// loopback connection, as serve does (HandshakeContext bounded by a
// context; here ctxTimeout), with peer on the other end, and returns the
// server's error. connTimeout is a deadline on the server's end of the
// connection. A server that accepts the handshake sends one byte, which
// tells a TLS client so.
func serverHandshake(t *testing.T, cfg *tls.Config, ctxTimeout, connTimeout time.Duration, peer func(net.Conn)) error {
	t.Helper()
	srv, cli := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cli.Close()
		cli.SetDeadline(time.Now().Add(10 * time.Second))
		peer(cli)
	}()
	srv.SetDeadline(time.Now().Add(connTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
	defer cancel()
	tc := tls.Server(srv, cfg)
	err := tc.HandshakeContext(ctx)
	if err == nil {
		if _, werr := tc.Write([]byte{1}); werr != nil {
			t.Errorf("server: write after the handshake: %v", werr)
		}
	}
	srv.Close()
	<-done
	return err
}

// tlsClient is a peer running a TLS client with cfg; it stores the
// client's error in *err. Like the iphttps client (Client.dial), it sends
// its certificate whatever CAs the server names (crypto/tls on its own
// would send none for a foreign CA). After its handshake the client reads
// the server's byte: in TLS 1.3 the server judges the client's
// certificate after the client has finished, and the client hears of a
// refusal only on that read.
func tlsClient(cfg *tls.Config, err *error) func(net.Conn) {
	cfg = cfg.Clone()
	certs := cfg.Certificates
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if len(certs) > 0 {
			return &certs[0], nil
		}
		return &tls.Certificate{}, nil
	}
	return func(c net.Conn) {
		tc := tls.Client(c, cfg)
		e := tc.Handshake()
		if e == nil {
			_, e = tc.Read(make([]byte, 1))
		}
		*err = e
	}
}

// TestHandshakeCodeOfRealHandshakes feeds handshakeCode the errors that
// crypto/tls really returns, for a server in auth mode certificates with
// a CRL configured the way an operator does it (FromConfig from files),
// so a change in the library's errors (types, wrapping, wording) shows
// here rather than as a wrong code in the server's counters.
func TestHandshakeCodeOfRealHandshakes(t *testing.T) {
	dir := t.TempDir()
	serverCA, _ := pki.NewCA("server CA")
	clientCA, _ := pki.NewCA("client CA")
	otherCA, _ := pki.NewCA("some other CA")
	now := time.Now()
	issue := func(ca *pki.Cert, o pki.Options) *tls.Certificate {
		t.Helper()
		c, err := pki.Client(ca, o)
		if err != nil {
			t.Fatal(err)
		}
		tc := c.TLS()
		return &tc
	}
	good := issue(clientCA, pki.Options{CommonName: "good.example.test"})
	unknown := issue(otherCA, pki.Options{CommonName: "unknown.example.test"})
	expired := issue(clientCA, pki.Options{CommonName: "expired.example.test", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	revoked := issue(clientCA, pki.Options{CommonName: "revoked.example.test"})

	server, err := pki.Server(serverCA, pki.Options{CommonName: "da.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := server.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := pki.CRL(clientCA, 1, now.Add(24*time.Hour), revoked.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	c := config.DefaultServer()
	c.Prefix, c.Cert, c.Key = "2001:db8:1::/64", certPath, keyPath
	c.ControlSocket = filepath.Join(dir, "s.sock")
	c.AuthMode = "certificates"
	c.ClientCA = writeFile(t, "client-ca.pem", clientCA.CertPEM())
	c.CRL = []string{writeFile(t, "client-ca.crl", crl)}
	o, err := FromConfig(c, quiet)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)

	// Clients with or without a certificate, over each TLS version: the
	// server learns of the certificate at different points of the two.
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range []struct {
			name string
			cert *tls.Certificate
			want uint32 // winerr.Success: the handshake succeeds
		}{
			{"accepted certificate", good, winerr.Success},
			{"no certificate", nil, winerr.IncompleteCredentials},
			{"certificate from an unknown CA", unknown, winerr.CertUntrustedRoot},
			{"expired certificate", expired, winerr.CertExpired},
			{"revoked certificate", revoked, winerr.Revoked},
		} {
			t.Run(tls.VersionName(version)+"/"+tc.name, func(t *testing.T) {
				cfg := &tls.Config{ServerName: "da.example.test", RootCAs: roots, MinVersion: version, MaxVersion: version}
				if tc.cert != nil {
					cfg.Certificates = []tls.Certificate{*tc.cert}
				}
				var clientErr error
				err := serverHandshake(t, o.TLS, 10*time.Second, 10*time.Second, tlsClient(cfg, &clientErr))
				if tc.want == winerr.Success {
					if err != nil || clientErr != nil {
						t.Fatalf("server: %v; client: %v; want both to succeed", err, clientErr)
					}
					return
				}
				if err == nil || clientErr == nil {
					t.Fatalf("server: %v; client: %v; want both to fail", err, clientErr)
				}
				if got := handshakeCode(err); got != tc.want {
					t.Errorf("handshakeCode(%q) = %s, want %s", err, winerr.Hex(got), winerr.Hex(tc.want))
				}
			})
		}
	}

	// Peers that are not TLS clients.
	for _, tc := range []struct {
		name                    string
		ctxTimeout, connTimeout time.Duration
		peer                    func(net.Conn)
		want                    uint32
	}{
		{"plain HTTP", 10 * time.Second, 10 * time.Second, func(c net.Conn) {
			c.Write([]byte("POST /IPHTTPS HTTP/1.1\r\nHost: da.example.test\r\nContent-Length: 18446744073709551615\r\n\r\n"))
		}, winerr.IllegalMessage},
		{"gone before a byte", 10 * time.Second, 10 * time.Second, func(c net.Conn) {}, winerr.ConnReset},
		{"gone inside the ClientHello", 10 * time.Second, 10 * time.Second, func(c net.Conn) {
			c.Write([]byte{22, 3, 1, 0, 200, 1, 0, 0}) // a handshake record of 200 bytes, cut short
		}, winerr.ConnReset},
		{"silent past the handshake timeout", 50 * time.Millisecond, 10 * time.Second, func(c net.Conn) {
			c.Read(make([]byte, 1)) // until the server gives up and closes
		}, winerr.TimedOut},
		{"silent past a deadline on the connection", 10 * time.Second, 50 * time.Millisecond, func(c net.Conn) {
			c.Read(make([]byte, 1))
		}, winerr.TimedOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := serverHandshake(t, o.TLS, tc.ctxTimeout, tc.connTimeout, tc.peer)
			if err == nil {
				t.Fatal("the handshake succeeded")
			}
			if got := handshakeCode(err); got != tc.want {
				t.Errorf("handshakeCode(%q) = %s, want %s", err, winerr.Hex(got), winerr.Hex(tc.want))
			}
		})
	}
}
