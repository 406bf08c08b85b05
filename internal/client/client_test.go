package client

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

func TestParseURL(t *testing.T) {
	good := []struct{ in, host, port, path string }{
		{"https://da.example.com/IPHTTPS", "da.example.com", "443", "/IPHTTPS"},
		{"https://da.example.com:44500/IPHTTPS", "da.example.com", "44500", "/IPHTTPS"},
		{"HTTPS://DA.example.com/iphttps", "DA.example.com", "443", "/iphttps"},
	}
	for _, g := range good {
		tg, err := ParseURL(g.in, false, false)
		if err != nil || tg.Host != g.host || tg.Port != g.port || tg.Path != g.path || tg.URL != g.in {
			t.Errorf("ParseURL(%q) = %+v, %v", g.in, tg, err)
		}
	}
	for _, b := range []string{"", "https://192.0.2.1/IPHTTPS", "https://[2001:db8::1]/IPHTTPS", "http://da.example.com/IPHTTPS",
		"ftp://x/IPHTTPS", "https://da.example.com", "https://da.example.com/", "https://u@da.example.com/IPHTTPS", "https://da.example.com/IPHTTPS?x=1"} {
		_, err := ParseURL(b, false, false)
		if c, _ := winerr.CodeOf(err); c != winerr.InvalidNetName {
			t.Errorf("ParseURL(%q): want 0x4be, got %v", b, err)
		}
	}
	if _, err := ParseURL("https://192.0.2.1/IPHTTPS", true, false); err != nil {
		t.Errorf("allowIP: %v", err)
	}
	for in, want := range map[string]string{
		"https://da.example.com/IPHTTPS":       "da.example.com",
		"https://da.example.com:44500/IPHTTPS": "da.example.com:44500",
		"https://[2001:db8::1]/IPHTTPS":        "[2001:db8::1]",
	} {
		if tg, err := ParseURL(in, true, false); err != nil || tg.HostHeader != want {
			t.Errorf("Host header for %s = %q (%v), want %q", in, tg.HostHeader, err, want)
		}
	}
	if tg, err := ParseURL("http://da.example.com/IPHTTPS", false, true); err != nil || tg.HTTPS || tg.Port != "80" {
		t.Errorf("allowHTTP: %+v %v", tg, err)
	}
}

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
	_ = errors.New
}

func TestBackoffFollowsSpec(t *testing.T) {
	b := Backoff{Initial: 30 * time.Second, Max: 15 * time.Minute}
	t0 := time.Unix(0, 0)
	now := t0
	var got []time.Duration
	for i := 0; i < 8; i++ {
		d := b.Next(now)
		got = append(got, d)
		now = now.Add(d + time.Second) // each attempt takes 1 s to fail
	}
	want := []time.Duration{30 * time.Second, 31 * time.Second, 63 * time.Second, 127 * time.Second, 255 * time.Second, 511 * time.Second, 15 * time.Minute, 15 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("wait %d = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
	b.Reset()
	if d := b.Next(now); d != 30*time.Second {
		t.Fatalf("after reset: %v", d)
	}
	j := Backoff{Initial: 10 * time.Second, Max: time.Minute, Jitter: 0.1}
	for i := 0; i < 100; i++ {
		j.Reset()
		if d := j.Next(now); d < 9*time.Second || d > 11*time.Second {
			t.Fatalf("jitter out of bounds: %v", d)
		}
	}
}
