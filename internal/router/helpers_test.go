package router

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/mdlayher/ndp"
)

// fakePort records what the router sends it.
type fakePort struct {
	mu     sync.Mutex
	got    [][]byte
	full   bool // refuse every packet
	closed bool // set by the test after Detach: any Send is a bug
	late   int  // Sends seen while closed
}

func (p *fakePort) Send(pkt []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.late++
		return false
	}
	if p.full {
		return false
	}
	p.got = append(p.got, slices.Clone(pkt))
	return true
}

// take returns and forgets what the port received.
func (p *fakePort) take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.got
	p.got = nil
	return got
}

// countPort counts packets without copying them: for allocation tests and
// benchmarks.
type countPort struct{ n int }

func (p *countPort) Send([]byte) bool { p.n++; return true }

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

// Addresses used throughout the tests.
const (
	prefix    = "2001:db8:1::/64"
	hostAddr  = "2001:db8:1::1"
	anycast   = "2001:db8:1::"
	serverLL  = "fe80::1"
	outside   = "2001:db8:ffff::5"
	llA       = "fe80::a"
	llB       = "fe80::b"
	llC       = "fe80::c"
	gA        = "2001:db8:1::a"
	gB        = "2001:db8:1::b"
	gC        = "2001:db8:1::c"
	unowned   = "2001:db8:1::99"
	unownedLL = "fe80::99"
)

func baseConfig(mode Mode) Config {
	return Config{
		Mode:      mode,
		Prefix:    netip.MustParsePrefix(prefix),
		HostAddrs: []netip.Addr{a(hostAddr)},
		Routes:    []netip.Prefix{netip.MustParsePrefix("2001:db8:c0::/48")},
	}
}

// fixture is a router with clients A, B and C attached. A and B own their
// link-local and global addresses; C owns only its link-local address.
type fixture struct {
	t     testing.TB
	r     *Router
	ports []*fakePort
	cs    []*Client
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f := &fixture{t: t, r: r}
	for range 3 {
		p := &fakePort{}
		f.ports = append(f.ports, p)
		f.cs = append(f.cs, r.Attach(p))
	}
	f.learn(0, llA, gA)
	f.learn(1, llB, gB)
	f.learn(2, llC)
	return f
}

// learn makes client i own addrs by sending from them.
func (f *fixture) learn(i int, addrs ...string) {
	f.t.Helper()
	for _, s := range addrs {
		if got := f.r.FromClient(f.cs[i], udp(s, outside, 64)); got != ToHost {
			f.t.Fatalf("learning %s for client %d: %v", s, i, got)
		}
		if o, ok := f.r.Owner(a(s)); !ok || o != f.cs[i] {
			f.t.Fatalf("after learning, Owner(%s) = %v, %v", s, o, ok)
		}
	}
}

// clear forgets everything the ports received.
func (f *fixture) clear() {
	for _, p := range f.ports {
		p.take()
	}
}

// ipv6Packet builds an IPv6 packet.
func ipv6Packet(next, hop uint8, src, dst string, payload []byte) []byte {
	b := make([]byte, packet.HeaderLen+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6], b[7] = next, hop
	s, d := a(src).As16(), a(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], payload)
	return b
}

// udp builds a UDP packet with 8 bytes of data.
func udp(src, dst string, hop uint8) []byte {
	return ipv6Packet(17, hop, src, dst, []byte{0x12, 0x34, 0x00, 0x35, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
}

// icmp builds an ICMPv6 message (type, code 0, no valid checksum) directly
// after the fixed header.
func icmp(typ uint8, hop uint8, src, dst string) []byte {
	return ipv6Packet(58, hop, src, dst, []byte{typ, 0, 0, 0, 0, 0, 0, 0})
}

// nd builds a valid ND packet.
func nd(t testing.TB, src, dst string, m ndp.Message) []byte {
	t.Helper()
	b, err := packet.BuildICMPv6(a(src), a(dst), 255, m)
	if err != nil {
		t.Fatalf("BuildICMPv6: %v", err)
	}
	return b
}

func ns(target string) *ndp.NeighborSolicitation {
	return &ndp.NeighborSolicitation{TargetAddress: a(target)}
}

// dadNS builds a DAD probe for target.
func dadNS(t testing.TB, target string) []byte {
	return nd(t, "::", packet.SolicitedNode(a(target)).String(), ns(target))
}

// withHop returns a copy of pkt with another hop limit.
func withHop(pkt []byte, hop uint8) []byte {
	b := slices.Clone(pkt)
	packet.SetHopLimit(b, hop)
	return b
}

// ext returns an extension header of the given next header and length in
// 8-byte units beyond the first 8.
func ext(next uint8, units uint8) []byte {
	h := make([]byte, (int(units)+1)*8)
	h[0], h[1] = next, units
	return h
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func rs() *ndp.RouterSolicitation { return &ndp.RouterSolicitation{} }
