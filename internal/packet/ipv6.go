package packet

import (
	"encoding/binary"
	"net/netip"
)

// HeaderLen is the length of the fixed IPv6 header.
const HeaderLen = 40

// IPv6 Next Header values used on the IP-HTTPS link.
const (
	ProtoHopByHop = 0
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDestOpts = 60
)

// Version returns the IP version field of b.
func Version(b []byte) uint8 { return b[0] >> 4 }

// PayloadLen returns the IPv6 Payload Length field of b.
func PayloadLen(b []byte) int { return int(binary.BigEndian.Uint16(b[4:6])) }

// NextHeader returns the Next Header field of the fixed IPv6 header.
func NextHeader(b []byte) uint8 { return b[6] }

// HopLimit returns the Hop Limit field of b.
func HopLimit(b []byte) uint8 { return b[7] }

// SetHopLimit overwrites the Hop Limit field of b. IPv6 has no header
// checksum and the hop limit is not part of any upper-layer pseudo-header,
// so no checksum needs fixing afterwards.
func SetHopLimit(b []byte, v uint8) { b[7] = v }

// Src returns the source address of b.
func Src(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b[8:24])) }

// Dst returns the destination address of b.
func Dst(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b[24:40])) }

// WellFormed reports whether b is an IPv6 packet whose length is exactly
// the fixed header plus its Payload Length, which is how the IP-HTTPS
// stream frames packets.
func WellFormed(b []byte) bool {
	return len(b) >= HeaderLen && Version(b) == 6 && HeaderLen+PayloadLen(b) == len(b)
}

// maxExtHeaders bounds the extension header walk in UpperLayer.
const maxExtHeaders = 8

// UpperLayer walks the extension header chain of b and returns the
// upper-layer protocol and the offset of its header in b.
//
// Hop-by-Hop, Routing, Destination Options, Authentication and Fragment
// headers are skipped. For a non-first fragment the walk stops at the
// Fragment header: proto is ProtoFragment and off is where the fragment data
// starts. ok is false when the chain is truncated, too long, or otherwise
// cannot be followed within b; a first fragment whose chain does not fit in
// it (RFC 7112) therefore reports ok == false.
func UpperLayer(b []byte) (proto uint8, off int, ok bool) {
	if len(b) < HeaderLen {
		return 0, 0, false
	}
	proto, off = NextHeader(b), HeaderLen
	for range maxExtHeaders {
		switch proto {
		case ProtoHopByHop, ProtoRouting, ProtoDestOpts:
			if len(b)-off < 8 {
				return proto, off, false
			}
			n := (int(b[off+1]) + 1) * 8
			if len(b)-off < n {
				return proto, off, false
			}
			proto, off = b[off], off+n
		case ProtoAH:
			if len(b)-off < 8 {
				return proto, off, false
			}
			n := (int(b[off+1]) + 2) * 4
			if len(b)-off < n {
				return proto, off, false
			}
			proto, off = b[off], off+n
		case ProtoFragment:
			if len(b)-off < 8 {
				return proto, off, false
			}
			if binary.BigEndian.Uint16(b[off+2:off+4])>>3 != 0 {
				// Not the first fragment: the upper layer is elsewhere.
				return ProtoFragment, off + 8, true
			}
			proto, off = b[off], off+8
		default:
			return proto, off, true
		}
	}
	return proto, off, false
}
