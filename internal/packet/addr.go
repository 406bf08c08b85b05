package packet

import "net/netip"

// solicitedNodePrefix is ff02::1:ff00:0/104 (RFC 4291 section 2.7.1).
var solicitedNodePrefix = [13]byte{0xff, 0x02, 11: 0x01, 12: 0xff}

// AllNodes returns the link-scope all-nodes multicast address ff02::1.
func AllNodes() netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x01})
}

// AllRouters returns the link-scope all-routers multicast address ff02::2.
func AllRouters() netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x02})
}

// IsSolicitedNode reports whether a is a solicited-node multicast address
// (ff02::1:ffXX:XXXX).
func IsSolicitedNode(a netip.Addr) bool {
	if !a.Is6() {
		return false
	}
	b := a.As16()
	return [13]byte(b[:13]) == solicitedNodePrefix
}

// SolicitedNode returns the solicited-node multicast address of the IPv6
// address a. It returns the zero Addr if a is not an IPv6 address.
func SolicitedNode(a netip.Addr) netip.Addr {
	if !a.Is6() {
		return netip.Addr{}
	}
	src := a.As16()
	var b [16]byte
	copy(b[:13], solicitedNodePrefix[:])
	copy(b[13:], src[13:])
	return netip.AddrFrom16(b)
}
