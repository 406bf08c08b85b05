package server

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/winerr"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func certFiles(t *testing.T) (string, string) {
	t.Helper()
	c, err := pki.Server(nil, pki.Options{CommonName: "da.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	cp, kp, err := c.WriteFiles(t.TempDir(), "server")
	if err != nil {
		t.Fatal(err)
	}
	return cp, kp
}

func TestFromConfigErrors(t *testing.T) {
	cert, key := certFiles(t)
	base := func() config.Server {
		c := config.DefaultServer()
		c.Prefix, c.Cert, c.Key = "2001:db8:1::/64", cert, key
		c.ControlSocket = filepath.Join(t.TempDir(), "s.sock")
		return c
	}
	cases := []struct {
		name   string
		mutate func(*config.Server)
		code   uint32
		words  string // the message must name the setting
	}{
		{"no prefix", func(c *config.Server) { c.Prefix = "" }, winerr.InvalidParameter, "prefix"},
		{"prefix /48", func(c *config.Server) { c.Prefix = "2001:db8:1::/48" }, winerr.InvalidParameter, "/64"},
		{"prefix IPv4", func(c *config.Server) { c.Prefix = "192.0.2.0/24" }, winerr.InvalidParameter, "prefix"},
		{"prefix host bits", func(c *config.Server) { c.Prefix = "2001:db8:1::5/64" }, winerr.InvalidParameter, "host bits"},
		{"bad auth mode", func(c *config.Server) { c.AuthMode = "kerberos" }, winerr.InvalidParameter, "auth_mode"},
		{"certificates without CA", func(c *config.Server) { c.AuthMode = "certificates" }, winerr.InvalidParameter, "client_ca"},
		{"missing cert file", func(c *config.Server) { c.Cert = "/nonexistent/server.pem" }, winerr.FileNotFound, "cannot be loaded"},
		{"garbage cert", func(c *config.Server) {
			p := filepath.Join(t.TempDir(), "bad.pem")
			os.WriteFile(p, []byte("garbage"), 0o600)
			c.Cert = p
		}, winerr.CertUnknown, "cannot be loaded"},
		{"no certificate at all", func(c *config.Server) { c.Cert, c.Key = "", "" }, winerr.InvalidParameter, "--self-signed"},
		{"cert without key", func(c *config.Server) { c.Key = "" }, winerr.InvalidParameter, "key"},
		{"bad listen", func(c *config.Server) { c.Listen = "443" }, winerr.InvalidParameter, "listen"},
		{"root path", func(c *config.Server) { c.Path = "/" }, winerr.InvalidParameter, "path"},
		{"header injection", func(c *config.Server) { c.ServerHeader = "x\r\nSet-Cookie: a" }, winerr.InvalidParameter, "server_header"},
		{"bad route", func(c *config.Server) { c.Routes = []string{"10.0.0.0/8"} }, winerr.InvalidParameter, "route"},
		{"bad tls version", func(c *config.Server) { c.TLSMinVersion = "1.4" }, winerr.InvalidParameter, "tls_min_version"},
		{"plain http with cert", func(c *config.Server) { c.PlainHTTP = true }, winerr.InvalidParameter, "plain_http"},
		{"no pending slots", func(c *config.Server) { c.MaxPending = 0 }, winerr.InvalidParameter, "max_pending"},
		{"negative per-source", func(c *config.Server) { c.MaxClientsPerSource = -1 }, winerr.InvalidParameter, "max_clients_per_source"},
		{"no head time", func(c *config.Server) { c.HeadTimeout = 0 }, winerr.InvalidParameter, "head_timeout"},
		{"bad proxy peer", func(c *config.Server) {
			c.ProxyProtocol, c.ProxyProtocolFrom = true, []string{"lb.example"}
		}, winerr.InvalidParameter, "proxy_protocol_from"},
		{"proxy peers without the protocol", func(c *config.Server) { c.ProxyProtocolFrom = []string{"192.0.2.0/24"} }, winerr.InvalidParameter, "--proxy-protocol"},
		{"bad metrics address", func(c *config.Server) { c.MetricsListen = "9443" }, winerr.InvalidParameter, "metrics_listen"},
		{"missing CRL", func(c *config.Server) {
			ca, _ := pki.NewCA("CA")
			p := filepath.Join(t.TempDir(), "ca.pem")
			os.WriteFile(p, ca.CertPEM(), 0o644)
			c.AuthMode, c.ClientCA, c.CRL = "certificates", p, []string{"/nonexistent/ca.crl"}
		}, winerr.FileNotFound, "crl"},
	}
	for _, tc := range cases {
		c := base()
		tc.mutate(&c)
		_, err := FromConfig(c, quiet)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if code, _ := winerr.CodeOf(err); code != tc.code {
			t.Errorf("%s: code %s, want %s (%v)", tc.name, winerr.Hex(code), winerr.Hex(tc.code), err)
		}
		if !strings.Contains(err.Error(), tc.words) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: message %q should be one line naming %q", tc.name, err, tc.words)
		}
	}

	o, err := FromConfig(base(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if o.URL != "https://+:443/IPHTTPS" || o.Router.HostAddrs[0].String() != "2001:db8:1::1" || o.TLS == nil {
		t.Errorf("good config: %+v", o)
	}
	c := base()
	c.AuthMode, c.ClientCA = "certificates", cert
	if o, err = FromConfig(c, quiet); err != nil || o.Router.Mode != router.ModeCertificates || o.TLS.ClientCAs == nil {
		t.Errorf("certificates mode: %v", err)
	}
}

// A busy port stops the server before it creates anything, with WSAEADDRINUSE.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert, key := certFiles(t)
	c := config.DefaultServer()
	c.Prefix, c.Cert, c.Key, c.Listen = "2001:db8:1::/64", cert, key, ln.Addr().String()
	c.ControlSocket = filepath.Join(t.TempDir(), "s.sock")
	c.Interface = "iphttps-t-busy"
	o, err := FromConfig(c, quiet)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(o)
	if code, _ := winerr.CodeOf(err); code != winerr.AddrInUse || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("want 0x2740 'already in use', got %v", err)
	}
	if _, err := net.InterfaceByName(c.Interface); err == nil {
		t.Fatal("a TUN device was created although the server refused to start")
	}
	if _, err := os.Stat(c.ControlSocket); err == nil {
		t.Fatal("control socket left behind")
	}
}
