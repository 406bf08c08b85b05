package server

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/iphttps/iphttps/internal/config"
)

func TestReloadConfigKeepsSelfSigned(t *testing.T) {
	c := config.DefaultServer()
	c.Prefix, c.SelfSigned = "2001:db8:1::/64", "da.example.test"
	c.ControlSocket = filepath.Join(t.TempDir(), "s.sock")
	o, err := FromConfig(c, quiet)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ReloadConfig(c, quiet, o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(n.TLS.Certificates[0].Certificate[0], o.TLS.Certificates[0].Certificate[0]) {
		t.Fatal("a reload made a new self-signed certificate: clients trusting the old one would fail")
	}
	c.SelfSigned = "other.example.test"
	n, err = ReloadConfig(c, quiet, o)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(n.TLS.Certificates[0].Certificate[0], o.TLS.Certificates[0].Certificate[0]) {
		t.Fatal("a new self-signed name kept the old certificate")
	}
}

func TestRestartOnly(t *testing.T) {
	o := Options{Listen: ":443", Interface: "iphttps-srv"}
	o.Router.Prefix = netip.MustParsePrefix("2001:db8:1::/64")
	n := o
	n.Limits.MaxClients = 5 // reloadable: not listed
	n.Path = "/other"
	if got := restartOnly(o, n); len(got) != 0 {
		t.Fatalf("reloadable settings listed as needing a restart: %v", got)
	}
	n.Listen, n.ProxyProtocol = ":8443", true
	n.Router.Prefix = netip.MustParsePrefix("2001:db8:2::/64")
	got := restartOnly(o, n)
	for _, want := range []string{"listen", "prefix", "proxy_protocol"} {
		if !slices.Contains(got, want) {
			t.Errorf("restartOnly = %v, want %q in it", got, want)
		}
	}
	if len(got) != 3 {
		t.Errorf("restartOnly = %v, want exactly listen, prefix, proxy_protocol", got)
	}
}
