package server

import (
	"net/netip"
	"sync"
)

// Why a connection or a session was refused; each has its counter.
const (
	refusedPending       = "refused_pending_limit"        // too many connections in their handshake
	refusedPendingSource = "refused_pending_source_limit" // ... from this address
	refusedFull          = "refused_full"                 // the client table is full
	refusedSource        = "refused_source_limit"         // this address has its share of sessions
)

// slot is what admission counts: connections still in their TLS handshake
// or request head ("pending"), and sessions.
type slot int

const (
	slotPending slot = iota
	slotSession
	slots
)

// refusal names the reasons a slot is refused: over the total, over the
// source's share.
var refusal = [slots][2]string{
	slotPending: {refusedPending, refusedPendingSource},
	slotSession: {refusedFull, refusedSource},
}

// admission counts the slots taken in all and per client address, and
// refuses what would go over the limits. Limits are passed in by the
// caller, so a reload applies to the next decision.
type admission struct {
	mu       sync.Mutex
	total    [slots]int
	bySource map[netip.Addr]*[slots]int
}

func newAdmission() *admission {
	return &admission{bySource: map[netip.Addr]*[slots]int{}}
}

// take takes a slot of kind k for src unless that would exceed max in all
// or perSource (0: no limit) for src; it returns the refusal reason, or ""
// when taken (then release must follow).
func (a *admission) take(k slot, src netip.Addr, max, perSource int) string {
	src = sourceKey(src)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total[k] >= max {
		return refusal[k][0]
	}
	c := a.bySource[src]
	if perSource > 0 && c != nil && c[k] >= perSource {
		return refusal[k][1]
	}
	if c == nil {
		c = new([slots]int)
		a.bySource[src] = c
	}
	a.total[k]++
	c[k]++
	return ""
}

// release gives back a slot of kind k taken for src. Giving back one not
// taken does nothing: the counts never go below zero.
func (a *admission) release(k slot, src netip.Addr) {
	src = sourceKey(src)
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.bySource[src]
	if c == nil || c[k] == 0 {
		return
	}
	a.total[k]--
	c[k]--
	if *c == ([slots]int{}) {
		delete(a.bySource, src)
	}
}

// sourceKey is what the per-source limits count by: an IPv4 address, or
// the /64 of an IPv6 one (a host commonly holds a whole /64 and could
// otherwise take a new share from each of its addresses).
func sourceKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func (a *admission) beginPending(src netip.Addr, l Limits) string {
	return a.take(slotPending, src, l.MaxPending, l.MaxPendingPerSource)
}

func (a *admission) endPending(src netip.Addr) { a.release(slotPending, src) }

func (a *admission) addSession(src netip.Addr, l Limits) string {
	return a.take(slotSession, src, l.MaxClients, l.MaxClientsPerSource)
}

func (a *admission) removeSession(src netip.Addr) { a.release(slotSession, src) }

// counts returns the connections pending and the sessions held, and how
// many sources (addresses, IPv6 /64s) hold either.
func (a *admission) counts() (pendingN, sessions, sources int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total[slotPending], a.total[slotSession], len(a.bySource)
}
