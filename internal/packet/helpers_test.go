package packet

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// refChecksum is an independent, deliberately naive ICMPv6 checksum over
// the RFC 8200 pseudo-header, used to cross-check the package: it builds
// the pseudo-header as bytes and sums 16-bit words one at a time.
func refChecksum(src, dst netip.Addr, icmp []byte) uint16 {
	ph := make([]byte, 0, 40+len(icmp)+1)
	s, d := src.As16(), dst.As16()
	ph = append(ph, s[:]...)
	ph = append(ph, d[:]...)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(icmp)))
	ph = append(ph, 0, 0, 0, 58)
	msg := append([]byte(nil), icmp...)
	msg[2], msg[3] = 0, 0
	ph = append(ph, msg...)
	if len(ph)%2 == 1 {
		ph = append(ph, 0)
	}
	var acc uint32
	for i := 0; i < len(ph); i += 2 {
		acc += uint32(ph[i])<<8 | uint32(ph[i+1])
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}

// fixChecksum recomputes the checksum of packet b with refChecksum.
func fixChecksum(b []byte) {
	c := refChecksum(Src(b), Dst(b), b[HeaderLen:])
	binary.BigEndian.PutUint16(b[HeaderLen+2:], c)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustBuild(t testing.TB, src, dst string, hop uint8, m ndp.Message) []byte {
	t.Helper()
	b, err := BuildICMPv6(mustAddr(src), mustAddr(dst), hop, m)
	if err != nil {
		t.Fatalf("BuildICMPv6: %v", err)
	}
	return b
}

// rawPacket builds an IPv6 packet with the given next header and payload.
func rawPacket(next uint8, hop uint8, src, dst string, payload []byte) []byte {
	b := make([]byte, HeaderLen+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6], b[7] = next, hop
	s, d := mustAddr(src).As16(), mustAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], payload)
	return b
}
