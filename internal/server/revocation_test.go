package server

import (
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRevocation(t *testing.T) {
	ca, err := pki.NewCA("Lab CA")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := pki.Client(ca, pki.Options{CommonName: "good"})
	bad, _ := pki.Client(ca, pki.Options{CommonName: "bad"})
	crl, err := pki.CRL(ca, 1, time.Now().Add(24*time.Hour), bad.Cert)
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeFile(t, "ca.pem", ca.CertPEM())
	rev, err := loadRevocation([]string{writeFile(t, "crl.pem", crl)}, caFile, time.Now(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	chain := func(c *pki.Cert) [][]*x509.Certificate { return [][]*x509.Certificate{{c.Cert, ca.Cert}} }
	if err := rev.check(chain(good)); err != nil {
		t.Fatalf("good certificate refused: %v", err)
	}
	err = rev.check(chain(bad))
	if code, _ := winerr.CodeOf(err); code != winerr.Revoked {
		t.Fatalf("revoked certificate: %v (code %#x), want CRYPT_E_REVOKED", err, code)
	}

	// A CRL from another CA is refused at load: it is the wrong file.
	other, _ := pki.NewCA("Other CA")
	otherCRL, _ := pki.CRL(other, 1, time.Now().Add(time.Hour), bad.Cert)
	_, err = loadRevocation([]string{writeFile(t, "other.pem", otherCRL)}, caFile, time.Now(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if code, _ := winerr.CodeOf(err); err == nil || code != winerr.RevocationOffline {
		t.Fatalf("CRL of another CA: %v, want a 0x80092013 error", err)
	}
	_, err = loadRevocation([]string{filepath.Join(t.TempDir(), "missing.pem")}, caFile, time.Now(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if code, _ := winerr.CodeOf(err); code != winerr.FileNotFound {
		t.Fatalf("missing CRL: %v (code %#x)", err, code)
	}
	_, err = loadRevocation([]string{writeFile(t, "junk.pem", []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))}, caFile, time.Now(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("a CRL that does not parse was accepted")
	}
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Now()
	if ok, _ := l.allow("a", t0); !ok {
		t.Fatal("first line not allowed")
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow("a", t0.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatal("a second line of the same kind within logEvery was allowed")
		}
	}
	if ok, _ := l.allow("b", t0); !ok {
		t.Fatal("another kind was held back")
	}
	ok, left := l.allow("a", t0.Add(logEvery))
	if !ok || left != 5 {
		t.Fatalf("after logEvery: allowed %v, left out %d, want true 5", ok, left)
	}
}
