package diagnose

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/iphttps/iphttpstest"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/winerr"
)

func target(t *testing.T, path string) iphttps.Target {
	t.Helper()
	tg, err := iphttps.ParseURL("https://da.example.test"+path, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestCheckPOSTAndRA(t *testing.T) {
	r := newResponder(t, iphttpstest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := dial(t, r.Addr().String())
	c, rd := checkPOST(ctx, conn, target(t, "/IPHTTPS"), nil)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "status line", "HTTP/1.1 200 OK")
	wantSaw(t, c, "Server", "Microsoft-HTTPAPI/2.0")
	wantSaw(t, c, "request", "Content-Length: 18446744073709551615")

	c = checkRA(ctx, conn, rd, 10*time.Second)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "router", "fe80::1")
	wantSaw(t, c, "prefix", "2001:db8:1::/64 (autonomous;")
	wantSaw(t, c, "MTU", "1280")
	wantSaw(t, c, "routes", "2001:db8:c0::/48")
	wantSaw(t, c, "router lifetime", "not a default router")
}

func TestCheckPOSTRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		status int
		path   string
		cause  string
	}{
		{http.StatusOK, "/other", "no IP-HTTPS endpoint"}, // the responder answers 404 to another path
		{http.StatusMethodNotAllowed, "/IPHTTPS", "does not take POST"},
		{http.StatusBadRequest, "/IPHTTPS", "endless Content-Length"},
		{http.StatusServiceUnavailable, "/IPHTTPS", "not as an IP-HTTPS server"},
	} {
		r := newResponder(t, iphttpstest.Options{Status: tc.status})
		c, rd := checkPOST(ctx, dial(t, r.Addr().String()), target(t, tc.path), nil)
		wantCheck(t, c, Fail, int64(winerr.NoData))
		if !strings.Contains(c.Cause, tc.cause) || rd != nil {
			t.Errorf("%d %s: cause %q", tc.status, tc.path, c.Cause)
		}
	}

	// A server that closes without answering.
	r := newResponder(t, iphttpstest.Options{Status: http.StatusOK})
	conn := dial(t, r.Addr().String())
	conn.Close()
	c, _ := checkPOST(ctx, conn, target(t, "/IPHTTPS"), nil)
	if c.Status != Fail {
		t.Errorf("closed connection: %s", c.Status)
	}
}

// raPacket builds a router advertisement from fe80::1 with opts.
func raPacket(t *testing.T, opts ...ndp.Option) []byte {
	t.Helper()
	b, err := packet.BuildICMPv6(netip.MustParseAddr("fe80::1"), packet.AllNodes(), 255, &ndp.RouterAdvertisement{CurrentHopLimit: 64, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckRANoPrefix(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pkts  func() [][]byte
		cause string
	}{
		{"no advertisement", func() [][]byte { return nil }, "no router advertisement"},
		{"advertisement without a prefix", func() [][]byte { return [][]byte{raPacket(t, &ndp.MTU{MTU: 1280})} }, "no usable prefix"},
		{"a /48 is not usable", func() [][]byte {
			return [][]byte{raPacket(t, &ndp.PrefixInformation{PrefixLength: 48, AutonomousAddressConfiguration: true, OnLink: true,
				ValidLifetime: time.Hour, PreferredLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:1::")})}
		}, "no usable prefix"},
	} {
		r := newResponder(t, iphttpstest.Options{Script: tc.pkts})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		conn := dial(t, r.Addr().String())
		c, rd := checkPOST(ctx, conn, target(t, "/IPHTTPS"), nil)
		wantCheck(t, c, Pass, 0)
		c = checkRA(ctx, conn, rd, 300*time.Millisecond)
		cancel()
		wantCheck(t, c, Fail, int64(winerr.NoData))
		if !strings.Contains(c.Cause, tc.cause) {
			t.Errorf("%s: cause %q", tc.name, c.Cause)
		}
	}
}
