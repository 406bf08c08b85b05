// Package teredo is the Teredo wire format (RFC 4380 with the RFC 5991
// address rules): Teredo addresses, the authentication and origin
// indication headers in front of the IPv6 packet, bubbles, the RFC 6081
// Alternate Address Trailer after it, the router solicitation and
// advertisement of qualification, and the IPv4 address rules every role
// applies. docs/teredo.md explains the protocol as
// iphttps implements it.
//
// Parsing never allocates and returns slices into the datagram; building
// appends to a caller's buffer. The procedures (qualification, peers,
// server, relay) live in the packages that use this one.
package teredo

import (
	"encoding/binary"
	"net/netip"
)

// Port is the Teredo server's UDP port (RFC 4380 section 2.7).
const Port = 3544

// MTU is the Teredo link MTU (RFC 4380 section 5.1.2).
const MTU = 1280

// Prefix is the Teredo service prefix, 2001:0::/32.
var Prefix = netip.MustParsePrefix("2001::/32")

// Flag bits of a Teredo address (RFC 4380 section 4; RFC 5991).
const (
	FlagCone     = 0x8000 // C: the client was behind a cone NAT (RFC 4380; always 0 under RFC 5991)
	FlagReserved = 0x4000 // R: must be zero
	FlagUG       = 0x0300 // U and G: must be zero (modified EUI-64 "local, individual")
	FlagRandom   = 0x3cff // the twelve A bits RFC 5991 fills at random
)

// Address is what a Teredo IPv6 address says: the server that qualified the
// client, the flags, and the client's NAT mapping (IPv4 address and UDP
// port, stored obfuscated in the address).
type Address struct {
	Server netip.Addr // IPv4
	Flags  uint16
	Mapped netip.AddrPort // IPv4
}

// IsTeredo reports whether a is in 2001:0::/32.
func IsTeredo(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() {
		return false
	}
	b := a.As16()
	return b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0
}

// ParseAddress decodes a Teredo address; ok is false when a is not one.
func ParseAddress(a netip.Addr) (addr Address, ok bool) {
	if !IsTeredo(a) {
		return Address{}, false
	}
	b := a.As16()
	return decodeID(b[4:8], b[8:16]), true
}

// decodeID decodes a Teredo server field and interface identifier.
func decodeID(server, id []byte) Address {
	port := ^binary.BigEndian.Uint16(id[2:4])
	v4 := [4]byte{^id[4], ^id[5], ^id[6], ^id[7]}
	return Address{
		Server: netip.AddrFrom4([4]byte(server)),
		Flags:  binary.BigEndian.Uint16(id[0:2]),
		Mapped: netip.AddrPortFrom(netip.AddrFrom4(v4), port),
	}
}

// IPv6 returns the Teredo address in 2001:0::/32 that a describes.
func (a Address) IPv6() netip.Addr {
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	s := a.Server.As4()
	copy(b[4:8], s[:])
	putID(b[8:16], a.Flags, a.Mapped)
	return netip.AddrFrom16(b)
}

// putID writes the interface identifier of a Teredo address: flags, then
// the obfuscated mapped port and IPv4 address.
func putID(id []byte, flags uint16, mapped netip.AddrPort) {
	binary.BigEndian.PutUint16(id[0:2], flags)
	binary.BigEndian.PutUint16(id[2:4], ^mapped.Port())
	v4 := mapped.Addr().As4()
	for i := range v4 {
		id[4+i] = ^v4[i]
	}
}

// Cone reports whether the address carries the cone flag. RFC 5991 clients
// never set it, so it is only a hint.
func (a Address) Cone() bool { return a.Flags&FlagCone != 0 }

// RandomFlags returns the flags of a new RFC 5991 address: C, R, U and G
// zero, the twelve A bits taken from r.
func RandomFlags(r uint16) uint16 { return r & FlagRandom }

// Link-local addresses with fixed meanings in qualification.
var (
	// RSSourceNonCone is the source of a router solicitation without the
	// cone flag (fe80::ffff:ffff:ffff, as Windows Vista and later and
	// Miredo send it).
	RSSourceNonCone = netip.MustParseAddr("fe80::ffff:ffff:ffff")
	// RSSourceCone is the source of a router solicitation with the cone
	// flag: flags 0x8000 and "TEREDO" in ASCII.
	RSSourceCone = netip.MustParseAddr("fe80::8000:5445:5245:444f")
)

// ServerLinkLocal is the link-local source of a server's router
// advertisements: fe80::8000:<~3544>:<~primary IPv4> (RFC 4380 section
// 5.3.2).
func ServerLinkLocal(primary netip.Addr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	putID(b[8:16], FlagCone, netip.AddrPortFrom(primary, Port))
	return netip.AddrFrom16(b)
}

// IsConeSolicitation reports whether a router solicitation from the
// link-local src asks for the cone test: its flags have the cone bit.
func IsConeSolicitation(src netip.Addr) bool {
	b := src.As16()
	return src.IsLinkLocalUnicast() && b[8]&0x80 != 0
}

// IsGlobalUnicast reports whether the IPv4 address a may be used as a
// Teredo server, client mapping or relay address (RFC 4380 section 5.2.4):
// not in 0/8, 10/8, 127/8, 169.254/16, 172.16/12, 192.168/16,
// 192.88.99.0/24 (6to4 anycast), 224/4 (multicast) nor the limited
// broadcast address. With lab set, the documentation ranges are global
// too; without it they are not, as they never appear on the Internet.
func IsGlobalUnicast(a netip.Addr, lab bool) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	switch {
	case b[0] == 0, b[0] == 10, b[0] == 127, b[0] >= 224:
		// 240/4 is reserved; Miredo lets it through, RFC 4380 does not list
		// it, but no host can own such an address, so it is refused.
		return false
	case b[0] == 169 && b[1] == 254,
		b[0] == 172 && b[1]&0xf0 == 16,
		b[0] == 192 && b[1] == 168,
		b[0] == 192 && b[1] == 88 && b[2] == 99:
		return false
	}
	if IsDocumentation(a) {
		return lab
	}
	return true
}

// IsDocumentation reports whether a is in one of the IPv4 documentation
// ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), which the lab
// and the tests use as public addresses.
func IsDocumentation(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[0] == 192 && b[1] == 0 && b[2] == 2 ||
		b[0] == 198 && b[1] == 51 && b[2] == 100 ||
		b[0] == 203 && b[1] == 0 && b[2] == 113
}

// IsSharedAddressSpace reports whether a is in 100.64.0.0/10, the carrier
// NAT range (RFC 6598): global by RFC 4380's list, but behind a NAT.
func IsSharedAddressSpace(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[0] == 100 && b[1]&0xc0 == 64
}
