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

// admission counts, per client address, the connections still in their TLS
// handshake or request head ("pending") and the sessions, and refuses what
// would go over the limits. Limits are passed in by the caller, so a reload
// applies to the next decision.
type admission struct {
	mu       sync.Mutex
	pending  int
	sessions int
	bySource map[netip.Addr]*sourceCount
}

type sourceCount struct{ pending, sessions int }

func newAdmission() *admission {
	return &admission{bySource: map[netip.Addr]*sourceCount{}}
}

func (a *admission) source(src netip.Addr) *sourceCount {
	c := a.bySource[src]
	if c == nil {
		c = &sourceCount{}
		a.bySource[src] = c
	}
	return c
}

// forget drops an address that holds nothing any more.
func (a *admission) forget(src netip.Addr, c *sourceCount) {
	if c.pending == 0 && c.sessions == 0 {
		delete(a.bySource, src)
	}
}

// beginPending admits a new connection from src into its handshake; it
// returns the refusal reason, or "" when admitted (then endPending must
// follow).
func (a *admission) beginPending(src netip.Addr, l Limits) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending >= l.MaxPending {
		return refusedPending
	}
	c := a.source(src)
	if l.MaxPendingPerSource > 0 && c.pending >= l.MaxPendingPerSource {
		a.forget(src, c)
		return refusedPendingSource
	}
	a.pending++
	c.pending++
	return ""
}

func (a *admission) endPending(src netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.source(src)
	a.pending--
	c.pending--
	a.forget(src, c)
}

// addSession admits a session from src; "" when admitted (then
// removeSession must follow).
func (a *admission) addSession(src netip.Addr, l Limits) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions >= l.MaxClients {
		return refusedFull
	}
	c := a.source(src)
	if l.MaxClientsPerSource > 0 && c.sessions >= l.MaxClientsPerSource {
		a.forget(src, c)
		return refusedSource
	}
	a.sessions++
	c.sessions++
	return ""
}

func (a *admission) removeSession(src netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.source(src)
	a.sessions--
	c.sessions--
	a.forget(src, c)
}

// counts returns the connections pending and the sessions held.
func (a *admission) counts() (pending, sessions, sources int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending, a.sessions, len(a.bySource)
}
