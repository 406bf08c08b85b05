package client

import (
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
)

// The hairpinning extension (RFC 6081 section 4.3), which Windows uses so
// that two clients behind one NAT reach each other when the NAT does not
// hairpin (most home routers don't: a datagram from inside to the NAT's own
// outside address never comes back in). A client behind a NAT announces
// its local address and port in an Alternate Address Trailer on the
// bubbles it sends to a peer behind the same NAT (the peer's mapped IPv4
// address is ours). A client that gets such a bubble through its server
// records the peer's alternate addresses and sends a direct bubble to
// each; a packet that then comes from one of them, with that peer's
// address as its source, makes the peer trusted at that address, and the
// two talk directly inside the NAT. docs/teredo.md, "Peers behind the same
// NAT", lists the checks.

// bubbleBuf holds a bubble with an Alternate Address Trailer.
const bubbleBuf = teredo.BubbleLen + teredo.AlternatesMaxLen

// sameNAT reports whether a Teredo peer whose mapping is mapped sits behind
// our NAT: its mapped IPv4 address is ours, its port another.
func sameNAT(me *identity, mapped netip.AddrPort) bool {
	return mapped.Addr() == me.mapping.Addr() && mapped != me.mapping
}

// appendBubble appends a bubble from src to dst, with an Alternate Address
// Trailer naming our local address and port when dst is a Teredo peer
// behind our NAT and that address is private: nobody else learns it.
func (s *session) appendBubble(b []byte, src, dst netip.Addr) []byte {
	b = teredo.AppendBubble(b, src, dst)
	me := s.me.Load()
	if a, ok := teredo.ParseAddress(dst); ok && me != nil && sameNAT(me, a.Mapped) && teredo.IsAlternateAddress(s.local) {
		b = teredo.AppendAlternates(b, s.local)
	}
	return b
}

// toAlternates sends the bubble b to the alternate addresses recorded for
// dst, a peer behind our NAT heard from before (bubbles' hook): the peer
// list's bubble budget, which let the bubbles go, covers these too.
func (s *session) toAlternates(b []byte, dst netip.Addr) {
	e, ok := s.peers.Load().Lookup(dst)
	if !ok {
		return
	}
	for _, to := range e.Alternates {
		if to.IsValid() && s.write(b, to) {
			s.t.c.add(&s.t.c.hairpinBubbles, 1)
		}
	}
}

// relayedAlternates handles the Alternate Address Trailer of a bubble our
// server relayed from src with the origin indication d.Origin
// (fromServer's hook). When src is a Teredo peer behind our NAT whose
// mapping is the origin, its usable alternate addresses are recorded and
// each gets a direct bubble, within the limit of answers to indirect
// bubbles. A peer elsewhere gets nothing more than RFC 4380's answer.
func (s *session) relayedAlternates(d teredo.Datagram, src netip.Addr, me *identity, now time.Time) {
	a, ok := teredo.ParseAddress(src)
	if !ok || a.Mapped != d.Origin || !sameNAT(me, a.Mapped) || len(d.Trailers) == 0 {
		return
	}
	alts := s.alternates(d.Trailers)
	if len(alts.List()) == 0 {
		return
	}
	s.peers.Load().SetAlternates(src, alts.List(), now)
	var buf [bubbleBuf]byte
	b := s.appendBubble(buf[:0], me.addr, src)
	for _, to := range alts.List() {
		if !s.replies.allow(now) {
			s.t.c.drop(dropReplyLimited, 1)
			continue
		}
		if s.write(b, to) {
			s.t.c.add(&s.t.c.hairpinBubbles, 1)
		}
	}
}

// alternates returns the usable alternate addresses among a bubble's
// trailers: private addresses with a port (teredo.IsAlternateAddress),
// never our own. A malformed trailer, and each address refused, is
// counted.
func (s *session) alternates(trailers []byte) teredo.Alternates {
	found, err := teredo.ParseAlternates(trailers)
	if err != nil {
		s.t.c.drop(dropBadTrailer, 1)
		return teredo.Alternates{}
	}
	var usable teredo.Alternates
	for _, ap := range found.List() {
		if !teredo.IsAlternateAddress(ap) || ap == s.local {
			s.t.c.drop(dropAltRefused, 1)
			continue
		}
		usable.Add(ap)
	}
	return usable
}

// fromAlternate handles a datagram from a private address, already checked
// to be for our address (handle's hook). Only a Teredo peer behind our NAT
// is heard there: at the address it is trusted at, or at an alternate
// address it announced (recorded from a bubble our server relayed, or
// carried by this very bubble) if we already have its entry. Anything else
// is dropped: from a source that is not global, or from an alternate
// address nobody announced.
func (s *session) fromAlternate(d teredo.Datagram, from netip.AddrPort, me *identity, now time.Time) []byte {
	c := &s.t.c
	p := d.IPv6
	src := packet.Src(p)
	if a, ok := teredo.ParseAddress(src); !ok || !sameNAT(me, a.Mapped) {
		c.drop(dropSourceNotGlobal, 1)
		return nil
	}
	bubble := teredo.IsBubble(p)
	peers := s.peers.Load()
	if peers.Received(src, from, now) {
		return s.accept(p, bubble)
	}
	var announced teredo.Alternates
	if bubble && len(d.Trailers) > 0 {
		announced = s.alternates(d.Trailers)
	}
	q, ok := peers.HeardAlternate(src, from, announced.List(), now)
	if !ok {
		c.drop(dropUnknownAlt, 1)
		return nil
	}
	c.add(&c.hairpinPeers, 1)
	s.flush(q, from)
	return s.accept(p, bubble)
}
