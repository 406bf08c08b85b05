package router

import "net/netip"

// The ownership table: which client owns which address. Ownership is learned
// from source addresses and DAD targets and lasts until the client
// detaches; it is never handed from one attached client to another.

// claimResult is the outcome of claim.
type claimResult uint8

const (
	claimOK       claimResult = iota // the client owns the address (now or already)
	claimTaken                       // another client owns it
	claimLimit                       // the client owns MaxAddrsPerClient addresses
	claimDetached                    // the client is detached
)

// claimable reports whether a client may own a: a link-local or in-prefix
// unicast address that is not the server's.
func (r *Router) claimable(a netip.Addr) bool {
	return (a.IsLinkLocalUnicast() || r.cfg.Prefix.Contains(a)) && !r.isServerAddr(a)
}

// isServerAddr reports whether a is an address the server itself answers
// for: its link-local address, a host address, or the prefix's
// Subnet-Router anycast address (RFC 4291 section 2.6.1).
func (r *Router) isServerAddr(a netip.Addr) bool {
	return a == r.cfg.LinkLocal || a == r.anycast || r.isHostAddr(a)
}

// isHostAddr reports whether a is one of Config.HostAddrs.
func (r *Router) isHostAddr(a netip.Addr) bool {
	for _, h := range r.cfg.HostAddrs {
		if h == a {
			return true
		}
	}
	return false
}

// ownerOf returns the client owning a, or nil.
func (r *Router) ownerOf(a netip.Addr) *Client {
	r.mu.RLock()
	c := r.owners[a]
	r.mu.RUnlock()
	return c
}

// claim records that c owns the claimable address a. When another client
// owns a, claim returns claimTaken and that client.
func (r *Router) claim(c *Client, a netip.Addr) (claimResult, *Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.detached.Load() {
		return claimDetached, nil
	}
	switch o := r.owners[a]; {
	case o == c:
		return claimOK, nil
	case o != nil:
		return claimTaken, o
	}
	old := *c.addrs.Load()
	if len(old) >= r.cfg.MaxAddrsPerClient {
		return claimLimit, nil
	}
	next := make([]netip.Addr, len(old), len(old)+1)
	copy(next, old)
	next = append(next, a)
	c.addrs.Store(&next)
	r.owners[a] = c
	r.counters.learned.Add(1)
	return claimOK, nil
}

// checkSource verifies that c may send from src, which is not ::, learning
// src for c when nobody owns it yet.
func (r *Router) checkSource(c *Client, src netip.Addr) (DropReason, bool) {
	if c.knows(src) {
		return 0, true
	}
	if !r.claimable(src) {
		return DropSpoofedSource, false
	}
	switch o := r.ownerOf(src); {
	case o == c:
		c.remember(src)
		return 0, true
	case o != nil:
		return DropSpoofedSource, false
	}
	switch res, _ := r.claim(c, src); res {
	case claimTaken:
		return DropSpoofedSource, false
	case claimLimit:
		return DropAddrLimit, false
	case claimDetached:
		return DropDetached, false
	}
	c.remember(src)
	return 0, true
}
