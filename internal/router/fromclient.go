package router

import (
	"net/netip"

	"github.com/iphttps/iphttps/internal/packet"
)

// FromClient handles one packet read from c's connection and says what
// became of it; for ToHost the caller writes pkt to the host.
//
// FromClient may rewrite pkt in place (the hop limit of packets it routes
// between clients in ModeNone) and does not retain it. It is safe to call
// concurrently, also for the same client.
func (r *Router) FromClient(c *Client, pkt []byte) Action {
	if c.detached.Load() {
		// The client's counters are retired: count router-wide only.
		return r.drop(DropDetached)
	}
	c.counters.rxPackets.Add(1)
	c.counters.rxBytes.Add(uint64(len(pkt)))
	if len(pkt) < packet.HeaderLen {
		return r.dropFrom(c, DropMalformed)
	}
	if packet.Version(pkt) != 6 {
		return r.dropFrom(c, DropNotIPv6)
	}
	if packet.HeaderLen+packet.PayloadLen(pkt) != len(pkt) {
		return r.dropFrom(c, DropMalformed)
	}
	src, dst := packet.Src(pkt), packet.Dst(pkt)
	typ, isICMP := packet.ICMPv6Type(pkt)
	isND := isICMP && packet.IsND(typ)

	// Source first: nothing else is looked at before the client is known
	// to own the source address.
	if src.IsUnspecified() {
		// Only a node without an address yet may send from ::, and only to
		// solicit routers or to probe for duplicates.
		dad := typ == packet.TypeNeighborSolicitation && packet.IsSolicitedNode(dst)
		if !isND || (typ != packet.TypeRouterSolicitation && !dad) {
			return r.dropFrom(c, DropSpoofedSource)
		}
	} else if reason, ok := r.checkSource(c, src); !ok {
		return r.dropFrom(c, reason)
	}

	if isND {
		return r.fromClientND(c, pkt, typ, src, dst)
	}
	if reason, bad := hiddenND(pkt); bad {
		return r.dropFrom(c, reason)
	}
	return r.forward(c, pkt, dst)
}

// hiddenND finds ND messages placed behind extension headers, which the
// router does not accept: Router Advertisements and Redirects are router
// messages wherever they sit (RA-Guard, RFC 7113), other ND types are
// refused as malformed since the router only processes ND that directly
// follows the fixed header. A header chain that cannot be followed is
// malformed too (RFC 7112).
func hiddenND(pkt []byte) (DropReason, bool) {
	switch packet.NextHeader(pkt) {
	case packet.ProtoHopByHop, packet.ProtoRouting, packet.ProtoFragment, packet.ProtoDestOpts, packet.ProtoAH:
	default:
		return 0, false
	}
	proto, off, ok := packet.UpperLayer(pkt)
	switch {
	case !ok:
		return DropMalformed, true
	case proto != packet.ProtoICMPv6 || off >= len(pkt):
		return 0, false
	}
	switch typ := pkt[off]; {
	case typ == packet.TypeRouterAdvertisement || typ == packet.TypeRedirect:
		return DropRouterMessage, true
	case packet.IsND(typ):
		return DropMalformed, true
	}
	return 0, false
}

// forward delivers a packet from c that the router does not consume, by
// its destination.
func (r *Router) forward(c *Client, pkt []byte, dst netip.Addr) Action {
	switch {
	case dst.IsMulticast():
		return r.multicastFromClient(c, pkt, dst)
	case r.isServerAddr(dst):
		return r.toHost(c)
	case dst.IsLinkLocalUnicast():
		if r.mode() == ModeNone {
			return r.dropFrom(c, DropLinkLocal)
		}
		return r.deliver(c, pkt, dst, false)
	case r.cfg.Prefix.Contains(dst):
		// In ModeNone clients are not neighbors: the server routes
		// between them. In ModeCertificates the link is shared.
		return r.deliver(c, pkt, dst, r.mode() == ModeNone)
	case dst.IsUnspecified() || dst.IsLoopback():
		return r.dropFrom(c, DropMalformed)
	}
	// Beyond the link: the host's routing table decides, and the kernel
	// handles the hop limit and ICMP errors.
	return r.toHost(c)
}

func (r *Router) toHost(c *Client) Action {
	c.counters.toHost.Add(1)
	return ToHost
}

// deliver hands a unicast packet from c to the client owning dst. When
// route is set the server acts as a router and decrements the hop limit.
func (r *Router) deliver(c *Client, pkt []byte, dst netip.Addr, route bool) Action {
	r.mu.RLock()
	o := r.owners[dst]
	var reason DropReason
	switch {
	case o == nil:
		reason = DropNoNeighbor
	case o != c && r.isolate.Load():
		reason = DropIsolated
	case route && packet.HopLimit(pkt) <= 1:
		reason = DropHopLimit
	default:
		if route {
			packet.SetHopLimit(pkt, packet.HopLimit(pkt)-1)
		}
		if r.sendLocked(o, pkt) {
			r.mu.RUnlock()
			return Handled
		}
		r.mu.RUnlock()
		// sendLocked counted the router-wide drop.
		c.counters.drops[DropQueueFull].Add(1)
		return Dropped
	}
	r.mu.RUnlock()
	return r.dropFrom(c, reason)
}

// multicastFromClient handles multicast other than ND from c: forbidden in
// ModeNone; flooded to the other clients in ModeCertificates.
func (r *Router) multicastFromClient(c *Client, pkt []byte, dst netip.Addr) Action {
	if r.mode() == ModeNone || !onLinkScope(dst) {
		return r.dropFrom(c, DropMulticast)
	}
	r.flood(pkt, c)
	return Handled
}

// onLinkScope reports whether the multicast address a may appear on a
// link: interface-local (1) and reserved (0) scopes may not (RFC 4291
// section 2.7).
func onLinkScope(a netip.Addr) bool {
	b := a.As16()
	return b[1]&0x0f > 1
}
