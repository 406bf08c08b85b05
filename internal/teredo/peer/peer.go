// Package peer is the Teredo peer list (RFC 4380 sections 5.2.3 to 5.2.6
// and 5.4): which IPv4 address and port reach an IPv6 peer, whether that
// mapping is trusted, the packets waiting for it to become so, the bubble
// budget, and the alternate addresses of a peer behind the same NAT
// (RFC 6081 section 4.3). Teredo clients and relays keep the same list.
//
// The list is bounded: a full list forgets its least recently used peer,
// so spoofed sources and scans cost a bounded amount of memory. Lookups do
// not allocate.
package peer

import (
	"container/list"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/iphttps/iphttps/internal/teredo"
)

// Timers of RFC 4380.
const (
	// Validity is how long after the last packet received from a peer its
	// mapping may be used (section 5.2.4).
	Validity = 30 * time.Second
	// BubbleGap is the least time between two bubbles to one peer
	// (section 5.2.6).
	BubbleGap = 2 * time.Second
	// BubbleWindow and BubbleBudget: at most BubbleBudget bubbles in
	// BubbleWindow without an answer (section 5.2.6).
	BubbleWindow = 300 * time.Second
	BubbleBudget = 4
)

// Defaults of a List.
const (
	DefaultMaxPeers   = 65536
	DefaultQueueBytes = 4096 // per peer, while its mapping is not trusted
	// DefaultTotalQueueBytes bounds what all peers queue together: without
	// it a flood towards many peers that never answer could hold
	// DefaultMaxPeers x DefaultQueueBytes (256 MiB).
	DefaultTotalQueueBytes = 16 << 20
)

// Peer is one peer's entry. Its fields are read under the list's lock, so
// callers get copies (Lookup) or act through the list's methods.
type Peer struct {
	Addr    netip.Addr
	Mapping netip.AddrPort // valid when Trusted (or set from a cone address)
	Trusted bool
	LastRX  time.Time
	LastTX  time.Time
	// Nonce of the direct connectivity test (section 5.2.9) in progress.
	Nonce   [8]byte
	Testing bool
	// Alternates are the private addresses at which a peer behind our own
	// NAT said it can be reached (RFC 6081 section 4.3, hairpinning), in a
	// bubble our server relayed; unused entries are zero.
	Alternates [teredo.MaxAlternates]netip.AddrPort

	bubbles     int       // bubbles sent in the current window without an answer
	windowStart time.Time // start of that window
	queue       [][]byte
	queued      int // bytes in queue
	elem        *list.Element
}

// Stats counts what the list did.
type Stats struct {
	Peers, Evicted, QueueDrops, BubblesRefused uint64
}

// List is a bounded peer list, safe for concurrent use.
type List struct {
	mu         sync.Mutex
	peers      map[netip.Addr]*Peer
	lru        list.List // of *Peer, most recently used first
	max        int
	queueBytes int
	queued     int // bytes queued by all peers
	st         Stats
}

// New makes a list of at most maxPeers peers, each queueing at most
// queueBytes while untrusted (0: the defaults).
func New(maxPeers, queueBytes int) *List {
	if maxPeers <= 0 {
		maxPeers = DefaultMaxPeers
	}
	if queueBytes <= 0 {
		queueBytes = DefaultQueueBytes
	}
	l := &List{peers: map[netip.Addr]*Peer{}, max: maxPeers, queueBytes: queueBytes}
	l.lru.Init()
	return l
}

// Route returns the mapping to send a packet for dst to, when dst has a
// trusted entry heard from within Validity; it notes the transmission.
func (l *List) Route(dst netip.Addr, now time.Time) (netip.AddrPort, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[dst]
	if p == nil || !p.Trusted || now.Sub(p.LastRX) > Validity {
		return netip.AddrPort{}, false
	}
	p.LastTX = now
	l.lru.MoveToFront(p.elem)
	return p.Mapping, true
}

// Lookup returns a copy of dst's entry.
func (l *List) Lookup(dst netip.Addr) (Peer, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[dst]
	if p == nil {
		return Peer{}, false
	}
	c := *p
	c.queue, c.elem = nil, nil
	return c, true
}

// Heard records a packet received from src at mapping that proved the
// mapping (an embedded mapping equal to the packet's source, or an echo
// reply carrying the test's nonce): the entry becomes trusted, and the
// packets queued for it are returned for sending, in order. Heard creates
// the entry if needed; a new entry counts as having sent long ago
// (RFC 4380 section 5.2.3).
func (l *List) Heard(src netip.Addr, mapping netip.AddrPort, now time.Time) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.trust(l.get(src, now), mapping, now)
}

// SetAlternates records the alternate addresses src announced (at most
// teredo.MaxAlternates are kept), replacing those it announced before;
// it creates src's entry if needed.
func (l *List) SetAlternates(src netip.Addr, alts []netip.AddrPort, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.get(src, now)
	p.Alternates = [teredo.MaxAlternates]netip.AddrPort{}
	copy(p.Alternates[:], alts)
}

// HeardAlternate records a packet received from src at one of its
// alternate addresses, from: one recorded by SetAlternates or, for a
// bubble, one of announced (the alternate addresses the bubble itself
// carries). Then, as with Heard, the entry becomes trusted with from as
// its mapping and the packets queued for it are returned. ok is false, and
// nothing changes, when src has no entry (HeardAlternate never creates
// one: we must have sent src bubbles or learned its alternates from our
// server) or from is none of its alternate addresses.
func (l *List) HeardAlternate(src netip.Addr, from netip.AddrPort, announced []netip.AddrPort, now time.Time) (q [][]byte, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[src]
	if p == nil || !from.IsValid() || !slices.Contains(p.Alternates[:], from) && !slices.Contains(announced, from) {
		return nil, false
	}
	l.lru.MoveToFront(p.elem)
	return l.trust(p, from, now), true
}

// trust makes p trusted at mapping, heard now, and returns its queue.
// Called with l.mu held.
func (l *List) trust(p *Peer, mapping netip.AddrPort, now time.Time) [][]byte {
	p.Mapping, p.Trusted, p.LastRX, p.Testing = mapping, true, now, false
	p.bubbles = 0
	q := p.queue
	l.queued -= p.queued
	p.queue, p.queued = nil, 0
	return q
}

// Received notes traffic from a trusted src at mapping; it reports false
// (and changes nothing) when src has no trusted entry with that mapping.
func (l *List) Received(src netip.Addr, mapping netip.AddrPort, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[src]
	if p == nil || !p.Trusted || p.Mapping != mapping {
		return false
	}
	p.LastRX = now
	l.lru.MoveToFront(p.elem)
	return true
}

// Queue holds pkt (copied) for dst until its mapping is trusted, within the
// per-peer byte budget; it reports whether it was kept.
func (l *List) Queue(dst netip.Addr, pkt []byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.get(dst, now)
	if p.queued+len(pkt) > l.queueBytes || l.queued+len(pkt) > DefaultTotalQueueBytes {
		l.st.QueueDrops++
		return false
	}
	p.queue = append(p.queue, append([]byte(nil), pkt...))
	p.queued += len(pkt)
	l.queued += len(pkt)
	return true
}

// Bubble reports whether a bubble to dst may be sent now under the rate
// limits of RFC 4380 section 5.2.6, and if so counts it.
func (l *List) Bubble(dst netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.get(dst, now)
	if now.Sub(p.windowStart) > BubbleWindow {
		p.windowStart, p.bubbles = now, 0
	}
	if p.bubbles >= BubbleBudget || now.Sub(p.LastTX) < BubbleGap {
		l.st.BubblesRefused++
		return false
	}
	p.bubbles++
	p.LastTX = now
	return true
}

// StartTest records the nonce of a direct connectivity test towards dst;
// it reports false when a test is already running (then nonce is not
// stored).
func (l *List) StartTest(dst netip.Addr, nonce [8]byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.get(dst, now)
	if p.Testing {
		return false
	}
	p.Nonce, p.Testing = nonce, true
	return true
}

// Forget removes dst's entry and returns how many queued packets went
// with it.
func (l *List) Forget(dst netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[dst]
	if p == nil {
		return 0
	}
	l.remove(p)
	return len(p.queue)
}

// Len is the number of entries.
func (l *List) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}

// Stats returns the list's counters.
func (l *List) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.Peers = uint64(len(l.peers))
	return st
}

// Each calls f with a copy of every entry, most recently used first.
func (l *List) Each(f func(Peer)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for e := l.lru.Front(); e != nil; e = e.Next() {
		c := *e.Value.(*Peer)
		c.queue, c.elem = nil, nil
		f(c)
	}
}

// get returns addr's entry, creating it (and evicting the least recently
// used one if the list is full). Called with l.mu held.
func (l *List) get(addr netip.Addr, now time.Time) *Peer {
	if p := l.peers[addr]; p != nil {
		l.lru.MoveToFront(p.elem)
		return p
	}
	if len(l.peers) >= l.max {
		l.remove(l.lru.Back().Value.(*Peer))
		l.st.Evicted++
	}
	// A new entry has "sent" long ago, so the first bubble may go at once.
	p := &Peer{Addr: addr, LastTX: now.Add(-Validity), windowStart: now}
	p.elem = l.lru.PushFront(p)
	l.peers[addr] = p
	return p
}

func (l *List) remove(p *Peer) {
	l.lru.Remove(p.elem)
	delete(l.peers, p.Addr)
	l.queued -= p.queued
}
