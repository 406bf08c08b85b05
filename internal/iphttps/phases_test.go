package iphttps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/iphttps/iphttpstest"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/winerr"
	"github.com/iphttps/iphttps/internal/wire"
)

var testPrefix = netip.MustParsePrefix("2001:db8:1::/64")

// testServer is an IP-HTTPS server on loopback (iphttpstest) known as
// localhost, whose router advertises to every new connection.
type testServer struct {
	*iphttpstest.Server
	roots *x509.CertPool
}

func newTestServer(t *testing.T, rc router.Config) *testServer {
	t.Helper()
	cert, roots := iphttpstest.Certificate(t, "localhost")
	rc.Prefix = testPrefix
	return &testServer{iphttpstest.New(t, iphttpstest.Options{Cert: cert, Router: rc, Advertise: true}), roots}
}

// recorder notes the hooks a phase calls, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) note(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, a...))
}

func (r *recorder) trace() *Trace {
	return &Trace{
		RouteStart: func(rt proxy.Route) { r.note("route %s", rt.Proxy) },
		RouteDone:  func(rt proxy.Route, err error) { r.note("route done %v", err) },
		DNSDone:    func(addrs []netip.Addr, err error) { r.note("dns %v %v", addrs, err) },
		ConnectStart: func(addr string) {
			if strings.HasPrefix(addr, "127.0.0.1:") {
				r.note("connect 127.0.0.1")
			}
		},
		ConnectDone: func(addr string, err error) {
			if strings.HasPrefix(addr, "127.0.0.1:") {
				r.note("connected 127.0.0.1 %v", err)
			}
		},
		CertificateRequested: func() { r.note("certificate requested") },
		TLSHandshakeDone:     func(cs tls.ConnectionState, err error) { r.note("tls %v %v", cs.HandshakeComplete, err) },
		WroteRequest:         func(err error) { r.note("wrote request %v", err) },
		GotResponse: func(resp *wire.Response, err error) {
			if err != nil {
				r.note("response %v", err)
				return
			}
			r.note("response %d", resp.Status)
		},
		WroteRouterSolicitation: func(err error) { r.note("wrote solicitation %v", err) },
		GotRouterAdvertisement: func(a Advertisement, err error) {
			r.note("advertisement to %v prefix %v %v", a.To, a.Prefix, err)
		},
	}
}

// open runs the phases up to the 200 answer to target.
func open(t *testing.T, ctx context.Context, s *testServer, target Target, tr *Trace) (*Conn, *wire.Reader, error) {
	t.Helper()
	raw, via, err := Dial(ctx, DialOptions{Target: target, Proxy: proxy.Config{Explicit: proxy.Direct}, Timeout: 5 * time.Second}, tr)
	if err != nil || via.Proxy.URL != nil {
		t.Fatalf("dial: %v (via %s)", err, via.Proxy)
	}
	conn, err := Handshake(ctx, raw, TLSConfig(target.Host, s.roots, NameRuleWindows, nil, nil), tr)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	r, err := Open(ctx, conn, target, 0, tr)
	return conn, r, err
}

// The phases run in order and tell the trace what happened in each; a
// solicitation from a link-local address takes the answer sent to it, not
// the advertisement the server sends every new connection.
func TestPhasesTrace(t *testing.T) {
	s := newTestServer(t, router.Config{})
	target, err := ParseURL(s.URL("localhost"), false, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rec recorder
	conn, r, err := open(t, ctx, s, target, rec.trace())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	ll := LinkLocal(RandomIID())
	a, err := Solicit(ctx, conn, r, ll, rec.trace())
	if err != nil {
		t.Fatalf("solicit: %v", err)
	}
	if a.To != ll || a.Prefix != testPrefix || a.From != netip.MustParseAddr("fe80::1") {
		t.Fatalf("answer %+v, want from fe80::1 to %v with %v", a, ll, testPrefix)
	}
	want := []string{
		"route direct",
		"dns 127.0.0.1",
		"connect 127.0.0.1",
		"connected 127.0.0.1 <nil>",
		"route done <nil>",
		"tls true <nil>",
		"wrote request <nil>",
		"response 200",
		"wrote solicitation <nil>",
		"advertisement to ff02::1 prefix " + testPrefix.String() + " <nil>",
		"advertisement to " + ll.String() + " prefix " + testPrefix.String() + " <nil>",
	}
	got := rec.events
	for i, e := range got {
		// localhost may also resolve to ::1 (whose attempt is not noted).
		if strings.HasPrefix(e, "dns [") && strings.Contains(e, "127.0.0.1") && strings.HasSuffix(e, "] <nil>") {
			got[i] = "dns 127.0.0.1"
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("trace:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// From :: the first advertisement with a prefix is the answer.
	conn, r, err = open(t, ctx, s, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err = Solicit(ctx, conn, r, netip.IPv6Unspecified(), nil); err != nil || a.Prefix != testPrefix {
		t.Fatalf("solicit from ::: %+v %v", a, err)
	}
}

// A router that publishes no prefix answers without one: from a link-local
// address that is ErrNoPrefix at once; from :: the wait goes on.
func TestSolicitNoPrefix(t *testing.T) {
	s := newTestServer(t, router.Config{Unpublished: true})
	target, _ := ParseURL(s.URL("localhost"), false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, r, err := open(t, ctx, s, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Solicit(ctx, conn, r, LinkLocal(RandomIID()), nil); !errors.Is(err, ErrNoPrefix) {
		t.Fatalf("answer without a prefix: %v, want ErrNoPrefix", err)
	}
	conn, r, err = open(t, ctx, s, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	ras := 0
	tr := &Trace{GotRouterAdvertisement: func(Advertisement, error) { ras++ }}
	var ne net.Error
	if _, err := Solicit(sctx, conn, r, netip.IPv6Unspecified(), tr); !errors.As(err, &ne) || !ne.Timeout() || ras == 0 {
		t.Fatalf("from :: without a prefix: %v after %d advertisements, want a timeout after some", err, ras)
	}
}

// A path the server does not serve: the answer head reaches the trace, the
// phase's error carries 0x2afc.
func TestOpenRefused(t *testing.T) {
	s := newTestServer(t, router.Config{})
	target, _ := ParseURL(strings.Replace(s.URL("localhost"), iphttpstest.Path, "/other", 1), false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status := 0
	_, _, err := open(t, ctx, s, target, &Trace{GotResponse: func(resp *wire.Response, _ error) { status = resp.Status }})
	if code, _ := winerr.CodeOf(err); code != winerr.NoData || status != http.StatusNotFound {
		t.Fatalf("404: %v (code %s), trace saw %d", err, winerr.Hex(code), status)
	}
}
