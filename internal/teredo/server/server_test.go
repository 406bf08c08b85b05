package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/teredo/peer"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/tundev"
)

var (
	primary   = netip.MustParseAddr("203.0.113.10")
	secondary = netip.MustParseAddr("203.0.113.11")
	intranet  = netip.MustParsePrefix("2001:db8:c0::/64")
)

// fixture is a Teredo server in a namespace of its own, with client sockets
// on other addresses of the same namespace.
type fixture struct {
	t      *testing.T
	srv    *Server
	mu     sync.Mutex
	toHost [][]byte
}

func udpIn(t *testing.T, ap string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ap)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newFixture starts the server and returns a function that makes sockets
// inside the namespace.
func newFixture(t *testing.T) (*fixture, func(ap string) *net.UDPConn) {
	ns := netnstest.New(t, "iptsv-", "binds the Teredo server's two addresses in a namespace")
	for _, a := range []string{"203.0.113.10/32", "203.0.113.11/32", "198.51.100.2/32", "198.51.100.3/32", "192.0.2.7/32"} {
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", a, "dev", "lo")
	}
	f := &fixture{t: t}
	netnstest.Do(t, ns, func() error {
		var err error
		f.srv, err = New(Options{
			Primary: primary, Lab: true, Serves: []netip.Prefix{intranet},
			NewHostWriter: func() tundev.PacketWriter {
				return funcWriter(func(p []byte) {
					f.mu.Lock()
					f.toHost = append(f.toHost, append([]byte(nil), p...))
					f.mu.Unlock()
				})
			},
			Log: slog.New(slog.DiscardHandler),
		})
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	sock := func(ap string) *net.UDPConn {
		var c *net.UDPConn
		netnstest.Do(t, ns, func() error { c = udpIn(t, ap); return nil })
		return c
	}
	return f, sock
}

// funcWriter is a PacketWriter handing each packet to a function.
type funcWriter func([]byte)

func (w funcWriter) Add(p []byte) error { w(p); return nil }
func (w funcWriter) Flush() error       { return nil }

// waitCounter waits until the server's counter name reaches want.
func (f *fixture) waitCounter(name string, want uint64) {
	f.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := f.srv.Counters()[name]
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("counter %s = %d, want %d (all: %v)", name, got, want, f.srv.Counters())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recv(t *testing.T, c *net.UDPConn) (teredo.Datagram, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	d, err := teredo.Parse(buf[:n])
	if err != nil {
		t.Fatalf("datagram from %v: %v", from, err)
	}
	return d, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

func send(t *testing.T, c *net.UDPConn, b []byte, to netip.Addr) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(b, netip.AddrPortFrom(to, teredo.Port)); err != nil {
		t.Fatal(err)
	}
}

// qualify runs the solicitation exchange from c and returns the client's
// Teredo address.
func qualify(t *testing.T, c *net.UDPConn, cone bool) netip.Addr {
	t.Helper()
	nonce := [8]byte{byte(time.Now().UnixNano()), 2, 3, 4, 5, 6, 7, 8}
	send(t, c, teredo.AppendRS(nil, nonce, cone), primary)
	d, from := recv(t, c)
	wantFrom := primary
	if cone {
		wantFrom = secondary
	}
	if from != netip.AddrPortFrom(wantFrom, teredo.Port) {
		t.Fatalf("cone %v: advertisement from %v, want %v:3544", cone, from, wantFrom)
	}
	adv, err := teredo.ParseRA(d, nonce, teredo.RSSource(cone))
	if err != nil {
		t.Fatal(err)
	}
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	if adv.Mapping != local || adv.Server != primary || adv.MTU != teredo.MTU {
		t.Fatalf("advertisement %+v, want mapping %v", adv, local)
	}
	return adv.ClientAddress(teredo.RandomFlags(0x1234))
}

// ipv6 builds an IPv6 packet with an ICMPv6 echo request of size bytes of
// data.
func ipv6(src, dst netip.Addr, size int) []byte {
	b := packet.AppendIPv6Header(nil, packet.ProtoICMPv6, 8+size, 64, src, dst)
	b = append(b, packet.TypeEchoRequest, 0, 0, 0, 0, 1, 0, 1)
	b = append(b, make([]byte, size)...)
	packet.SetICMPv6Checksum(b)
	return b
}

func TestServerAndRelay(t *testing.T) {
	f, sock := newFixture(t)
	a := sock("198.51.100.2:40000")
	b := sock("198.51.100.3:40001")

	addrA := qualify(t, a, false)
	qualify(t, a, true)
	addrB := qualify(t, b, false)
	f.waitCounter("solicitations", 3)

	// A Teredo client's packet for the intranet reaches the host.
	host := netip.MustParseAddr("2001:db8:c0::10")
	send(t, a, ipv6(addrA, host, 16), primary)
	f.waitCounter("packets_to_host", 1)
	f.mu.Lock()
	if len(f.toHost) != 1 || packet.Src(f.toHost[0]) != addrA || packet.Dst(f.toHost[0]) != host {
		t.Fatalf("to host: %x", f.toHost)
	}
	f.mu.Unlock()

	// The host's reply reaches the client from the primary address.
	if !f.srv.FromHost(ipv6(host, addrA, 16)) {
		t.Fatal("FromHost refused a Teredo destination")
	}
	f.srv.FlushHost()
	d, from := recv(t, a)
	if from != netip.AddrPortFrom(primary, teredo.Port) || packet.Dst(d.IPv6) != addrA || d.HasOrigin {
		t.Fatalf("relayed reply %+v from %v", d.Header, from)
	}
	if f.srv.FromHost(ipv6(host, netip.MustParseAddr("2001:db8:1::5"), 8)) {
		t.Fatal("FromHost took a packet for a native destination")
	}

	// A bubble from A to B goes to B with A's mapping as origin.
	send(t, a, teredo.AppendBubble(nil, addrA, addrB), primary)
	d, _ = recv(t, b)
	if !teredo.IsBubble(d.IPv6) || !d.HasOrigin || d.Origin != netip.MustParseAddrPort("198.51.100.2:40000") {
		t.Fatalf("bubble %+v", d.Header)
	}
	f.waitCounter("forwarded", 1)
	// Miredo sends its bubbles from a link-local address: they pass too.
	send(t, b, teredo.AppendBubble(nil, netip.MustParseAddr("fe80::1234"), addrA), primary)
	d, _ = recv(t, a)
	if !teredo.IsBubble(d.IPv6) || d.Origin != netip.MustParseAddrPort("198.51.100.3:40001") {
		t.Fatalf("link-local bubble %+v", d.Header)
	}
	f.waitCounter("forwarded", 2)
	// RFC 6081 trailers (here a nonce trailer and the alternate addresses
	// of the hairpinning extension) go with the bubble, intact.
	trailers := append([]byte{1, 4, 9, 8, 7, 6}, teredo.AppendAlternates(nil, netip.MustParseAddrPort("10.1.0.2:40000"))...)
	send(t, a, append(teredo.AppendBubble(nil, addrA, addrB), trailers...), primary)
	d, _ = recv(t, b)
	if !teredo.IsBubble(d.IPv6) || !d.HasOrigin || !bytes.Equal(d.Trailers, trailers) {
		t.Fatalf("bubble with trailers %+v: trailers % x, want % x", d.Header, d.Trailers, trailers)
	}
	f.waitCounter("forwarded", 3)
	send(t, a, append(teredo.AppendBubble(nil, addrA, addrB), make([]byte, maxForwardedTrailers+1)...), primary)
	f.waitCounter("drop_oversized_trailers", 1)

	// Refusals, each counted once.
	spoofed := teredo.Address{Server: primary, Mapped: netip.MustParseAddrPort("198.51.100.9:1")}.IPv6()
	send(t, a, ipv6(spoofed, host, 8), primary)
	f.waitCounter("drop_spoofed_source", 1)
	send(t, a, ipv6(addrA, netip.MustParseAddr("2001:db8:ff::1"), 8), primary)
	f.waitCounter("drop_egress_filter", 1)
	send(t, a, ipv6(addrA, addrB, 200), primary)
	f.waitCounter("drop_oversized_icmpv6", 1)
	send(t, a, []byte{0, 1, 2}, primary)
	f.waitCounter("drop_malformed", 1)
	send(t, a, ipv6(netip.MustParseAddr("fe80::1"), host, 8), primary)
	f.waitCounter("drop_link_local_source", 1)
	native := ipv6(netip.MustParseAddr("2001:db8:9::1"), addrA, 8)
	send(t, a, native, primary)
	f.waitCounter("drop_not_for_this_server", 1)

	// Nothing refused reached the host or the clients.
	f.waitCounter("packets_to_host", 1)
	a.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := a.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
		t.Fatalf("client A got %d unexpected bytes", n)
	}

	// show clients lists both, with their mappings.
	clients := f.srv.Clients()
	seen := map[string]bool{}
	for _, c := range clients {
		if c.Transport != "teredo" {
			t.Errorf("client %+v: transport %q", c, c.Transport)
		}
		seen[c.Mapping] = true
	}
	if !seen["198.51.100.2:40000"] || !seen["198.51.100.3:40001"] {
		t.Errorf("clients %+v", clients)
	}
}

func TestNonGlobalSourceAndConfig(t *testing.T) {
	f, sock := newFixture(t)
	c := sock("127.0.0.1:40000")
	send(t, c, teredo.AppendRS(nil, [8]byte{}, false), primary)
	f.waitCounter("drop_source_not_global", 1)
	if f.srv.Counters()["solicitations"] != 0 {
		t.Fatal("a solicitation from 127.0.0.1 was answered")
	}

	// Without the lab switch the documentation addresses are refused
	// before any socket is opened; a missing second address is named.
	if _, err := New(Options{Primary: primary}); err == nil {
		t.Fatal("documentation address accepted without Lab")
	}
	if _, err := New(Options{Primary: netip.MustParseAddr("10.0.0.1"), Lab: true}); err == nil {
		t.Fatal("private address accepted")
	}
}

// TestBindErrors checks the one-line reasons for a missing second address
// and a port in use.
func TestBindErrors(t *testing.T) {
	ns := netnstest.New(t, "iptsb-", "binds UDP 3544 in a namespace")
	netnstest.Run(t, "ip", "-n", ns, "addr", "add", "203.0.113.20/32", "dev", "lo")
	netnstest.Do(t, ns, func() error {
		_, err := New(Options{Primary: netip.MustParseAddr("203.0.113.20"), Lab: true})
		if err == nil || !strings.Contains(err.Error(), "secondary") || !strings.Contains(err.Error(), "not on this host") {
			t.Errorf("missing second address: %v", err)
		}
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", "203.0.113.21/32", "dev", "lo")
		busy, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("203.0.113.21:3544")))
		if err != nil {
			return err
		}
		defer busy.Close()
		_, err = New(Options{Primary: netip.MustParseAddr("203.0.113.20"), Lab: true})
		if err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("port in use: %v", err)
		}
		return nil
	})
}

// TestClientTableFull: a full client table refuses new mappings (counted)
// without scanning itself for each one, and still forgets stale entries.
// Scanning per solicitation made a full table cost about 1.5 ms per
// solicitation from a new mapping: a few hundred a second kept the socket
// reader busy and honest clients' datagrams were dropped by the kernel
// (TestTeredoHostile's RS flood).
func TestClientTableFull(t *testing.T) {
	s := &Server{clients: map[netip.AddrPort]*qualified{}, peers: peer.New(0, 0)}
	mapping := func(net byte, i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, net, byte(i >> 16)}), uint16(i))
	}
	for i := range maxQualified {
		s.noteClient(mapping(100, i), false)
	}
	const extra = 2000
	start := time.Now()
	for i := range extra {
		s.noteClient(mapping(101, i), false)
	}
	took := time.Since(start)
	if n := s.Counters()["drop_client_table_full"]; n != extra || len(s.clients) != maxQualified {
		t.Fatalf("full table: %d refused, %d entries; want %d, %d", n, len(s.clients), extra, maxQualified)
	}
	// A scan per refusal took over 2 s here; a scan per second, a few ms.
	if took > 500*time.Millisecond {
		t.Errorf("%d solicitations against a full table took %s: the table is scanned for each", extra, took)
	}
	t.Logf("%d solicitations against a full table of %d in %s", extra, maxQualified, took)

	// Stale entries still go: once the scan gap has passed, a new mapping
	// takes the place of expired ones.
	s.clientMu.Lock()
	stale := 0
	for _, q := range s.clients {
		if stale == 10 {
			break
		}
		q.last = q.last.Add(-qualifiedExpiry - time.Second)
		stale++
	}
	s.expired = s.expired.Add(-expiryScanGap)
	s.clientMu.Unlock()
	s.noteClient(mapping(102, 1), false)
	if _, ok := s.clients[mapping(102, 1)]; !ok || len(s.clients) != maxQualified-stale+1 {
		t.Fatalf("after expiry: new mapping kept %v, %d entries; want %d", ok, len(s.clients), maxQualified-stale+1)
	}
}
