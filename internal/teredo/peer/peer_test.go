package peer

import (
	"net/netip"
	"testing"
	"time"
)

var (
	p1 = netip.MustParseAddr("2001:0:cb00:710a::1")
	p2 = netip.MustParseAddr("2001:0:cb00:710a::2")
	m1 = netip.MustParseAddrPort("198.51.100.2:40000")
)

func TestTrustAndValidity(t *testing.T) {
	l := New(4, 0)
	now := time.Unix(1000, 0)
	if _, ok := l.Route(p1, now); ok {
		t.Fatal("unknown peer routed")
	}
	if !l.Queue(p1, []byte{1, 2, 3}, now) || !l.Queue(p1, []byte{4}, now) {
		t.Fatal("queue refused")
	}
	if _, ok := l.Route(p1, now); ok {
		t.Fatal("untrusted peer routed")
	}
	if l.Received(p1, m1, now) {
		t.Fatal("Received trusted an untrusted peer")
	}
	q := l.Heard(p1, m1, now)
	if len(q) != 2 || string(q[0]) != "\x01\x02\x03" || string(q[1]) != "\x04" {
		t.Fatalf("flushed %v", q)
	}
	if m, ok := l.Route(p1, now.Add(Validity)); !ok || m != m1 {
		t.Fatalf("trusted peer: %v %v", m, ok)
	}
	if _, ok := l.Route(p1, now.Add(Validity+time.Millisecond)); ok {
		t.Fatal("routed past the validity")
	}
	if l.Received(p1, netip.MustParseAddrPort("198.51.100.2:40001"), now) {
		t.Fatal("another port accepted")
	}
	if !l.Received(p1, m1, now.Add(time.Minute)) {
		t.Fatal("the trusted mapping refused")
	}
	if _, ok := l.Route(p1, now.Add(time.Minute+time.Second)); !ok {
		t.Fatal("Received did not renew the validity")
	}
}

func TestBounds(t *testing.T) {
	l := New(2, 8)
	now := time.Unix(1000, 0)
	if !l.Queue(p1, make([]byte, 8), now) || l.Queue(p1, []byte{1}, now) {
		t.Fatal("per-peer queue budget of 8 bytes not kept")
	}
	l.Heard(p2, m1, now)
	l.Heard(netip.MustParseAddr("2001::3"), m1, now) // evicts p1, the least recently used
	if _, ok := l.Lookup(p1); ok || l.Len() != 2 {
		t.Fatalf("p1 not evicted: %d entries", l.Len())
	}
	st := l.Stats()
	if st.Evicted != 1 || st.QueueDrops != 1 || st.Peers != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBubbleLimits(t *testing.T) {
	l := New(0, 0)
	now := time.Unix(1000, 0)
	sent := 0
	for i := range 200 { // 100 s in half-second steps
		if l.Bubble(p1, now.Add(time.Duration(i)*500*time.Millisecond)) {
			sent++
		}
	}
	if sent != BubbleBudget {
		t.Fatalf("%d bubbles in 100 s, want %d", sent, BubbleBudget)
	}
	if !l.Bubble(p2, now) || l.Bubble(p2, now.Add(BubbleGap-time.Millisecond)) || !l.Bubble(p2, now.Add(BubbleGap)) {
		t.Fatal("2 s gap between bubbles not kept")
	}
	// An answer resets the budget; a new window does too.
	l.Heard(p1, m1, now.Add(101*time.Second))
	if !l.Bubble(p1, now.Add(104*time.Second)) {
		t.Fatal("budget not reset by an answer")
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	l := New(0, 0)
	now := time.Now()
	l.Heard(p1, m1, now)
	if n := testing.AllocsPerRun(1000, func() {
		if _, ok := l.Route(p1, now); !ok {
			panic("route")
		}
		l.Received(p1, m1, now)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// TestTotalQueueBound: all peers together queue at most
// DefaultTotalQueueBytes, and what leaves (trust, eviction) frees room.
func TestTotalQueueBound(t *testing.T) {
	l := New(0, 0)
	now := time.Unix(1000, 0)
	pkt := make([]byte, 1000)
	kept := 0
	for i := range DefaultTotalQueueBytes/1000 + 100 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		if l.Queue(a, pkt, now) {
			kept++
		}
	}
	if kept != DefaultTotalQueueBytes/1000 || l.Stats().QueueDrops != 100+uint64(DefaultTotalQueueBytes/1000-kept) {
		t.Fatalf("kept %d packets of 1000 bytes, want %d; stats %+v", kept, DefaultTotalQueueBytes/1000, l.Stats())
	}
	first := netip.AddrFrom16([16]byte{0x20, 0x01, 15: 0})
	l.Heard(first, m1, now)
	if !l.Queue(p1, pkt, now) {
		t.Fatal("a trusted peer's flushed queue did not free its room")
	}
}

func BenchmarkRoute(b *testing.B) {
	l := New(0, 0)
	now := time.Now()
	for i := range 10000 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		l.Heard(a, m1, now)
	}
	dst := netip.AddrFrom16([16]byte{0x20, 0x01, 14: 0x13, 15: 0x88}) // peer 5000
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := l.Route(dst, now); !ok {
			b.Fatal("no route")
		}
	}
}

// A peer behind our NAT is trusted at an alternate address only if we
// already have its entry and the address is one it announced: recorded
// from a bubble our server relayed, or carried by the bubble itself.
func TestHeardAlternate(t *testing.T) {
	l := New(4, 0)
	now := time.Unix(1000, 0)
	a1 := netip.MustParseAddrPort("10.1.0.2:40000")
	a2 := netip.MustParseAddrPort("10.1.0.3:40000")
	other := netip.MustParseAddrPort("10.9.9.9:40000")

	if _, ok := l.HeardAlternate(p1, a1, []netip.AddrPort{a1}, now); ok || l.Len() != 0 {
		t.Fatalf("an unknown peer was heard at an alternate address (%d entries)", l.Len())
	}
	l.Queue(p1, []byte("queued"), now)
	if _, ok := l.HeardAlternate(p1, other, []netip.AddrPort{a1}, now); ok {
		t.Fatal("an address the peer never announced was accepted")
	}
	if _, ok := l.HeardAlternate(p1, netip.AddrPort{}, nil, now); ok {
		t.Fatal("the zero address (an unused alternate) was accepted")
	}
	if e, _ := l.Lookup(p1); e.Trusted {
		t.Fatal("refusals changed the entry")
	}
	q, ok := l.HeardAlternate(p1, a1, []netip.AddrPort{a1}, now)
	if !ok || len(q) != 1 || string(q[0]) != "queued" {
		t.Fatalf("announced by the bubble: %v %q", ok, q)
	}
	if m, ok := l.Route(p1, now); !ok || m != a1 {
		t.Fatalf("route %v %v, want the alternate address %v", m, ok, a1)
	}
	if !l.Received(p1, a1, now) {
		t.Fatal("traffic from the trusted alternate address refused")
	}

	// Recorded from a relayed bubble: later packets need not carry them.
	l.SetAlternates(p2, []netip.AddrPort{a1, a2}, now)
	if e, ok := l.Lookup(p2); !ok || e.Trusted || e.Alternates[0] != a1 || e.Alternates[1] != a2 || e.Alternates[2].IsValid() {
		t.Fatalf("entry after SetAlternates: %+v", e)
	}
	if _, ok := l.HeardAlternate(p2, a2, nil, now); !ok {
		t.Fatal("a recorded alternate address refused")
	}
	l.SetAlternates(p2, []netip.AddrPort{other}, now)
	if e, _ := l.Lookup(p2); e.Alternates[0] != other || e.Alternates[1].IsValid() {
		t.Fatalf("SetAlternates did not replace the old addresses: %v", e.Alternates)
	}
	l.SetAlternates(p2, []netip.AddrPort{a1, a1, a1, a1, a2}, now)
	if e, _ := l.Lookup(p2); e.Alternates[3] != a1 {
		t.Fatalf("more than the trailer's four: %v", e.Alternates)
	}
}
