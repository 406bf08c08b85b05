package iphttps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

// tcpPair returns the two ends of a loopback TCP connection. (net.Pipe
// has no buffer: a TLS 1.2 peer refusing a certificate writes its alert
// while the other side is still writing the rest of its flight, and both
// wait.)
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

// clientHandshake runs the client's side of a TLS handshake with cfg
// against peer (Handshake), then reads the first byte from the server, as
// the client reads the answer to its request: in TLS 1.3 the server judges
// the client certificate after the client has finished, and the client
// hears of a refusal on that read. It returns crypto/tls's error and the
// same told as the client tells it.
func clientHandshake(t *testing.T, cfg *tls.Config, peer func(net.Conn)) (raw, told error) {
	t.Helper()
	srv, cli := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer srv.Close()
		srv.SetDeadline(time.Now().Add(10 * time.Second))
		peer(srv)
	}()
	defer func() { <-done }()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &Trace{TLSHandshakeDone: func(_ tls.ConnectionState, err error) { raw = err }}
	tc, told := Handshake(ctx, cli, cfg, tr)
	if told != nil {
		return raw, told
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, raw = tc.Read(make([]byte, 1)); raw != nil {
		return raw, tc.explain(raw)
	}
	return nil, nil
}

// tlsServer is a peer running a TLS server with cfg that, once the
// handshake succeeds, sends one byte.
func tlsServer(cfg *tls.Config) func(net.Conn) {
	return func(c net.Conn) {
		tc := tls.Server(c, cfg)
		if tc.Handshake() == nil {
			tc.Write([]byte{1})
		}
	}
}

// TestHandshakeCodeOfRealHandshakes classifies (winerr.Classify, as the
// client's status does) the errors crypto/tls really gives the client: its
// own verdict on the server's certificate (TLSConfig with the Windows name
// rule), and the server's verdict on the client's certificate, which
// arrives as an alert. A change in the library's errors or alerts shows
// here rather than as a wrong Last Error Code.
func TestHandshakeCodeOfRealHandshakes(t *testing.T) {
	const host = "da.example.test"
	ca, _ := pki.NewCA("server CA")
	otherCA, _ := pki.NewCA("some other CA")
	clientCA, _ := pki.NewCA("client CA")
	now := time.Now()
	serverCert := func(issuer *pki.Cert, o pki.Options) tls.Certificate {
		t.Helper()
		c, err := pki.Server(issuer, o)
		if err != nil {
			t.Fatal(err)
		}
		return c.TLS()
	}
	clientCert := func(issuer *pki.Cert) tls.Certificate {
		t.Helper()
		c, err := pki.Client(issuer, pki.Options{CommonName: "client.example.test"})
		if err != nil {
			t.Fatal(err)
		}
		return c.TLS()
	}
	good := serverCert(ca, pki.Options{CommonName: host})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCA.Cert)

	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range []struct {
			name       string
			server     tls.Certificate
			clientAuth bool              // the server requires a certificate from clientCA
			cert       []tls.Certificate // the client's
			want       uint32            // winerr.Success: the handshake succeeds
		}{
			{"accepted", good, false, nil, winerr.Success},
			{"server certificate from an unknown CA", serverCert(otherCA, pki.Options{CommonName: host}), false, nil, winerr.CertUntrustedRoot},
			{"expired server certificate", serverCert(ca, pki.Options{CommonName: host, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}), false, nil, winerr.CertExpired},
			{"server certificate for another name", serverCert(ca, pki.Options{CommonName: "other.example.test"}), false, nil, winerr.NoMoreItems},
			{"accepted client certificate", good, true, []tls.Certificate{clientCert(clientCA)}, winerr.Success},
			{"no client certificate", good, true, nil, winerr.IncompleteCredentials},
			// The server's alert (unknown_ca) is all the client learns.
			{"client certificate from an unknown CA", good, true, []tls.Certificate{clientCert(otherCA)}, winerr.IllegalMessage},
		} {
			t.Run(tls.VersionName(version)+"/"+tc.name, func(t *testing.T) {
				scfg := &tls.Config{Certificates: []tls.Certificate{tc.server}, MinVersion: version, MaxVersion: version}
				if tc.clientAuth {
					scfg.ClientAuth, scfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
				}
				_, err := clientHandshake(t, TLSConfig(host, roots, NameRuleWindows, tc.cert, nil), tlsServer(scfg))
				if got := winerr.Classify(err); got != tc.want {
					t.Errorf("Classify(%q) = %s, want %s", err, winerr.Hex(got), winerr.Hex(tc.want))
				}
			})
		}
	}

	// Without a certificate the client's note that the server asked for
	// one gives 0x90320 (above). The alert alone gives it only in TLS 1.3
	// (certificate_required); TLS 1.2 has no such alert and crypto/tls
	// sends handshake_failure. crypto/tls reports the peer's alerts with
	// an unexported type, which Classify reads by reflection.
	for _, tc := range []struct {
		version uint16
		want    uint32
	}{
		{tls.VersionTLS12, winerr.IllegalMessage},
		{tls.VersionTLS13, winerr.IncompleteCredentials},
	} {
		t.Run(tls.VersionName(tc.version)+"/the alert for no client certificate", func(t *testing.T) {
			scfg := &tls.Config{Certificates: []tls.Certificate{good}, ClientAuth: tls.RequireAndVerifyClientCert,
				ClientCAs: clientCAs, MinVersion: tc.version, MaxVersion: tc.version}
			raw, _ := clientHandshake(t, TLSConfig(host, roots, NameRuleWindows, nil, nil), tlsServer(scfg))
			if got := winerr.Classify(raw); got != tc.want {
				t.Errorf("Classify(%q) = %s, want %s", raw, winerr.Hex(got), winerr.Hex(tc.want))
			}
		})
	}

	// A server that does not speak TLS: Classify has no TLS code for it
	// and gives its catch-all for "reached the server, but IP-HTTPS did
	// not come up".
	t.Run("plain HTTP server", func(t *testing.T) {
		_, err := clientHandshake(t, TLSConfig(host, roots, NameRuleWindows, nil, nil), func(c net.Conn) {
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		})
		if got := winerr.Classify(err); got != winerr.NoData {
			t.Errorf("Classify(%q) = %s, want %s", err, winerr.Hex(got), winerr.Hex(winerr.NoData))
		}
	})
}
