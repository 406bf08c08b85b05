package router

import (
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
)

// Port is one client's connection as the router sees it.
//
// Send hands pkt to the client. It must copy pkt (the router and its
// callers reuse their buffers), must not modify it, and must not block: it
// returns false if the packet was dropped, for example because the
// connection's queue is full. Send may be called concurrently from several
// goroutines. The router calls Send with its client table read-locked, so
// Send must not call back into the Router (Detach it later instead); in
// return, the router never calls Send once Detach for the port's client
// has returned.
type Port interface {
	Send(pkt []byte) bool
}

// Client is the router-side state of one attached Port.
type Client struct {
	id   uint64
	port Port

	// detached is set, under Router.mu, by Detach.
	detached atomic.Bool
	// index is the client's position in Router.clients; guarded by
	// Router.mu.
	index int

	// addrs is the immutable list of addresses the client owns, replaced
	// (copy-on-write) under Router.mu. Addresses are only ever added while
	// the client is attached.
	addrs atomic.Pointer[[]netip.Addr]
	// last points into an addrs snapshot at the source address most
	// recently verified, so repeat sources skip the ownership table.
	// Because a client never loses an address while attached, any address
	// it points at is owned by the client.
	last atomic.Pointer[netip.Addr]

	counters clientCounters
}

// ID returns the client's number, unique within its Router.
func (c *Client) ID() uint64 { return c.id }

// String returns "client N".
func (c *Client) String() string { return fmt.Sprintf("client %d", c.id) }

// Port returns the port the client was attached with.
func (c *Client) Port() Port { return c.port }

// Addrs returns the addresses the client owns, in the order it claimed
// them. It is empty once the client is detached.
func (c *Client) Addrs() []netip.Addr {
	return slices.Clone(*c.addrs.Load())
}

// knows reports, without locking, whether a is the client's most recently
// verified source address.
func (c *Client) knows(a netip.Addr) bool {
	p := c.last.Load()
	return p != nil && *p == a
}

// remember makes a, which the client owns, its most recently verified
// source address.
func (c *Client) remember(a netip.Addr) {
	snap := *c.addrs.Load()
	for i := range snap {
		if snap[i] == a {
			c.last.Store(&snap[i])
			return
		}
	}
}
