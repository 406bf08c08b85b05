package router

import "github.com/iphttps/iphttps/internal/packet"

// FromHost handles one packet the host routed to the link (read from the
// TUN) and returns Handled or Dropped. Unicast goes to the client owning
// the destination; multicast is flooded to every client in
// ModeCertificates and dropped in ModeNone, where the server sends no
// multicast but its own Router Advertisements. FromHost does not retain
// pkt.
func (r *Router) FromHost(pkt []byte) Action {
	r.counters.fromHost.Add(1)
	switch {
	case len(pkt) < packet.HeaderLen:
		return r.drop(DropMalformed)
	case packet.Version(pkt) != 6:
		return r.drop(DropNotIPv6)
	case packet.HeaderLen+packet.PayloadLen(pkt) != len(pkt):
		return r.drop(DropMalformed)
	}
	dst := packet.Dst(pkt)
	if dst.IsMulticast() {
		if r.mode() == ModeNone {
			return r.drop(DropHostMulticast)
		}
		if !onLinkScope(dst) {
			return r.drop(DropHostMulticast)
		}
		r.flood(pkt, nil)
		return Handled
	}
	r.mu.RLock()
	o := r.owners[dst]
	if o == nil {
		r.mu.RUnlock()
		return r.drop(DropNoNeighbor)
	}
	ok := r.sendLocked(o, pkt)
	r.mu.RUnlock()
	if !ok {
		return Dropped // counted by sendLocked
	}
	return Handled
}
