package packet

import "encoding/binary"

// ICMPv6 checksums (RFC 4443 section 2.3) over the RFC 8200 section 8.1
// pseudo-header, for ICMPv6 that directly follows the fixed IPv6 header.

// VerifyICMPv6Checksum reports whether the ICMPv6 message b[HeaderLen:]
// carries a correct checksum. b must be a well-formed packet (see
// WellFormed) whose Next Header is ICMPv6.
func VerifyICMPv6Checksum(b []byte) bool {
	if len(b) < HeaderLen+icmpHeaderLen {
		return false
	}
	return fold(icmpv6Sum(b)) == 0xffff
}

// SetICMPv6Checksum computes the ICMPv6 checksum of b and stores it in the
// ICMPv6 header. b must be a well-formed packet whose Next Header is ICMPv6.
func SetICMPv6Checksum(b []byte) {
	b[HeaderLen+2], b[HeaderLen+3] = 0, 0
	binary.BigEndian.PutUint16(b[HeaderLen+2:], ^fold(icmpv6Sum(b)))
}

// icmpv6Sum returns the unfolded one's-complement sum of the pseudo-header
// and the ICMPv6 message, including its checksum field.
func icmpv6Sum(b []byte) uint64 {
	msg := b[HeaderLen:]
	s := sum(b[8:40], 0) // source and destination addresses
	s += uint64(len(msg)) + ProtoICMPv6
	return sum(msg, s)
}

// sum adds b to s as a sequence of big-endian 16-bit words; a trailing odd
// byte is padded with zero.
func sum(b []byte, s uint64) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v>>48 + v>>32&0xffff + v>>16&0xffff + v&0xffff
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold reduces s to 16 bits with end-around carry.
func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
