// Package sixtofour is 6to4 (RFC 3056) as iphttps does it without the
// kernel's sit driver: the 6to4 addresses, the test that tells a usable
// public IPv4 address from one that only looks public, and the checks of
// an IPv6 packet carried in IPv4 protocol 41, in both directions, as
// Linux's sit device makes them. docs/6to4.md explains the protocol as
// iphttps implements it.
//
// Nothing here does I/O or allocates per packet: the client and the
// server-side transport use it on every packet they carry.
package sixtofour

import (
	"net/netip"
)

// Protocol is the IPv4 protocol number of IPv6 in IPv4 (RFC 3056 section 5).
const Protocol = 41

// MTU is the 6to4 link MTU iphttps uses, as Windows' 6TO4 Adapter does:
// the IPv6 minimum, which no IPv4 path with a 1,300-byte MTU fragments.
const MTU = 1280

// Prefix is the 6to4 prefix, 2002::/16.
var Prefix = netip.MustParsePrefix("2002::/16")

// Is6to4 reports whether a is in 2002::/16.
func Is6to4(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() {
		return false
	}
	b := a.As16()
	return b[0] == 0x20 && b[1] == 0x02
}

// Embedded returns the IPv4 address a 6to4 address embeds (the 32 bits
// after 2002:); ok is false when a is not a 6to4 address.
func Embedded(a netip.Addr) (v4 netip.Addr, ok bool) {
	if !Is6to4(a) {
		return netip.Addr{}, false
	}
	b := a.As16()
	return netip.AddrFrom4([4]byte(b[2:6])), true
}

// Address is the 6to4 address of a host whose public address is v4, in the
// form Windows gives itself and DirectAccess servers use for their tunnel
// endpoints: 2002:WWXX:YYZZ::WWXX:YYZZ (subnet 0, the IPv4 address again as
// the interface identifier).
func Address(v4 netip.Addr) netip.Addr {
	b4 := v4.As4()
	var b [16]byte
	b[0], b[1] = 0x20, 0x02
	copy(b[2:6], b4[:])
	copy(b[12:16], b4[:])
	return netip.AddrFrom16(b)
}

// SitePrefix is the /48 6to4 gives the site whose public address is v4.
func SitePrefix(v4 netip.Addr) netip.Prefix {
	return netip.PrefixFrom(Address(v4), 48).Masked()
}
