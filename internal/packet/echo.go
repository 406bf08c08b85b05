package packet

import (
	"bytes"
	"net/netip"
)

// The nonce echo: an ICMPv6 echo request whose identifier and sequence
// number are the first four bytes of an 8-byte random nonce and whose data
// is the whole nonce. Teredo's direct connectivity test (RFC 4380 section
// 5.2.9) uses it to find the relay of a native peer; 6to4's path test uses
// it to prove that protocol 41 reaches the relay and comes back.

// NonceLen is the length of an echo test's nonce.
const NonceLen = 8

// NonceEchoLen is the ICMPv6 message of a nonce echo: type, code,
// checksum, identifier and sequence, then the nonce.
const NonceEchoLen = icmpHeaderLen + 4 + NonceLen

// AppendIPv6Header appends a fixed IPv6 header.
func AppendIPv6Header(b []byte, next uint8, payloadLen int, hopLimit uint8, src, dst netip.Addr) []byte {
	s, d := src.As16(), dst.As16()
	b = append(b, 0x60, 0, 0, 0, byte(payloadLen>>8), byte(payloadLen), next, hopLimit)
	b = append(b, s[:]...)
	return append(b, d[:]...)
}

// AppendNonceEcho appends a nonce echo request from src to dst.
func AppendNonceEcho(b []byte, src, dst netip.Addr, hopLimit uint8, nonce [NonceLen]byte) []byte {
	start := len(b)
	b = AppendIPv6Header(b, ProtoICMPv6, NonceEchoLen, hopLimit, src, dst)
	b = append(b, TypeEchoRequest, 0, 0, 0, nonce[0], nonce[1], nonce[2], nonce[3])
	b = append(b, nonce[:]...)
	SetICMPv6Checksum(b[start:])
	return b
}

// IsNonceEchoReply reports whether p is the answer to the nonce echo with
// nonce, strictly: an echo reply of exactly the request's size, with its
// identifier, sequence and data, and a correct checksum.
func IsNonceEchoReply(p []byte, nonce [NonceLen]byte) bool {
	if len(p) != HeaderLen+NonceEchoLen || NextHeader(p) != ProtoICMPv6 || PayloadLen(p) != NonceEchoLen ||
		p[HeaderLen] != TypeEchoReply || p[HeaderLen+1] != 0 {
		return false
	}
	body := p[HeaderLen+icmpHeaderLen:]
	return bytes.Equal(body[:4], nonce[:4]) && bytes.Equal(body[4:], nonce[:]) && VerifyICMPv6Checksum(p)
}
