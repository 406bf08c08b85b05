package packet

import (
	"net/netip"
	"testing"

	"golang.org/x/net/ipv6"
)

func TestAccessors(t *testing.T) {
	b := rawPacket(17, 64, "2001:db8::1", "2001:db8:1::2", make([]byte, 12))
	b[1] = 0xa0 // traffic class / flow label bits must not disturb anything

	h, err := ipv6.ParseHeader(b)
	if err != nil {
		t.Fatalf("x/net/ipv6 rejects the test packet: %v", err)
	}
	if got := Version(b); int(got) != h.Version {
		t.Errorf("Version = %d, want %d", got, h.Version)
	}
	if got := PayloadLen(b); got != h.PayloadLen || got != 12 {
		t.Errorf("PayloadLen = %d, want %d", got, h.PayloadLen)
	}
	if got := NextHeader(b); int(got) != h.NextHeader {
		t.Errorf("NextHeader = %d, want %d", got, h.NextHeader)
	}
	if got := HopLimit(b); int(got) != h.HopLimit {
		t.Errorf("HopLimit = %d, want %d", got, h.HopLimit)
	}
	if got := Src(b); got != mustAddr("2001:db8::1") {
		t.Errorf("Src = %v", got)
	}
	if got := Dst(b); got != mustAddr("2001:db8:1::2") {
		t.Errorf("Dst = %v", got)
	}
	SetHopLimit(b, 7)
	if HopLimit(b) != 7 || b[7] != 7 {
		t.Errorf("SetHopLimit(7): hop limit byte = %d", b[7])
	}
	if !WellFormed(b) {
		t.Error("WellFormed = false for a consistent packet")
	}
}

func TestWellFormed(t *testing.T) {
	good := rawPacket(17, 64, "2001:db8::1", "2001:db8::2", make([]byte, 8))
	v4 := append([]byte(nil), good...)
	v4[0] = 0x45
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"good", good, true},
		{"short", good[:39], false},
		{"truncated payload", good[:45], false},
		{"trailing bytes", append(append([]byte(nil), good...), 0), false},
		{"version 4", v4, false},
		{"header only", rawPacket(59, 1, "::1", "::1", nil), true},
	}
	for _, tt := range tests {
		if got := WellFormed(tt.b); got != tt.want {
			t.Errorf("%s: WellFormed = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestUpperLayer(t *testing.T) {
	ext := func(next uint8, lenUnits uint8) []byte {
		h := make([]byte, (int(lenUnits)+1)*8)
		h[0], h[1] = next, lenUnits
		return h
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	icmp := []byte{134, 0, 0, 0, 0, 0, 0, 0}
	frag := func(next uint8, offset uint16) []byte {
		return []byte{next, 0, byte(offset << 3 >> 8), byte(offset << 3), 0, 0, 0, 1}
	}
	ah := make([]byte, 16) // payload length 2 -> (2+2)*4 = 16 bytes
	ah[0], ah[1] = ProtoICMPv6, 2

	tests := []struct {
		name      string
		b         []byte
		wantProto uint8
		wantOff   int
		wantOK    bool
	}{
		{"direct icmp", rawPacket(58, 255, "::", "ff02::2", icmp), 58, 40, true},
		{"hop-by-hop then icmp", rawPacket(0, 1, "fe80::1", "ff02::16", cat(ext(58, 0), icmp)), 58, 48, true},
		{"dstopts len 1 then icmp", rawPacket(60, 1, "fe80::1", "ff02::1", cat(ext(58, 1), icmp)), 58, 56, true},
		{"hbh, routing, dstopts, tcp", rawPacket(0, 1, "fe80::1", "ff02::1", cat(ext(43, 0), ext(60, 0), ext(6, 0), make([]byte, 20))), 6, 64, true},
		{"first fragment", rawPacket(44, 1, "fe80::1", "ff02::1", cat(frag(58, 0), icmp)), 58, 48, true},
		{"non-first fragment", rawPacket(44, 1, "fe80::1", "ff02::1", cat(frag(58, 5), icmp)), ProtoFragment, 48, true},
		{"ah then icmp", rawPacket(51, 1, "fe80::1", "ff02::1", cat(ah, icmp)), 58, 56, true},
		{"truncated ext", rawPacket(0, 1, "fe80::1", "ff02::1", []byte{58, 0, 0}), 0, 40, false},
		{"ext overruns", rawPacket(0, 1, "fe80::1", "ff02::1", cat(ext(58, 3), nil)[:16]), 0, 40, false},
		{"no payload", rawPacket(6, 1, "fe80::1", "ff02::1", nil), 6, 40, true},
	}
	// A chain of nine Destination Options headers is too long.
	var long []byte
	for range 9 {
		long = append(long, ext(60, 0)...)
	}
	tests = append(tests, struct {
		name      string
		b         []byte
		wantProto uint8
		wantOff   int
		wantOK    bool
	}{"too many headers", rawPacket(60, 1, "fe80::1", "ff02::1", long), 60, 40 + 8*8, false})

	for _, tt := range tests {
		proto, off, ok := UpperLayer(tt.b)
		if proto != tt.wantProto || off != tt.wantOff || ok != tt.wantOK {
			t.Errorf("%s: UpperLayer = (%d, %d, %v), want (%d, %d, %v)", tt.name, proto, off, ok, tt.wantProto, tt.wantOff, tt.wantOK)
		}
	}
	if _, _, ok := UpperLayer(make([]byte, 10)); ok {
		t.Error("UpperLayer accepted a 10-byte packet")
	}
}

func TestAccessorsDoNotAllocate(t *testing.T) {
	b := mustBuild(t, "fe80::1", "ff02::1:ff00:2", 255, nsFor("2001:db8::2"))
	var (
		sinkAddr netip.Addr
		sinkInt  int
		sinkU8   uint8
		sinkBool bool
	)
	allocs := testing.AllocsPerRun(1000, func() {
		sinkU8 += Version(b) + NextHeader(b) + HopLimit(b)
		sinkInt += PayloadLen(b)
		sinkAddr = Src(b)
		sinkAddr = Dst(b)
		SetHopLimit(b, 255)
		typ, ok := ICMPv6Type(b)
		sinkU8 += typ
		sinkBool = ok && IsND(typ) && WellFormed(b) && IsSolicitedNode(Dst(b))
		sinkAddr = SolicitedNode(Src(b))
		sinkAddr = AllNodes()
		p, off, _ := UpperLayer(b)
		sinkU8 += p
		sinkInt += off
		sinkBool = sinkBool && VerifyICMPv6Checksum(b)
	})
	if allocs != 0 {
		t.Errorf("accessors allocate %v times per run, want 0", allocs)
	}
	_, _, _, _ = sinkAddr, sinkInt, sinkU8, sinkBool
}

func BenchmarkAccessors(b *testing.B) {
	pkt := rawPacket(6, 64, "2001:db8::1", "2001:db8:1::2", make([]byte, 1200))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		if Version(pkt) == 6 && PayloadLen(pkt)+HeaderLen == len(pkt) && Src(pkt).IsGlobalUnicast() && !Dst(pkt).IsMulticast() {
			n++
		}
	}
	_ = n
}
