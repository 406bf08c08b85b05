package iphttps

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

func TestNameRule(t *testing.T) {
	ca, _ := pki.NewCA("ca")
	mk := func(o pki.Options) *x509.Certificate {
		c, err := pki.Server(ca, o)
		if err != nil {
			t.Fatal(err)
		}
		return c.Cert
	}
	host := "da.example.test"
	cases := []struct {
		name string
		cert *x509.Certificate
		win  bool // passes the Windows rule
		std  bool // passes the standard rule
	}{
		{"cn+san", mk(pki.Options{CommonName: host}), true, true},
		{"cn only", mk(pki.Options{CommonName: host, DNSNames: []string{}}), true, false},
		{"wildcard", mk(pki.Options{CommonName: "*.example.test"}), true, true},
		{"wildcard two labels", mk(pki.Options{CommonName: "*.test"}), false, false},
		{"cn mismatch, san ok", mk(pki.Options{CommonName: "other.example.test", DNSNames: []string{host}}), false, true},
		{"cn ok, wrong san", mk(pki.Options{CommonName: host, DNSNames: []string{"other.example.test"}}), false, false},
		{"cn with extra text", mk(pki.Options{CommonName: host + " IP-HTTPS", DNSNames: []string{host}}), false, true},
		{"san only", mk(pki.Options{DNSNames: []string{host}}), false, true},
	}
	for _, c := range cases {
		err := CheckName(c.cert, host, NameRuleWindows)
		if (err == nil) != c.win {
			t.Errorf("%s: windows rule err=%v, want pass=%v", c.name, err, c.win)
		}
		if err != nil {
			if code, _ := winerr.CodeOf(err); code != winerr.NoMoreItems {
				t.Errorf("%s: code %s, want 0x103", c.name, winerr.Hex(code))
			}
		}
		if err := CheckName(c.cert, host, NameRuleStandard); (err == nil) != c.std {
			t.Errorf("%s: standard rule err=%v, want pass=%v", c.name, err, c.std)
		}
	}
}

// The three 0x103 causes of KB2980635 read differently, so diagnose and
// the status tell them apart.
func TestNameRuleReasons(t *testing.T) {
	ca, _ := pki.NewCA("ca")
	host := "da.example.test"
	for _, c := range []struct {
		o    pki.Options
		want string
	}{
		{pki.Options{CommonName: "other.example.test", DNSNames: []string{host}}, "does not match the URL host"},
		{pki.Options{CommonName: host + ", O=Example Corp", DNSNames: []string{host}}, "extra information in the subject"},
		{pki.Options{CommonName: host, DNSNames: []string{"other.example.test"}}, "subject alternative names"},
	} {
		cert, err := pki.Server(ca, c.o)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckName(cert.Cert, host, NameRuleWindows); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CN %q SAN %v: %v, want %q", c.o.CommonName, c.o.DNSNames, err, c.want)
		}
	}
}

func TestVerifyServerChain(t *testing.T) {
	ca, _ := pki.NewCA("ca")
	other, _ := pki.NewCA("other")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	now := time.Now()
	good, _ := pki.Server(ca, pki.Options{CommonName: "da.example.test"})
	untrusted, _ := pki.Server(other, pki.Options{CommonName: "da.example.test"})
	expired, _ := pki.Server(ca, pki.Options{CommonName: "da.example.test", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	clientOnly, _ := pki.Client(ca, pki.Options{CommonName: "da.example.test"})
	cases := []struct {
		name string
		c    *pki.Cert
		want uint32
	}{
		{"good", good, winerr.Success},
		{"untrusted", untrusted, winerr.CertUntrustedRoot},
		{"expired", expired, winerr.CertExpired},
		{"no server auth EKU", clientOnly, winerr.NoMoreItems},
	}
	for _, c := range cases {
		err := verifyServer([]*x509.Certificate{c.c.Cert}, "da.example.test", pool, NameRuleWindows, now)
		if got := winerr.Classify(err); got != c.want {
			t.Errorf("%s: %s (%v), want %s", c.name, winerr.Hex(got), err, winerr.Hex(c.want))
		}
	}
	if err := verifyServer(nil, "x", pool, NameRuleWindows, now); err == nil {
		t.Error("empty chain accepted")
	}
}
