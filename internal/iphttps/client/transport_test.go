package client

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/iphttps/iphttpstest"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/router"
)

// addrHost tells the global addresses put on it.
type addrHost struct {
	nullHost
	added chan netip.Prefix
}

func (h addrHost) AddAddr(a netip.Prefix, _, _ time.Duration, linkLocal bool) error {
	if !linkLocal {
		select {
		case h.added <- a:
		default:
		}
	}
	return nil
}

// The transport runs the phases and the link engine: the host gets an
// address in the advertised prefix, and the connection is counted.
func TestTransportConnect(t *testing.T) {
	prefix := netip.MustParsePrefix("2001:db8:1::/64")
	cert, roots := iphttpstest.Certificate(t, "localhost")
	s := iphttpstest.New(t, iphttpstest.Options{Cert: cert, Router: router.Config{Prefix: prefix}, Advertise: true})
	target, err := iphttps.ParseURL(s.URL("localhost"), false, false)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{
		Target: target, TLS: iphttps.TLSConfig(target.Host, roots, iphttps.NameRuleWindows, nil, nil),
		Proxy: proxy.Config{Explicit: proxy.Direct}, ConnectTimeout: 5 * time.Second, RATimeout: 5 * time.Second,
	})
	h := addrHost{added: make(chan netip.Prefix, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		up  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		up, err := tr.Connect(ctx, fakeLink{h})
		done <- result{up, err}
	}()
	select {
	case a := <-h.added:
		if a.Bits() != 64 || !prefix.Contains(a.Addr()) {
			t.Fatalf("address %v, want one in %v", a, prefix)
		}
	case r := <-done:
		t.Fatalf("the connection ended before an address was configured: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("no address within 10 s")
	}
	cancel()
	if r := <-done; !r.up {
		t.Errorf("Connect: up %v, %v; want up", r.up, r.err)
	}
	if n := tr.InterfaceCounters()["connects"]; n != 1 {
		t.Errorf("connects %d, want 1", n)
	}
}
