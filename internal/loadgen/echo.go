package loadgen

import (
	"encoding/binary"
	"net/netip"

	"github.com/iphttps/iphttps/internal/packet"
)

// echoMagic starts the payload of every echo request the load generator
// sends, so replies to other programs' pings are not counted.
var echoMagic = [8]byte{'i', 'p', 'h', 't', 't', 'p', 's', 'L'}

const (
	icmpEchoHeaderLen = 8  // type, code, checksum, identifier, sequence
	minEchoPayload    = 16 // magic and the session number
	// DefaultEchoPayload is the echo payload size when none is given: 56
	// bytes, as ping(8) sends.
	DefaultEchoPayload = 56
	// echoHopLimit is the hop limit of echo requests.
	echoHopLimit = 64
)

// echoPayload returns the payload of an echo request from session id,
// size bytes long (at least minEchoPayload).
func echoPayload(id uint32, size int) []byte {
	p := make([]byte, max(size, minEchoPayload))
	copy(p, echoMagic[:])
	binary.BigEndian.PutUint32(p[8:], id)
	return p
}

// appendEchoMessage appends the ICMPv6 echo request (type 128, checksum
// zero) with identifier ident, sequence seq and payload to dst.
func appendEchoMessage(dst []byte, ident, seq uint16, payload []byte) []byte {
	dst = append(dst, packet.TypeEchoRequest, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, ident)
	dst = binary.BigEndian.AppendUint16(dst, seq)
	return append(dst, payload...)
}

// buildEchoRequest returns a complete IPv6 packet carrying an ICMPv6 echo
// request from src to dst, checksum filled in.
func buildEchoRequest(src, dst netip.Addr, ident, seq uint16, payload []byte) []byte {
	b := make([]byte, packet.HeaderLen, packet.HeaderLen+icmpEchoHeaderLen+len(payload))
	b = appendEchoMessage(b, ident, seq, payload)
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)-packet.HeaderLen))
	b[6] = packet.ProtoICMPv6
	b[7] = echoHopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	packet.SetICMPv6Checksum(b)
	return b
}

// setEchoSeq rewrites the sequence number of an echo request built by
// buildEchoRequest and fixes its checksum.
func setEchoSeq(b []byte, seq uint16) {
	binary.BigEndian.PutUint16(b[packet.HeaderLen+6:], seq)
	packet.SetICMPv6Checksum(b)
}

// echoReply is what parseEchoReply finds in an echo reply.
type echoReply struct {
	src, dst     netip.Addr
	ident, seq   uint16
	session      uint32
	hasOurMagic  bool
	checksumGood bool
}

// parseEchoReply decodes an IPv6 packet holding an ICMPv6 echo reply
// directly after the fixed header. ok is false for anything else.
func parseEchoReply(pkt []byte) (r echoReply, ok bool) {
	if !packet.WellFormed(pkt) {
		return r, false
	}
	if typ, isICMP := packet.ICMPv6Type(pkt); !isICMP || typ != packet.TypeEchoReply {
		return r, false
	}
	msg := pkt[packet.HeaderLen:]
	if len(msg) < icmpEchoHeaderLen || msg[1] != 0 {
		return r, false
	}
	r.src, r.dst = packet.Src(pkt), packet.Dst(pkt)
	r.checksumGood = packet.VerifyICMPv6Checksum(pkt)
	r.ident, r.seq, r.session, r.hasOurMagic = parseEchoMessage(msg)
	return r, true
}

// parseEchoMessage reads identifier, sequence and, when the payload is the
// load generator's, the session number of an ICMPv6 echo message.
func parseEchoMessage(msg []byte) (ident, seq uint16, session uint32, ours bool) {
	ident = binary.BigEndian.Uint16(msg[4:6])
	seq = binary.BigEndian.Uint16(msg[6:8])
	p := msg[icmpEchoHeaderLen:]
	if len(p) >= minEchoPayload && [8]byte(p[:8]) == echoMagic {
		return ident, seq, binary.BigEndian.Uint32(p[8:12]), true
	}
	return ident, seq, 0, false
}
