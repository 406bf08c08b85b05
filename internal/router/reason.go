package router

import "fmt"

// Action says what became of a packet handed to the router.
type Action uint8

// Actions.
const (
	// Handled: the router consumed the packet: it answered it, or delivered
	// it to one or more ports.
	Handled Action = iota
	// ToHost: the caller must write the packet to the host (the TUN).
	ToHost
	// Dropped: the packet was refused and counted under a DropReason.
	Dropped
)

// String returns "handled", "to-host" or "dropped".
func (a Action) String() string {
	switch a {
	case Handled:
		return "handled"
	case ToHost:
		return "to-host"
	case Dropped:
		return "dropped"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// DropReason says why the router dropped a packet.
type DropReason uint8

// Drop reasons.
const (
	// DropMalformed: short packet, Payload Length inconsistent with the
	// packet's length, unusable destination, or an ND message failing the
	// RFC 4861 validity checks.
	DropMalformed DropReason = iota
	// DropNotIPv6: the IP version is not 6. The server normally catches
	// this while deframing and records it with RecordDrop.
	DropNotIPv6
	// DropSpoofedSource: the source address is not one the client may use.
	DropSpoofedSource
	// DropAddrLimit: the client already owns MaxAddrsPerClient addresses.
	DropAddrLimit
	// DropLinkLocal: link-local unicast to another client (ModeNone).
	DropLinkLocal
	// DropMulticast: multicast a client may not send.
	DropMulticast
	// DropRouterMessage: a Router Advertisement or Redirect from a client.
	DropRouterMessage
	// DropNoNeighbor: the destination is on the link but nobody owns it.
	DropNoNeighbor
	// DropIsolated: client-to-client unicast while IsolateClients is set.
	DropIsolated
	// DropHopLimit: a packet routed between clients ran out of hops.
	DropHopLimit
	// DropQueueFull: a port refused a packet (Port.Send returned false).
	DropQueueFull
	// DropHostMulticast: multicast from the host in ModeNone.
	DropHostMulticast
	// DropDetached: a packet from a client that is already detached.
	DropDetached

	numDropReasons
)

// String returns the reason's stable snake_case name, used as the key of
// Drops and ClientStats.Drops.
func (r DropReason) String() string {
	switch r {
	case DropMalformed:
		return "malformed"
	case DropNotIPv6:
		return "not_ipv6"
	case DropSpoofedSource:
		return "spoofed_source"
	case DropAddrLimit:
		return "addr_limit"
	case DropLinkLocal:
		return "link_local"
	case DropMulticast:
		return "multicast"
	case DropRouterMessage:
		return "router_message"
	case DropNoNeighbor:
		return "no_neighbor"
	case DropIsolated:
		return "isolated"
	case DropHopLimit:
		return "hop_limit"
	case DropQueueFull:
		return "queue_full"
	case DropHostMulticast:
		return "host_multicast"
	case DropDetached:
		return "detached"
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// DropReasons returns every drop reason, in order.
func DropReasons() []DropReason {
	rs := make([]DropReason, numDropReasons)
	for i := range rs {
		rs[i] = DropReason(i)
	}
	return rs
}
