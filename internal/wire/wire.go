// Package wire implements the byte-level format of IP-HTTPS [MS-IPHTTPS].
//
// An IP-HTTPS connection is one HTTP/1.1 exchange over TLS (or plain TCP)
// that never ends. The client sends
//
//	POST /IPHTTPS HTTP/1.1\r\n
//	Content-Length: 18446744073709551615\r\n
//	Host: server.example.com\r\n
//	\r\n
//
// and the server answers "HTTP/1.1 200 OK" with Server and Date headers and no
// Content-Length. After each head, the body in that direction is a plain
// concatenation of IPv6 packets: no length prefix, no padding, no chunking.
// Each packet is framed by its own fixed header: it is 40 + Payload Length
// (bytes 4-5, big endian) bytes long and its first nibble is 6. A stream that
// breaks this rule cannot be resynchronised and must be closed.
//
// heads.go writes and parses the HTTP heads by hand (net/http cannot express a
// Content-Length of 2^64-1), reader.go reads a head and then the packets that
// follow it from one buffer, and framer.go coalesces outgoing packets into
// large writes.
package wire

import (
	"errors"
	"fmt"
	"io"
)

const (
	// HeaderLen is the length of the fixed IPv6 header.
	HeaderLen = 40
	// MaxPacket is the largest IPv6 packet that can be framed: the fixed
	// header plus the largest Payload Length.
	MaxPacket = HeaderLen + 65535
)

// Framing errors. ErrNotIPv6, ErrJumbogram and ErrBadLength all wrap
// ErrBadFrame, so errors.Is(err, ErrBadFrame) catches every framing problem.
var (
	// ErrBadFrame is the umbrella error for bytes that are not a correctly
	// framed IPv6 packet.
	ErrBadFrame = errors.New("wire: bad IPv6 framing")
	// ErrNotIPv6 means the version nibble is not 6. On a received stream the
	// session must be closed: the stream cannot be resynchronised.
	ErrNotIPv6 = fmt.Errorf("%w: version is not 6", ErrBadFrame)
	// ErrJumbogram means Payload Length is 0 and Next Header is Hop-by-Hop
	// (a possible RFC 2675 jumbogram), whose length cannot be framed.
	ErrJumbogram = fmt.Errorf("%w: possible jumbogram (payload length 0, hop-by-hop header)", ErrBadFrame)
	// ErrBadLength means a packet handed to the Outbox is shorter than 40
	// bytes or its length is not 40 + Payload Length.
	ErrBadLength = fmt.Errorf("%w: length is not 40 + payload length", ErrBadFrame)
	// ErrTruncated means the stream ended inside a packet. It wraps
	// io.ErrUnexpectedEOF.
	ErrTruncated = fmt.Errorf("wire: stream ended inside an IPv6 packet: %w", io.ErrUnexpectedEOF)
)

// CheckPacket reports whether pkt is exactly one IPv6 packet that can be put
// on the wire: at least 40 bytes, version 6, not a jumbogram, and exactly
// 40 + Payload Length bytes long. It returns nil, ErrNotIPv6, ErrJumbogram or
// ErrBadLength. It does not allocate.
func CheckPacket(pkt []byte) error {
	if len(pkt) > 0 && pkt[0]>>4 != 6 {
		return ErrNotIPv6
	}
	if len(pkt) < HeaderLen {
		return ErrBadLength
	}
	pl := int(pkt[4])<<8 | int(pkt[5])
	if pl == 0 && pkt[6] == 0 {
		return ErrJumbogram
	}
	if HeaderLen+pl != len(pkt) {
		return ErrBadLength
	}
	return nil
}
