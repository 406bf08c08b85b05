package teredo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/iphttps/iphttps/internal/packet"
)

// Lengths of the headers that may precede the IPv6 packet (RFC 4380
// section 5.1.1).
const (
	OriginLen  = 8  // origin indication
	AuthMinLen = 13 // authentication without client identifier and value
	NonceLen   = 8
)

// Errors of Parse, each wrapped with detail; tell them apart with errors.Is.
var (
	ErrTruncated = errors.New("truncated Teredo header")
	ErrNotIPv6   = errors.New("not an IPv6 packet")
	ErrLength    = errors.New("IPv6 payload length exceeds the datagram")
)

// Header is what precedes the IPv6 packet in a Teredo datagram.
type Header struct {
	HasAuth bool
	// Nonce and Confirm are the authentication header's nonce and
	// confirmation byte. The client identifier and authentication value
	// (secure qualification, which nobody deploys) are skipped.
	Nonce   [NonceLen]byte
	Confirm byte

	HasOrigin bool
	Origin    netip.AddrPort // de-obfuscated
}

// Datagram is a parsed Teredo UDP payload.
type Datagram struct {
	Header
	// IPv6 is the packet, cut to its header and Payload Length.
	IPv6 []byte
	// Trailers are the bytes after the packet (RFC 6081 trailers), if any.
	Trailers []byte
}

// Parse splits a Teredo UDP payload into its headers, the IPv6 packet and
// any trailer bytes. It checks the header lengths, the IP version and that
// the packet fits; it does not allocate.
func Parse(b []byte) (d Datagram, err error) {
	if len(b) >= 2 && b[0] == 0 && b[1] == 1 {
		if len(b) < AuthMinLen {
			return d, fmt.Errorf("teredo: %w: authentication header of %d bytes", ErrTruncated, len(b))
		}
		n := 4 + int(b[2]) + int(b[3])
		if len(b) < n+NonceLen+1 {
			return d, fmt.Errorf("teredo: %w: authentication header with %d+%d identifier bytes in %d", ErrTruncated, b[2], b[3], len(b))
		}
		d.HasAuth = true
		copy(d.Nonce[:], b[n:n+NonceLen])
		d.Confirm = b[n+NonceLen]
		b = b[n+NonceLen+1:]
	}
	if len(b) >= 2 && b[0] == 0 && b[1] == 0 {
		if len(b) < OriginLen {
			return d, fmt.Errorf("teredo: %w: origin indication of %d bytes", ErrTruncated, len(b))
		}
		d.HasOrigin = true
		d.Origin = decodeOrigin(b[2:8])
		b = b[OriginLen:]
	}
	if len(b) < packet.HeaderLen || packet.Version(b) != 6 {
		return d, fmt.Errorf("teredo: %w (%d bytes)", ErrNotIPv6, len(b))
	}
	end := packet.HeaderLen + packet.PayloadLen(b)
	if end > len(b) {
		return d, fmt.Errorf("teredo: %w: %d of %d bytes", ErrLength, end, len(b))
	}
	d.IPv6, d.Trailers = b[:end], b[end:]
	return d, nil
}

func decodeOrigin(b []byte) netip.AddrPort {
	port := ^binary.BigEndian.Uint16(b[0:2])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{^b[2], ^b[3], ^b[4], ^b[5]}), port)
}

// AppendAuth appends an authentication header without client identifier or
// authentication value: the nonce and the confirmation byte.
func AppendAuth(dst []byte, nonce [NonceLen]byte, confirm byte) []byte {
	dst = append(dst, 0, 1, 0, 0)
	dst = append(dst, nonce[:]...)
	return append(dst, confirm)
}

// AppendOrigin appends an origin indication for ap (an IPv4 address and
// port), obfuscated.
func AppendOrigin(dst []byte, ap netip.AddrPort) []byte {
	v4 := ap.Addr().As4()
	p := ^ap.Port()
	return append(dst, 0, 0, byte(p>>8), byte(p), ^v4[0], ^v4[1], ^v4[2], ^v4[3])
}

// BubbleLen is the length of a bubble: a bare IPv6 header.
const BubbleLen = packet.HeaderLen

// AppendBubble appends a bubble from src to dst: an IPv6 header with No
// Next Header, no payload and hop limit 0, as Miredo sends it (RFC 4380
// section 2.8).
func AppendBubble(b []byte, src, dst netip.Addr) []byte {
	return packet.AppendIPv6Header(b, packet.ProtoNoNext, 0, 0, src, dst)
}

// IsBubble reports whether the IPv6 packet p (as Parse cut it) is a bubble:
// No Next Header and no payload.
func IsBubble(p []byte) bool {
	return len(p) == packet.HeaderLen && packet.NextHeader(p) == packet.ProtoNoNext && packet.PayloadLen(p) == 0
}
