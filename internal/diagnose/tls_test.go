package diagnose

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/iphttps/iphttpstest"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCheckTLS(t *testing.T) {
	p := newPKI(t)
	cert := p.server.TLS()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r := newResponder(t, iphttpstest.Options{Cert: &cert})
	c, hs := checkTLS(ctx, dial(t, r.Addr().String()), "da.example.test", iphttps.NameRuleWindows, nil)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "version", "TLS 1.3")
	wantSaw(t, c, "cipher suite", "TLS_")
	wantSaw(t, c, "client certificate", "not requested")
	if hs == nil || len(hs.State.PeerCertificates) != 1 {
		t.Fatalf("handshake state %+v", hs)
	}

	// Certificates mode over TLS 1.2: the server ends the handshake.
	r = newResponder(t, iphttpstest.Options{Cert: &cert, ClientCAs: p.roots, MaxTLS: tls.VersionTLS12})
	c, _ = checkTLS(ctx, dial(t, r.Addr().String()), "da.example.test", iphttps.NameRuleWindows, nil)
	wantCheck(t, c, Fail, int64(winerr.IncompleteCredentials))

	// With a client certificate from the CA it works.
	cl, err := pki.Client(p.ca, pki.Options{CommonName: "cli1.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = checkTLS(ctx, dial(t, r.Addr().String()), "da.example.test", iphttps.NameRuleWindows, []tls.Certificate{cl.TLS()})
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "client certificate", "CN=cli1.example.test")

	// With a certificate from a CA the server does not trust, the server's
	// alert (unknown_ca) is all the client learns: 0x80090326.
	other, err := pki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := pki.Client(other, pki.Options{CommonName: "cli2.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = checkTLS(ctx, dial(t, r.Addr().String()), "da.example.test", iphttps.NameRuleWindows, []tls.Certificate{foreign.TLS()})
	wantCheck(t, c, Fail, int64(winerr.IllegalMessage))
	if !strings.Contains(c.Cause, "aborted the TLS handshake") {
		t.Errorf("foreign client certificate: cause %q", c.Cause)
	}

	// Over TLS 1.3 the refusal comes after the handshake: a warning,
	// then the request check fails with 0x90320.
	r = newResponder(t, iphttpstest.Options{Cert: &cert, ClientCAs: p.roots})
	c, hs = checkTLS(ctx, dial(t, r.Addr().String()), "da.example.test", iphttps.NameRuleWindows, nil)
	wantCheck(t, c, Warn, int64(winerr.IncompleteCredentials))
	tg, _ := iphttps.ParseURL("https://da.example.test/IPHTTPS", false, false)
	c, _ = checkPOST(ctx, hs.Conn, tg, hs)
	wantCheck(t, c, Fail, int64(winerr.IncompleteCredentials))

	// Not TLS at all.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
		}
	}()
	c, _ = checkTLS(ctx, dial(t, ln.Addr().String()), "da.example.test", iphttps.NameRuleWindows, nil)
	if c.Status != Fail || !strings.Contains(c.Cause, "does not speak TLS") {
		t.Fatalf("plain server: %s %s", c.Status, c.Cause)
	}
}

// issue makes a server certificate from ca with o (CommonName defaults to
// da.example.test).
func issue(t *testing.T, ca *pki.Cert, o pki.Options) []*x509.Certificate {
	t.Helper()
	if o.CommonName == "" {
		o.CommonName = "da.example.test"
	}
	c, err := pki.Server(ca, o)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{c.Cert}
}

func TestCheckCertChain(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	c, chains := checkCertChain([]*x509.Certificate{p.server.Cert}, p.roots, []*x509.Certificate{p.ca.Cert}, "--ca test", "", now)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "chain", "CN=da.example.test <- CN=diagnose test CA")
	if len(chains) == 0 {
		t.Fatal("no verified chain")
	}

	other, err := pki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	c, chains = checkCertChain(issue(t, other, pki.Options{}), p.roots, []*x509.Certificate{p.ca.Cert}, "--ca test", "", now)
	wantCheck(t, c, Fail, int64(winerr.CertUntrustedRoot))
	if chains != nil || !strings.Contains(c.Cause, "CN=another CA") || strings.Contains(c.Cause, "inspects TLS") {
		t.Errorf("untrusted: %s", c.Cause)
	}
	c, _ = checkCertChain(issue(t, other, pki.Options{}), p.roots, nil, "--ca test", "http://192.0.2.80:3128", now)
	wantCheck(t, c, Fail, int64(winerr.CertUntrustedRoot))
	if !strings.Contains(c.Cause, "inspects TLS") {
		t.Errorf("through a proxy: %s", c.Cause)
	}

	self, err := pki.Server(nil, pki.Options{CommonName: "da.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = checkCertChain([]*x509.Certificate{self.Cert}, p.roots, []*x509.Certificate{p.ca.Cert}, "--ca test", "", now)
	wantCheck(t, c, Fail, int64(winerr.CertUntrustedRoot))
	if !strings.Contains(c.Cause, "self-signed") {
		t.Errorf("self-signed cause: %s", c.Cause)
	}

	// An expired certificate from the trusted CA: the chain is fine, the
	// validity check reports the expiry.
	expired := issue(t, p.ca, pki.Options{NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(0, 0, -1)})
	c, _ = checkCertChain(expired, p.roots, []*x509.Certificate{p.ca.Cert}, "--ca test", "", now)
	wantCheck(t, c, Pass, 0)
	if !strings.Contains(c.Cause, "signatures alone") {
		t.Errorf("expired chain note: %s", c.Cause)
	}
	// Judged by dates when they overlap with the CA's.
	recent := issue(t, p.ca, pki.Options{NotBefore: now.Add(-30 * time.Minute), NotAfter: now.Add(-time.Minute)})
	c, _ = checkCertChain(recent, p.roots, nil, "--ca test", "", now)
	wantCheck(t, c, Pass, 0)
	if !strings.Contains(c.Cause, "within the validity") {
		t.Errorf("expired chain note: %s", c.Cause)
	}
	// Without the roots' list (system roots) and no common period: a warning.
	c, _ = checkCertChain(expired, p.roots, nil, "system roots", "", now)
	wantCheck(t, c, Warn, int64(winerr.CertUntrustedRoot))
	// And an expired certificate from an untrusted CA fails.
	c, _ = checkCertChain(issue(t, other, pki.Options{NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(0, 0, -1)}), p.roots, []*x509.Certificate{p.ca.Cert}, "--ca test", "", now)
	wantCheck(t, c, Fail, int64(winerr.CertUntrustedRoot))
}

func TestCheckCertValidity(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	wantCheck(t, checkCertValidity([]*x509.Certificate{p.server.Cert}, now), Pass, 0)

	expired := issue(t, p.ca, pki.Options{NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(0, 0, -1)})
	c := checkCertValidity(expired, now)
	wantCheck(t, c, Fail, int64(winerr.CertExpired))
	if !strings.Contains(c.Cause, "expired on") {
		t.Errorf("cause %s", c.Cause)
	}

	future := issue(t, p.ca, pki.Options{NotBefore: now.Add(48 * time.Hour), NotAfter: now.AddDate(1, 0, 0)})
	c = checkCertValidity(future, now)
	wantCheck(t, c, Fail, int64(winerr.CertExpired))
	if !strings.Contains(c.Fix, "clock") {
		t.Errorf("fix %s", c.Fix)
	}

	soon := issue(t, p.ca, pki.Options{NotAfter: now.Add(3 * 24 * time.Hour)})
	wantCheck(t, checkCertValidity(soon, now), Warn, int64(winerr.CertExpired))
}

func TestCheckCertName(t *testing.T) {
	p := newPKI(t)
	const host = "da.example.test"
	c := checkCertName(p.server.Cert, host, iphttps.NameRuleWindows)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "subject alternative names", "da.example.test")

	for _, tc := range []struct {
		name string
		o    pki.Options
	}{
		{"CN is another name", pki.Options{CommonName: "other.example.test"}},
		{"SANs without the host", pki.Options{CommonName: host, DNSNames: []string{"other.example.test"}}},
		{"SAN-only (no CN)", pki.Options{CommonName: "", DNSNames: []string{host}}},
	} {
		var leaf *x509.Certificate
		if tc.o.CommonName == "" {
			c, err := pki.Server(p.ca, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			leaf = c.Cert
		} else {
			leaf = issue(t, p.ca, tc.o)[0]
		}
		c := checkCertName(leaf, host, iphttps.NameRuleWindows)
		if c.Status != Fail || c.Code == nil || uint32(*c.Code) != winerr.NoMoreItems {
			t.Errorf("%s: %s %v (%s)", tc.name, c.Status, c.Code, c.Cause)
		}
	}

	// The standard rule looks at the SANs only.
	sanOnly := issue(t, p.ca, pki.Options{CommonName: "other", DNSNames: []string{host}})[0]
	wantCheck(t, checkCertName(sanOnly, host, iphttps.NameRuleStandard), Pass, 0)
	wantCheck(t, checkCertName(sanOnly, host, iphttps.NameRuleWindows), Fail, int64(winerr.NoMoreItems))

	// Extra subject information: KB2980635 names it; iphttps accepts it.
	extra := issue(t, p.ca, pki.Options{Organization: "Example Corp"})[0]
	c = checkCertName(extra, host, iphttps.NameRuleWindows)
	wantCheck(t, c, Warn, int64(winerr.NoMoreItems))
	if !strings.Contains(c.Cause, "O=Example Corp") {
		t.Errorf("cause %s", c.Cause)
	}
}

func TestCheckCertUsage(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	c := checkCertUsage([]*x509.Certificate{p.server.Cert}, p.roots, true, now)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "extended key usage", "serverAuth")

	clientOnly := issue(t, p.ca, pki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	c = checkCertUsage(clientOnly, p.roots, true, now)
	wantCheck(t, c, Fail, int64(winerr.NoMoreItems))
	if !strings.Contains(c.Cause, "0x800b0110") {
		t.Errorf("cause %s", c.Cause)
	}
	// Even when the chain is not trusted, the leaf's usage is judged.
	c = checkCertUsage(clientOnly, nil, false, now)
	wantCheck(t, c, Fail, int64(winerr.NoMoreItems))
}

// crlServer serves a CRL from ca listing revoked serials (and next update
// at next) at /ca.crl.
func crlServer(t *testing.T, ca *pki.Cert, next time.Time, revoked ...*big.Int) string {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: next}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ca.crl" {
			http.NotFound(w, r)
			return
		}
		w.Write(der)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/ca.crl"
}

func TestCheckRevocation(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{}
	verified := func(leaf *x509.Certificate) [][]*x509.Certificate {
		return [][]*x509.Certificate{{leaf, p.ca.Cert}}
	}

	c := checkRevocation(ctx, hc, []*x509.Certificate{p.server.Cert}, verified(p.server.Cert), now)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "CRL distribution points", "none")

	good := crlServer(t, p.ca, now.Add(24*time.Hour))
	leaf := issue(t, p.ca, pki.Options{CRLDistributionPoints: []string{good}})[0]
	c = checkRevocation(ctx, hc, []*x509.Certificate{leaf}, verified(leaf), now)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "CRL "+good, "signature OK")

	// A CRL that lists this very certificate (the check reads the
	// distribution points from the parsed certificate).
	leaf = issue(t, p.ca, pki.Options{})[0]
	leaf.CRLDistributionPoints = []string{crlServer(t, p.ca, now.Add(24*time.Hour), leaf.SerialNumber)}
	c = checkRevocation(ctx, hc, []*x509.Certificate{leaf}, verified(leaf), now)
	wantCheck(t, c, Fail, int64(winerr.Revoked))

	offline := "http://" + closedPort(t) + "/ca.crl"
	leaf = issue(t, p.ca, pki.Options{CRLDistributionPoints: []string{offline}})[0]
	c = checkRevocation(ctx, hc, []*x509.Certificate{leaf}, verified(leaf), now)
	wantCheck(t, c, Warn, int64(winerr.RevocationOffline))
	if !strings.Contains(c.Cause, "Windows 7") {
		t.Errorf("cause %s", c.Cause)
	}

	stale := crlServer(t, p.ca, now.Add(-time.Minute))
	leaf = issue(t, p.ca, pki.Options{CRLDistributionPoints: []string{stale}})[0]
	c = checkRevocation(ctx, hc, []*x509.Certificate{leaf}, verified(leaf), now)
	wantCheck(t, c, Warn, int64(winerr.RevocationOffline))

	other, err := pki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	forged := crlServer(t, other, now.Add(24*time.Hour))
	leaf = issue(t, p.ca, pki.Options{CRLDistributionPoints: []string{forged}})[0]
	c = checkRevocation(ctx, hc, []*x509.Certificate{leaf}, verified(leaf), now)
	wantCheck(t, c, Warn, int64(winerr.RevocationOffline))
}
