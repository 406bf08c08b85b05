package diagnose

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/winerr"
)

func TestCheckURL(t *testing.T) {
	c, tg := checkURL("https://da.example.test/IPHTTPS", false, false)
	wantCheck(t, c, Pass, 0)
	if tg.Host != "da.example.test" || tg.Port != "443" || tg.Path != "/IPHTTPS" {
		t.Errorf("target %+v", tg)
	}
	c, _ = checkURL("https://da.example.test:8443/ip", false, false)
	wantCheck(t, c, Pass, 0)
	if !strings.Contains(c.Cause, "/IPHTTPS") || !strings.Contains(c.Cause, "8443") {
		t.Errorf("notes: %s", c.Cause)
	}
	for _, u := range []string{"https://203.0.113.10/IPHTTPS", "https://[2001:db8::1]/IPHTTPS", "http://da.example.test/IPHTTPS", "https://da.example.test", "ftp://x/y", ""} {
		c, _ = checkURL(u, false, false)
		wantCheck(t, c, Fail, int64(winerr.InvalidNetName))
		if strings.Contains(c.Cause, "(0x4be)") {
			t.Errorf("%s: the cause repeats the code: %s", u, c.Cause)
		}
	}
	c, _ = checkURL("https://203.0.113.10/IPHTTPS", false, false)
	if !strings.Contains(c.Fix, "DNS name") {
		t.Errorf("IP literal fix: %s", c.Fix)
	}
	c, _ = checkURL("https://203.0.113.10/IPHTTPS", true, false)
	wantCheck(t, c, Pass, 0)
}

func TestCheckDNS(t *testing.T) {
	d := newFakeDNS(t, zone{
		a:        map[string][]netip.Addr{"da.example.test.": {netip.MustParseAddr("203.0.113.10")}},
		nodata:   map[string]bool{"noaddr.example.test.": true},
		servfail: map[string]bool{"broken.example.test.": true},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := d.resolver()

	c, addrs := checkDNS(ctx, res, d.query(), "da.example.test", "")
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "addresses", "203.0.113.10")
	if len(addrs) != 1 || addrs[0] != netip.MustParseAddr("203.0.113.10") {
		t.Errorf("addresses %v", addrs)
	}

	c, _ = checkDNS(ctx, res, d.query(), "nxdomain.example.test", "")
	wantCheck(t, c, Fail, int64(winerr.HostNotFound))
	wantSaw(t, c, "direct query", "NXDOMAIN")

	c, _ = checkDNS(ctx, res, d.query(), "noaddr.example.test", "")
	wantCheck(t, c, Fail, int64(winerr.NoData))
	wantSaw(t, c, "direct query", "NOERROR with 0 A records")

	c, _ = checkDNS(ctx, res, d.query(), "broken.example.test", "")
	wantCheck(t, c, Fail, int64(winerr.NoData))
	wantSaw(t, c, "direct query", "SERVFAIL")

	// Through a proxy the proxy resolves: a local failure only warns.
	c, _ = checkDNS(ctx, res, d.query(), "nxdomain.example.test", "http://192.0.2.80:3128")
	wantCheck(t, c, Warn, int64(winerr.HostNotFound))

	c, addrs = checkDNS(ctx, res, d.query(), "2001:db8::10", "")
	wantCheck(t, c, Pass, 0)
	if len(addrs) != 1 {
		t.Errorf("literal: %v", addrs)
	}
}

func TestNameservers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	writeFile(t, p, "# comment\nsearch example.test\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:1\n")
	got, err := nameservers(p)
	if err != nil || strings.Join(got, " ") != "192.0.2.53:53 [2001:db8::53]:53" {
		t.Fatalf("%v %v", got, err)
	}
	writeFile(t, p, "search x\n")
	if got, _ = nameservers(p); len(got) != 2 {
		t.Fatalf("default servers: %v", got)
	}
}

func TestRawQueryNoServer(t *testing.T) {
	q := newRawQuery(&net.Dialer{}, func() ([]string, error) { return []string{closedPort(t)}, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := q(ctx, "x.test", dnsmessage.TypeA); err == nil {
		t.Fatal("a query to a closed port succeeded")
	}
}

func routes(t *testing.T, pc proxy.Config, target string) ([]proxy.Route, error) {
	t.Helper()
	return pc.Routes(context.Background(), target)
}

func TestCheckProxy(t *testing.T) {
	const target = "da.example.test:443"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &net.Dialer{}
	noEnv := func(string) string { return "" }

	pc := proxy.Config{Getenv: noEnv}
	rs, err := routes(t, pc, target)
	c, via := checkProxy(ctx, pc, rs, err, d, target)
	wantCheck(t, c, Pass, 0)
	if via.Route != proxy.Direct || via.Conn != nil {
		t.Errorf("direct: %+v", via)
	}
	wantSaw(t, c, "route in use", "direct")

	ok := fakeProxy(t, http.StatusOK)
	pc = proxy.Config{Explicit: ok, Getenv: noEnv}
	rs, err = routes(t, pc, target)
	c, via = checkProxy(ctx, pc, rs, err, d, target)
	wantCheck(t, c, Pass, 0)
	if via.Conn == nil || via.Route != ok {
		t.Fatalf("through the proxy: %+v", via)
	}
	via.Conn.Close()

	for _, tc := range []struct {
		status int
		answer string
		fix    string
	}{
		{http.StatusForbidden, "403 Forbidden", "policy"},
		{http.StatusProxyAuthRequired, "407 Proxy Authentication Required", "--proxy-credentials"},
		{http.StatusServiceUnavailable, "503 Service Unavailable", "could not reach"},
	} {
		p := fakeProxy(t, tc.status)
		pc = proxy.Config{Explicit: p, Getenv: noEnv}
		rs, err = routes(t, pc, target)
		c, via = checkProxy(ctx, pc, rs, err, d, target)
		wantCheck(t, c, Fail, int64(winerr.NoData))
		wantSaw(t, c, "proxy answer", tc.answer)
		if !strings.Contains(c.Fix, tc.fix) {
			t.Errorf("%d: fix %q lacks %q", tc.status, c.Fix, tc.fix)
		}
		if via.Conn != nil {
			t.Errorf("%d: a connection was returned", tc.status)
		}
	}

	pc = proxy.Config{Explicit: "http://" + closedPort(t), Getenv: noEnv}
	rs, err = routes(t, pc, target)
	c, _ = checkProxy(ctx, pc, rs, err, d, target)
	wantCheck(t, c, Fail, int64(winerr.HostNotFound))

	// A cached proxy that no longer works: the configured one is tried
	// next and works; a warning says to reset the cache.
	cache := &proxy.Cache{Path: filepath.Join(t.TempDir(), "cache.json")}
	if err := cache.Store(target, "http://"+closedPort(t)); err != nil {
		t.Fatal(err)
	}
	pc = proxy.Config{Explicit: ok, Getenv: noEnv, Cache: cache}
	rs, err = routes(t, pc, target)
	c, via = checkProxy(ctx, pc, rs, err, d, target)
	wantCheck(t, c, Warn, int64(winerr.HostNotFound))
	if !strings.Contains(c.Fix, "iphttps proxy reset") || via.Conn == nil {
		t.Errorf("stale cache: fix %q, conn %v", c.Fix, via.Conn)
	}
	wantSaw(t, c, "proxy cache", "for da.example.test:443")
	via.Conn.Close()

	// The environment's proxy, and settings that cannot be evaluated.
	pc = proxy.Config{Getenv: func(k string) string {
		if k == "HTTPS_PROXY" {
			return ok
		}
		return ""
	}}
	rs, err = routes(t, pc, target)
	c, via = checkProxy(ctx, pc, rs, err, d, target)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "HTTPS_PROXY", ok)
	wantSaw(t, c, "route in use", "environment")
	via.Conn.Close()

	c, _ = checkProxy(ctx, proxy.Config{Getenv: noEnv}, nil, io.ErrUnexpectedEOF, d, target)
	wantCheck(t, c, Fail, int64(winerr.HostNotFound))
}

func TestCheckTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	lo := netip.MustParseAddr("127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &net.Dialer{}

	c, conn := checkTCP(ctx, d, []netip.Addr{lo}, port, proxied{Route: proxy.Direct})
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "127.0.0.1:"+port, "connected")
	conn.Close()

	_, closed, _ := net.SplitHostPort(closedPort(t))
	c, conn = checkTCP(ctx, d, []netip.Addr{lo}, closed, proxied{Route: proxy.Direct})
	wantCheck(t, c, Fail, int64(winerr.ConnRefused))
	if conn != nil {
		t.Error("a connection was returned")
	}

	// A refused first address, then one that works.
	c, conn = checkTCP(ctx, d, []netip.Addr{netip.MustParseAddr("127.0.0.2"), lo}, port, proxied{Route: proxy.Direct})
	if conn != nil {
		conn.Close()
	}
	if c.Status != Pass {
		t.Logf("127.0.0.2 is not usable here: %v", c.Saw)
	}

	// A firewall that drops: the dial never completes.
	drop := &net.Dialer{ControlContext: func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	tctx, tcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer tcancel()
	c, _ = checkTCP(tctx, drop, []netip.Addr{lo}, port, proxied{Route: proxy.Direct})
	wantCheck(t, c, Fail, int64(winerr.TimedOut))
	if !strings.Contains(c.Cause, "drops") {
		t.Errorf("timeout cause: %s", c.Cause)
	}

	// Through a proxy the proxy made the connection.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c, conn = checkTCP(ctx, d, nil, "443", proxied{Route: "http://192.0.2.80:3128", Conn: a})
	wantCheck(t, c, Pass, 0)
	if conn != a {
		t.Error("the proxy's connection was not passed on")
	}
}
