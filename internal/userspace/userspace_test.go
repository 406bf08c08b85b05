package userspace

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

var (
	hostAddr = netip.MustParsePrefix("2001:db8:1::2/64")
	peerAddr = netip.MustParseAddr("2001:db8:c0::10")
	intranet = netip.MustParsePrefix("2001:db8:c0::/64")
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// link wires the Stack to a second gVisor stack (the "intranet host" at
// peerAddr) by copying packets both ways, as the client's pumps do with
// the IP-HTTPS connection.
func link(t *testing.T, s *Stack) *netstack.Net {
	t.Helper()
	dev, tnet, err := netstack.CreateNetTUN([]netip.Addr{peerAddr}, nil, 1280)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range dev.Events() {
		}
	}()
	pump := func(from interface {
		Read([][]byte, []int, int) (int, error)
	}, to interface {
		Write([][]byte, int) (int, error)
	}) {
		buf := [][]byte{make([]byte, 1500)}
		sizes := []int{0}
		for {
			n, err := from.Read(buf, sizes, 0)
			if err != nil {
				return
			}
			if n == 1 {
				to.Write([][]byte{buf[0][:sizes[0]]}, 0)
			}
		}
	}
	go pump(s, dev)
	go pump(dev, s)
	t.Cleanup(func() { dev.Close(); s.Close() })
	return tnet
}

// serveHello answers every connection on port 80 of the peer with a line.
func serveHello(t *testing.T, peer *netstack.Net) {
	t.Helper()
	ln, err := peer.ListenTCPAddrPort(netip.AddrPortFrom(peerAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host+" to "+r.RemoteAddr+"\n")
	}))
}

func TestStackDialsThroughTunnelOnlyWhenRouted(t *testing.T) {
	s := New(1280, nil, discard())
	peer := link(t, s)
	serveHello(t, peer)
	d := &Dialer{Stack: s, Direct: false}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dst := netip.AddrPortFrom(peerAddr, 80).String()

	// No address yet, no route: refused, and packets from the server are
	// counted as dropped.
	if _, err := d.DialContext(ctx, "tcp", dst); err == nil {
		t.Fatal("dial before any route succeeded")
	}
	if err := s.ReplaceRoute(intranet); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DialContext(ctx, "tcp", dst); !errors.Is(err, ErrNoTunnel) {
		t.Fatalf("dial before the address: %v, want ErrNoTunnel", err)
	}
	if err := s.AddAddr(hostAddr, 0, 0, false); err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(ctx, "tcp", dst)
	if err != nil {
		t.Fatalf("dial through the tunnel: %v", err)
	}
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: intranet\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	if !strings.Contains(string(body), "to ["+hostAddr.Addr().String()+"]") {
		t.Fatalf("peer saw %q, want the link address as source", body)
	}

	// Outside the routes, with direct connections off: refused.
	if _, err := d.DialContext(ctx, "tcp", "[2001:db8:99::1]:80"); err == nil || !strings.Contains(err.Error(), "outside the tunnel") {
		t.Fatalf("unrouted destination: %v", err)
	}
	// The route withdrawn: refused too.
	s.DelRoute(intranet)
	if _, err := d.DialContext(ctx, "tcp", dst); err == nil {
		t.Fatal("dial after the route was withdrawn succeeded")
	}
}

func TestStackNewPrefixReplacesStack(t *testing.T) {
	s := New(1280, nil, discard())
	peer := link(t, s)
	serveHello(t, peer)
	s.ReplaceRoute(intranet)
	if err := s.AddAddr(hostAddr, 0, 0, false); err != nil {
		t.Fatal(err)
	}
	// The link-local address and a refresh of the same address change nothing.
	first := s.cur.Load()
	s.AddAddr(netip.MustParsePrefix("fe80::2/64"), 0, 0, true)
	s.AddAddr(hostAddr, time.Hour, time.Hour, false)
	if s.cur.Load() != first {
		t.Fatal("a refresh or the link-local address replaced the stack")
	}
	next := netip.MustParsePrefix("2001:db8:2::2/64")
	if err := s.AddAddr(next, 0, 0, false); err != nil {
		t.Fatal(err)
	}
	if cur := s.cur.Load(); cur == first || cur.addr != next.Addr() {
		t.Fatal("a new prefix did not give a new stack")
	}
	// The reader moved over to the new stack: a connection works from the
	// new address.
	d := &Dialer{Stack: s}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(peerAddr, 80).String())
	if err != nil {
		t.Fatalf("dial after the prefix change: %v", err)
	}
	c.Close()
	s.DelAddr(next)
	if _, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(peerAddr, 80).String()); !errors.Is(err, ErrNoTunnel) {
		t.Fatalf("dial after the address was removed: %v", err)
	}
}

func TestStackReadEndsOnClose(t *testing.T) {
	s := New(1280, nil, discard())
	if n, err := s.Write([][]byte{make([]byte, 40)}, 0); n != 1 || err != nil {
		t.Fatalf("write without an address: %d, %v", n, err)
	}
	if s.DroppedNoAddress.Load() != 1 {
		t.Fatal("packet without an address not counted")
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Read([][]byte{make([]byte, 1500)}, []int{0}, 0)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
	if err := s.AddAddr(hostAddr, 0, 0, false); err == nil {
		t.Fatal("AddAddr after Close succeeded")
	}
}

func TestProxiesSOCKSAndHTTP(t *testing.T) {
	s := New(1280, nil, discard())
	peer := link(t, s)
	serveHello(t, peer)
	s.ReplaceRoute(intranet)
	s.AddAddr(hostAddr, 0, 0, false)
	d := &Dialer{Stack: s}
	for _, shared := range []bool{false, true} {
		socksAddr, httpAddr := "127.0.0.1:0", "127.0.0.1:0"
		if shared {
			httpAddr = socksAddr
		}
		p, err := Listen(socksAddr, httpAddr, d, discard())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan struct{})
		go func() { p.Serve(ctx); close(served) }()
		socksAt, httpAt := p.socks.Addr().String(), p.http.Addr().String()

		sd, err := proxy.SOCKS5("tcp", socksAt, nil, proxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: sd.(proxy.ContextDialer).DialContext}, Timeout: 10 * time.Second}
		get(t, hc, "SOCKS5")

		u, _ := http.NewRequest("GET", "http://"+httpAt, nil)
		hc = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u.URL)}, Timeout: 10 * time.Second}
		get(t, hc, "HTTP proxy")

		// CONNECT, by hand.
		c, err := net.Dial("tcp", httpAt)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "CONNECT ["+peerAddr.String()+"]:80 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.0\r\nHost: intranet\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		inner, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request through CONNECT (sent with the CONNECT head): %v", err)
		}
		body, _ := io.ReadAll(inner.Body)
		c.Close()
		if !strings.Contains(string(body), "hello from") {
			t.Fatalf("through CONNECT: %q", body)
		}
		// A destination that cannot be reached: 502 with the reason.
		c, _ = net.Dial("tcp", httpAt)
		io.WriteString(c, "CONNECT ["+peerAddr.String()+"]:1 HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err = http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		c.Close()
		if err != nil || resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("CONNECT to a closed port: %v %v, want 502", resp, err)
		}
		cancel()
		<-served
	}
}

func get(t *testing.T, hc *http.Client, via string) {
	t.Helper()
	resp, err := hc.Get("http://[" + peerAddr.String() + "]/")
	if err != nil {
		t.Fatalf("GET via %s: %v", via, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hello from") {
		t.Fatalf("GET via %s: %q", via, body)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	d := &Dialer{Stack: New(1280, nil, discard())}
	for _, a := range []string{"0.0.0.0:1080", "[::]:1080", "192.0.2.1:1080", "example.com:1080", "nonsense"} {
		if p, err := Listen(a, "", d, discard()); err == nil {
			p.socks.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", a)
		}
	}
	if _, err := Listen("", "", d, discard()); err == nil {
		t.Error("Listen with no listener accepted")
	}
}
