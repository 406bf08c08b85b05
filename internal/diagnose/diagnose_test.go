package diagnose

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/iphttps/iphttpstest"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/winerr"
)

// fakeDeps are the dependencies of a whole run without root: a fake /proc
// with IPv6 on and CAP_NET_ADMIN, a TUN node that opens, no links, a fake
// DNS server, no daemons.
func fakeDeps(t *testing.T, d *fakeDNS) Deps {
	tun := filepath.Join(t.TempDir(), "tun")
	if err := os.WriteFile(tun, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	return Deps{
		Resolver:    d.resolver(),
		NameServers: func() ([]string, error) { return []string{d.addr()}, nil },
		ProcRoot:    fakeProc(t, ptr("0"), ptr("0"), "000001ffffffffff"),
		SysNet:      t.TempDir(),
		TUNPath:     tun,
		Links:       func() ([]net.Interface, error) { return nil, nil },
		Daemons:     func(context.Context) []Daemon { return nil },
	}
}

func TestRunHealthyAndServerDown(t *testing.T) {
	p := newPKI(t)
	cert := p.server.TLS()
	r := newResponder(t, iphttpstest.Options{Cert: &cert})
	d := newFakeDNS(t, zone{a: map[string][]netip.Addr{"da.example.test.": {netip.MustParseAddr("127.0.0.1")}}})
	o := Options{
		URL:       "https://da.example.test:" + r.Port() + "/IPHTTPS",
		Interface: "iphttps0",
		Roots:     p.roots,
		RootsName: "--ca test",
		Proxy:     proxy.Config{Getenv: func(string) string { return "" }},
		Timeout:   5 * time.Second,
	}
	var progressed []string
	rep := Run(context.Background(), o, fakeDeps(t, d), func(c Check) { progressed = append(progressed, c.Name) })
	if len(progressed) != len(CheckNames()) {
		t.Errorf("progress: %v", progressed)
	}
	for _, c := range rep.Checks {
		if c.Status != Pass {
			var b bytes.Buffer
			WriteText(&b, rep)
			t.Fatalf("%s is %s, want every check PASS:\n%s", c.Name, c.Status, b.String())
		}
	}
	if rep.Result != Pass || rep.ExitCode() != 0 || rep.Code != 0 || rep.InterfaceStatus != winerr.StatusActive {
		t.Errorf("healthy report: %s %s %q exit %d", rep.Result, rep.Code, rep.InterfaceStatus, rep.ExitCode())
	}
	ra, _ := rep.Check(CheckRA)
	wantSaw(t, ra, "prefix", "2001:db8:1::/64")
	tlsc, _ := rep.Check(CheckTLS)
	wantSaw(t, tlsc, "cipher suite", "TLS_")

	// The server stops: TCP is refused, everything after it is skipped.
	r.Close()
	rep = Run(context.Background(), o, fakeDeps(t, d), nil)
	if rep.Result != Fail || rep.Failed != CheckTCP || rep.Code != Code(winerr.ConnRefused) || rep.ExitCode() != 1 {
		t.Fatalf("server down: %s at %s %s", rep.Result, rep.Failed, rep.Code)
	}
	after := false
	for _, c := range rep.Checks {
		switch {
		case c.Name == CheckTCP:
			wantCheck(t, c, Fail, int64(winerr.ConnRefused))
			after = true
		case after:
			if c.Status != Skipped || !strings.Contains(c.Reason, "tcp failed") {
				t.Errorf("%s after the failure: %s %q", c.Name, c.Status, c.Reason)
			}
		default:
			if c.Status != Pass {
				t.Errorf("%s before the failure: %s", c.Name, c.Status)
			}
		}
	}
}

func TestRunUserspaceAndPlainHTTP(t *testing.T) {
	r := newResponder(t, iphttpstest.Options{})
	d := newFakeDNS(t, zone{a: map[string][]netip.Addr{"da.example.test.": {netip.MustParseAddr("127.0.0.1")}}})
	deps := fakeDeps(t, d)
	deps.TUNPath = filepath.Join(t.TempDir(), "missing") // would fail, but userspace needs no TUN
	o := Options{
		URL:            "http://da.example.test:" + r.Port() + "/IPHTTPS",
		AllowPlainHTTP: true,
		Userspace:      true,
		Interface:      "iphttps0",
		Proxy:          proxy.Config{Getenv: func(string) string { return "" }},
		Timeout:        5 * time.Second,
	}
	rep := Run(context.Background(), o, deps, nil)
	skipped := map[string]bool{CheckIPv6: true, CheckTUN: true, CheckInterface: true, CheckTLS: true,
		CheckCertChain: true, CheckCertValidity: true, CheckCertName: true, CheckCertUsage: true, CheckCertRevocation: true}
	for _, c := range rep.Checks {
		want := Pass
		if skipped[c.Name] {
			want = Skipped
		}
		if c.Status != want {
			t.Errorf("%s: %s (%s %s), want %s", c.Name, c.Status, c.Reason, c.Cause, want)
		}
	}
	if rep.ExitCode() != 0 {
		t.Errorf("exit %d", rep.ExitCode())
	}
}

func TestRunBadURLSkipsTheNetwork(t *testing.T) {
	d := newFakeDNS(t, zone{})
	rep := Run(context.Background(), Options{URL: "https://203.0.113.10/IPHTTPS", Interface: "iphttps0",
		Proxy: proxy.Config{Getenv: func(string) string { return "" }}}, fakeDeps(t, d), nil)
	if rep.Failed != CheckURL || rep.Code != Code(winerr.InvalidNetName) || rep.InterfaceStatus != winerr.StatusInvalidURL {
		t.Fatalf("%s %s %q", rep.Failed, rep.Code, rep.InterfaceStatus)
	}
	for _, c := range rep.Checks[4:] {
		if c.Status != Skipped || c.Reason != "url failed" {
			t.Errorf("%s: %s %q", c.Name, c.Status, c.Reason)
		}
	}
}

func TestReadRoots(t *testing.T) {
	p := newPKI(t)
	other, err := pki.NewCA("second CA")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, path, string(p.ca.CertPEM())+"junk between\n"+string(other.CertPEM()))
	pool, certs, err := ReadRoots(path)
	if err != nil || pool == nil || len(certs) != 2 || certs[1].Subject.CommonName != "second CA" {
		t.Fatalf("%v %v %v", pool, certs, err)
	}
	writeFile(t, path, "nothing")
	if _, _, err := ReadRoots(path); err == nil {
		t.Fatal("a file without certificates was accepted")
	}
	if _, _, err := ReadRoots(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}
