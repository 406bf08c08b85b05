package router

import (
	"net/netip"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/mdlayher/ndp"
)

// Neighbor Discovery from clients. The router is the link's ND engine:
// ND is answered or relayed here and never passed to the host.

// fromClientND handles an ICMPv6 ND message (type 133-137 directly after
// the fixed header) from c, whose source has been checked.
func (r *Router) fromClientND(c *Client, pkt []byte, typ uint8, src, dst netip.Addr) Action {
	if typ == packet.TypeRouterAdvertisement || typ == packet.TypeRedirect {
		return r.dropFrom(c, DropRouterMessage)
	}
	m, err := packet.ParseND(pkt)
	if err != nil {
		return r.dropFrom(c, DropMalformed)
	}
	switch m := m.(type) {
	case *ndp.RouterSolicitation:
		// Answered whatever its destination: the server is the only
		// router on the link ([MS-IPHTTPS] 3.2.5.2.1: never dropped).
		if src.IsUnspecified() {
			r.sendRA(c, packet.AllNodes())
		} else {
			r.sendRA(c, src)
		}
		return Handled
	case *ndp.NeighborSolicitation:
		return r.solicitation(c, pkt, src, dst, m.TargetAddress)
	case *ndp.NeighborAdvertisement:
		return r.advertisement(c, pkt, dst, m.TargetAddress)
	}
	return r.dropFrom(c, DropMalformed)
}

// solicitation handles a Neighbor Solicitation for target from c.
func (r *Router) solicitation(c *Client, pkt []byte, src, dst, target netip.Addr) Action {
	switch {
	case r.isServerAddr(target):
		r.answerNS(c, src, target)
		return Handled
	case src.IsUnspecified():
		return r.dad(c, pkt, target)
	case r.isServerAddr(dst):
		// Addressed to the server about someone else: nothing to do.
		return Handled
	case dst.IsMulticast():
		// Address resolution between clients.
		return r.multicastFromClient(c, pkt, dst)
	}
	// Unicast (NUD) to another client: ordinary delivery rules.
	return r.forward(c, pkt, dst)
}

// answerNS replies to a solicitation for one of the server's addresses
// with a Neighbor Advertisement on c's port: R=1, S=1 (S=0 and to ff02::1
// when the solicitation came from ::, RFC 4861 section 7.2.4), O=1 (O=0
// for the Subnet-Router anycast address, section 7.2.7), no options.
func (r *Router) answerNS(c *Client, src, target netip.Addr) {
	na := &ndp.NeighborAdvertisement{
		Router:        true,
		Solicited:     !src.IsUnspecified(),
		Override:      target != r.anycast,
		TargetAddress: target,
	}
	from, to := target, src
	if target == r.anycast {
		from = r.cfg.LinkLocal // an anycast address is never a source
	}
	if src.IsUnspecified() {
		to = packet.AllNodes()
	}
	r.sendNA(c, from, to, na)
}

// sendNA builds a Neighbor Advertisement and sends it to c.
func (r *Router) sendNA(c *Client, from, to netip.Addr, na *ndp.NeighborAdvertisement) {
	b, err := packet.BuildICMPv6(from, to, 255, na)
	if err != nil {
		// Unreachable: from, to and the target are valid IPv6 addresses.
		r.drop(DropMalformed)
		return
	}
	if r.send(c, b) {
		r.counters.nas.Add(1)
	}
}

// dad handles a Duplicate Address Detection probe (NS from :: to a
// solicited-node address) from c for target.
func (r *Router) dad(c *Client, pkt []byte, target netip.Addr) Action {
	var owner *Client
	if r.claimable(target) {
		res, o := r.claim(c, target)
		switch res {
		case claimTaken:
			owner = o
		case claimLimit:
			return r.dropFrom(c, DropAddrLimit)
		case claimDetached:
			return r.dropFrom(c, DropDetached)
		}
	}
	if owner == nil {
		// Target free (now claimed by c), already c's, or not an address
		// on the link.
		if r.mode() == ModeCertificates {
			r.flood(pkt, c) // as Windows 7 does; harmless
		}
		// ModeNone: nothing is sent, the client's DAD succeeds.
		return Handled
	}
	r.counters.dadConflicts.Add(1)
	if r.mode() == ModeCertificates {
		// Only the owner needs the probe; it defends its address itself.
		r.send(owner, pkt)
		return Handled
	}
	// ModeNone: defend on the owner's behalf with a multicast NA "as if
	// the server were the owning client": from the target, R=0 S=0, and
	// O=0 since there is no Target Link-Layer Address option.
	r.sendNA(c, target, packet.AllNodes(), &ndp.NeighborAdvertisement{TargetAddress: target})
	r.probeOwner(owner, target)
	return Handled
}

// probeOwner sends the owner of target a Neighbor Solicitation for it from
// the router. A live owner answers (and the router ignores the answer). The
// point is the write: when the owner's connection is dead on the client's
// side (the client was reset and is now probing for its old address over a
// new connection), the client's host answers it with a TCP reset, the
// stale session ends at once and its addresses are freed, instead of being
// defended for a dead session until the server's timeouts run out.
func (r *Router) probeOwner(owner *Client, target netip.Addr) {
	b, err := packet.BuildICMPv6(r.cfg.LinkLocal, target, 255, &ndp.NeighborSolicitation{TargetAddress: target})
	if err != nil {
		return // unreachable: valid addresses
	}
	r.send(owner, b)
}

// advertisement handles a Neighbor Advertisement for target from c.
func (r *Router) advertisement(c *Client, pkt []byte, dst, target netip.Addr) Action {
	if !dst.IsMulticast() {
		if r.isServerAddr(dst) {
			// The server keeps no neighbor state from advertisements.
			return Handled
		}
		return r.forward(c, pkt, dst)
	}
	if r.mode() == ModeNone || !onLinkScope(dst) {
		return r.dropFrom(c, DropMulticast)
	}
	// Toward the owner of the target only, if another client owns it.
	// When the sender owns it (a DAD defence or an announcement), the
	// clients that need it are unknown: flood.
	if o := r.ownerOf(target); o != nil && o != c {
		r.send(o, pkt)
		return Handled
	}
	r.flood(pkt, c)
	return Handled
}
