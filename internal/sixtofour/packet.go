package sixtofour

import (
	"encoding/binary"
	"net/netip"

	"github.com/iphttps/iphttps/internal/packet"
)

// Drop is why a packet was not carried; its String is the counter name
// ("drop_" + String in show statistics).
type Drop uint8

// Drop reasons, in the order the checks run.
const (
	Accept                   Drop = iota
	DropMalformedIPv4             // outer header truncated, not version 4, bad lengths
	DropNotProtocol41             // the outer protocol is not 41
	DropFragment                  // an outer fragment (the kernel delivers reassembled packets)
	DropMalformedIPv6             // inner packet truncated or not version 6
	DropSourceNotRoutable         // inner source link-local, multicast, loopback, unspecified, IPv4-mapped
	DropSourceSpoofed             // inner 6to4 source not embedding the outer source
	DropSourceNotRelay            // inner native source from an IPv4 address that is not the relay
	DropDestinationSpoofed        // inner 6to4 destination not embedding the outer destination
	DropDestinationNotOurs        // inner destination not one this end serves
	DropDestinationNotPublic      // outbound 6to4 destination embedding a non-public IPv4 address
	DropNoRelay                   // outbound native destination with no relay configured
	NumDrops                      // the number of reasons, Accept included
)

var dropNames = [NumDrops]string{
	Accept:                   "accepted",
	DropMalformedIPv4:        "malformed_ipv4",
	DropNotProtocol41:        "not_protocol_41",
	DropFragment:             "fragment",
	DropMalformedIPv6:        "malformed_ipv6",
	DropSourceNotRoutable:    "source_not_routable",
	DropSourceSpoofed:        "source_spoofed",
	DropSourceNotRelay:       "source_not_relay",
	DropDestinationSpoofed:   "destination_spoofed",
	DropDestinationNotOurs:   "destination_not_ours",
	DropDestinationNotPublic: "destination_not_public",
	DropNoRelay:              "no_relay",
}

func (d Drop) String() string {
	if d < NumDrops {
		return dropNames[d]
	}
	return "unknown"
}

// Drops lists every drop reason (for counters that start at zero).
func Drops() []Drop {
	ds := make([]Drop, 0, NumDrops-1)
	for d := Drop(1); d < NumDrops; d++ {
		ds = append(ds, d)
	}
	return ds
}

// Outer is what Decapsulate read of the IPv4 header.
type Outer struct {
	Src, Dst netip.Addr
}

// ipv4HeaderLen is the IPv4 header without options.
const ipv4HeaderLen = 20

// Decapsulate takes a datagram as a raw IPv4 socket of protocol 41
// delivers it (the IPv4 header first) and returns its outer addresses and
// the IPv6 packet inside, cut to its Payload Length (bytes after it are
// dropped, as sit does). It checks the framing only; Inbound checks the
// addresses.
func Decapsulate(b []byte) (Outer, []byte, Drop) {
	if len(b) < ipv4HeaderLen || b[0]>>4 != 4 {
		return Outer{}, nil, DropMalformedIPv4
	}
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if hl < ipv4HeaderLen || total < hl || total > len(b) {
		return Outer{}, nil, DropMalformedIPv4
	}
	if b[9] != Protocol {
		return Outer{}, nil, DropNotProtocol41
	}
	if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 { // MF or a fragment offset
		return Outer{}, nil, DropFragment
	}
	o := Outer{Src: netip.AddrFrom4([4]byte(b[12:16])), Dst: netip.AddrFrom4([4]byte(b[16:20]))}
	in := b[hl:total]
	if len(in) < packet.HeaderLen || packet.Version(in) != 6 || packet.HeaderLen+packet.PayloadLen(in) > len(in) {
		return o, nil, DropMalformedIPv6
	}
	return o, in[:packet.HeaderLen+packet.PayloadLen(in)], Accept
}

// Inbound checks an IPv6 packet that arrived in protocol 41 from outer.Src
// (RFC 3056 section 5 with Linux sit's checks): a 6to4 source must embed
// the outer source; a native source is accepted only from relay (invalid:
// from nobody); a 6to4 destination must embed the outer destination. The
// caller then checks that the destination is one it serves.
func Inbound(o Outer, p []byte, relay netip.Addr) Drop {
	src, dst := packet.Src(p), packet.Dst(p)
	if !routable(src) {
		return DropSourceNotRoutable
	}
	if v4, ok := Embedded(src); ok {
		if v4 != o.Src {
			return DropSourceSpoofed
		}
	} else if !relay.IsValid() || o.Src != relay {
		return DropSourceNotRelay
	}
	if v4, ok := Embedded(dst); ok && v4 != o.Dst {
		return DropDestinationSpoofed
	}
	return Accept
}

// NextHop is the IPv4 address an outbound IPv6 packet for dst goes to: the
// address a 6to4 destination embeds (which must be public; documentation
// ranges too with lab), else the relay.
func NextHop(dst, relay netip.Addr, lab bool) (netip.Addr, Drop) {
	if v4, ok := Embedded(dst); ok {
		if !IsPublic(v4, lab) {
			return netip.Addr{}, DropDestinationNotPublic
		}
		return v4, Accept
	}
	if !relay.IsValid() {
		return netip.Addr{}, DropNoRelay
	}
	return relay, Accept
}

// routable reports whether a may be the source of a packet crossing a
// 6to4 link: not link-local (that would let a remote host talk on our
// link), multicast, loopback, unspecified or an IPv4-mapped address.
func routable(a netip.Addr) bool {
	return !(a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsLoopback() || a.IsUnspecified() || a.Is4In6() ||
		isIPv4Compatible(a))
}

// isIPv4Compatible reports whether a is in ::/96 (the deprecated
// IPv4-compatible form, which sit also refuses as a source).
func isIPv4Compatible(a netip.Addr) bool {
	b := a.As16()
	for _, x := range b[:12] {
		if x != 0 {
			return false
		}
	}
	return true
}
