package teredo

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"

	"github.com/iphttps/iphttps/internal/packet"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// The worked examples are the published ones (RFC 4380 section 4 and
// Microsoft's "Teredo Addresses" page), not values computed by this code.
func TestAddressExamples(t *testing.T) {
	cases := []struct {
		a    Address
		want string
	}{
		{Address{Server: addr("65.54.227.120"), Flags: FlagCone, Mapped: ap("192.0.2.45:40000")}, "2001:0:4136:e378:8000:63bf:3fff:fdd2"},
		// Microsoft's example: port 5000 is EC77, 131.107.0.1 is 7C94:FFFE.
		{Address{Server: addr("65.54.227.120"), Flags: 0, Mapped: ap("131.107.0.1:5000")}, "2001:0:4136:e378:0:ec77:7c94:fffe"},
	}
	for _, c := range cases {
		got := c.a.IPv6()
		if got != addr(c.want) {
			t.Errorf("%+v.IPv6() = %v, want %s", c.a, got, c.want)
		}
		back, ok := ParseAddress(got)
		if !ok || back != c.a {
			t.Errorf("ParseAddress(%v) = %+v, %v; want %+v", got, back, ok, c.a)
		}
	}
	if c := (Address{Flags: FlagCone}); !c.Cone() {
		t.Error("cone flag not reported")
	}
}

func TestIsTeredo(t *testing.T) {
	for s, want := range map[string]bool{
		"2001:0:4136:e378:8000:63bf:3fff:fdd2": true,
		"2001::":                               true,
		"2001:1::1":                            false,
		"2001:db8::1":                          false,
		"2002:c000:201::c000:201":              false,
		"::ffff:32.1.0.0":                      false,
		"32.1.0.0":                             false,
	} {
		if got := IsTeredo(addr(s)); got != want {
			t.Errorf("IsTeredo(%s) = %v", s, got)
		}
		if _, ok := ParseAddress(addr(s)); ok != want {
			t.Errorf("ParseAddress(%s) ok = %v", s, ok)
		}
	}
}

func TestRandomFlags(t *testing.T) {
	for _, r := range []uint16{0, 0xffff, 0x1234, 0xc300} {
		f := RandomFlags(r)
		if f&(FlagCone|FlagReserved|FlagUG) != 0 {
			t.Errorf("RandomFlags(%#x) = %#x: C, R, U or G set", r, f)
		}
		if f != r&0x3cff {
			t.Errorf("RandomFlags(%#x) = %#x: A bits lost", r, f)
		}
	}
}

func TestLinkLocals(t *testing.T) {
	// RFC 4380 section 5.3.2: fe80::8000:<~3544>:<~server>; ~3544 = 0xf227.
	if got := ServerLinkLocal(addr("198.51.100.10")); got != addr("fe80::8000:f227:39cc:9bf5") {
		t.Errorf("ServerLinkLocal = %v", got)
	}
	if !IsConeSolicitation(RSSourceCone) || IsConeSolicitation(RSSourceNonCone) {
		t.Error("cone solicitation sources told apart wrongly")
	}
	if IsConeSolicitation(addr("2001:0:4136:e378:8000:63bf:3fff:fdd2")) {
		t.Error("a global address is no solicitation source")
	}
}

func TestIsGlobalUnicast(t *testing.T) {
	cases := []struct {
		a         string
		want, lab bool
	}{
		{"8.8.8.8", true, true},
		{"100.64.0.1", true, true}, // RFC 4380's list predates RFC 6598
		{"0.1.2.3", false, false},
		{"10.0.0.1", false, false},
		{"127.0.0.1", false, false},
		{"169.254.1.1", false, false},
		{"172.16.0.1", false, false},
		{"172.31.255.255", false, false},
		{"172.32.0.1", true, true},
		{"192.168.1.1", false, false},
		{"192.88.99.1", false, false},
		{"224.0.0.253", false, false},
		{"240.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"192.0.2.1", false, true},
		{"198.51.100.10", false, true},
		{"203.0.113.7", false, true},
		{"2001:db8::1", false, false},
	}
	for _, c := range cases {
		if got := IsGlobalUnicast(addr(c.a), false); got != c.want {
			t.Errorf("IsGlobalUnicast(%s, false) = %v", c.a, got)
		}
		if got := IsGlobalUnicast(addr(c.a), true); got != c.lab {
			t.Errorf("IsGlobalUnicast(%s, true) = %v", c.a, got)
		}
	}
	if !IsSharedAddressSpace(addr("100.127.255.1")) || IsSharedAddressSpace(addr("100.128.0.1")) {
		t.Error("100.64.0.0/10 bounds")
	}
}

func TestOriginExample(t *testing.T) {
	// RFC 4380 section 5.1.1: port 337 and 1.2.3.4 give 0000FEAEFEFDFCFB.
	got := AppendOrigin(nil, ap("1.2.3.4:337"))
	if want, _ := hex.DecodeString("0000feaefefdfcfb"); !bytes.Equal(got, want) {
		t.Fatalf("AppendOrigin = %x", got)
	}
}

// TestRSBytes compares the solicitations with the checksums Miredo
// precomputes for exactly these messages (0x7d37 without, 0x125d with the
// cone flag).
func TestRSBytes(t *testing.T) {
	nonce := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, c := range []struct {
		cone bool
		sum  uint16
		src  string
	}{{false, 0x7d37, "fe80::ffff:ffff:ffff"}, {true, 0x125d, "fe80::8000:5445:5245:444f"}} {
		b := AppendRS(nil, nonce, c.cone)
		if len(b) != 61 {
			t.Fatalf("cone %v: %d bytes, want 61", c.cone, len(b))
		}
		if want := []byte{0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0}; !bytes.Equal(b[:13], want) {
			t.Errorf("auth header %x", b[:13])
		}
		p := b[13:]
		if p[0] != 0x60 || packet.PayloadLen(p) != 8 || packet.NextHeader(p) != 58 || packet.HopLimit(p) != 255 {
			t.Errorf("IPv6 header %x", p[:8])
		}
		if packet.Src(p) != addr(c.src) || packet.Dst(p) != addr("ff02::2") {
			t.Errorf("addresses %v -> %v", packet.Src(p), packet.Dst(p))
		}
		if p[40] != 133 || binary.BigEndian.Uint16(p[42:]) != c.sum {
			t.Errorf("cone %v: ICMPv6 %x, want checksum %#x", c.cone, p[40:], c.sum)
		}
		d, err := Parse(b)
		if err != nil || !d.HasAuth || d.Nonce != nonce || d.HasOrigin || len(d.Trailers) != 0 {
			t.Errorf("Parse(RS) = %+v, %v", d, err)
		}
	}
}

func TestRARoundTrip(t *testing.T) {
	nonce := [8]byte{9, 8, 7, 6, 5, 4, 3, 2}
	primary := addr("198.51.100.10")
	mapping := ap("203.0.113.5:40000")
	b, err := AppendRA(nil, nonce, mapping, RSSourceNonCone, primary)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !d.HasOrigin || d.Origin != mapping || packet.Src(d.IPv6) != ServerLinkLocal(primary) {
		t.Fatalf("datagram %+v", d.Header)
	}
	adv, err := ParseRA(d, nonce, RSSourceNonCone)
	if err != nil {
		t.Fatal(err)
	}
	want := Advertisement{Prefix: netip.MustParsePrefix("2001:0:c633:640a::/64"), Server: primary, Mapping: mapping, MTU: 1280}
	if adv != want {
		t.Fatalf("ParseRA = %+v, want %+v", adv, want)
	}
	if got := adv.ClientAddress(0x1234 & FlagRandom); got != addr("2001:0:c633:640a:1034:63bf:34ff:8efa") {
		t.Errorf("ClientAddress = %v", got)
	}

	// Every check refuses what it must.
	wrong := nonce
	wrong[0]++
	if _, err := ParseRA(d, wrong, RSSourceNonCone); !errors.Is(err, ErrBadRA) {
		t.Errorf("wrong nonce: %v", err)
	}
	if _, err := ParseRA(d, nonce, RSSourceCone); !errors.Is(err, ErrBadRA) {
		t.Errorf("wrong destination: %v", err)
	}
	noOrigin := d
	noOrigin.HasOrigin = false
	if _, err := ParseRA(noOrigin, nonce, RSSourceNonCone); !errors.Is(err, ErrBadRA) {
		t.Errorf("no origin: %v", err)
	}
	noAuth := d
	noAuth.HasAuth = false
	if _, err := ParseRA(noAuth, nonce, RSSourceNonCone); !errors.Is(err, ErrBadRA) {
		t.Errorf("no auth: %v", err)
	}
	hop := d
	hop.IPv6 = append([]byte(nil), d.IPv6...)
	packet.SetHopLimit(hop.IPv6, 254)
	if _, err := ParseRA(hop, nonce, RSSourceNonCone); !errors.Is(err, ErrBadRA) {
		t.Errorf("hop limit 254: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	bubble := AppendBubble(nil, addr("fe80::1"), addr("2001:0:c633:640a::1"))
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrNotIPv6},
		{"short auth", []byte{0, 1, 0, 0, 1, 2}, ErrTruncated},
		{"auth ID overruns", append([]byte{0, 1, 200, 0}, make([]byte, 20)...), ErrTruncated},
		{"short origin", []byte{0, 0, 1, 2}, ErrTruncated},
		{"IPv4", append([]byte{0x45}, make([]byte, 39)...), ErrNotIPv6},
		{"length past end", append(bubble[:4:4], 0, 9, 59, 0), ErrNotIPv6},
		{"payload past end", func() []byte {
			b := append([]byte(nil), bubble...)
			b[5] = 8
			return b
		}(), ErrLength},
	}
	for _, c := range cases {
		if _, err := Parse(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	d, err := Parse(append(AppendOrigin(nil, ap("192.0.2.1:3544")), append(bubble, 3, 2, 0, 0)...))
	if err != nil || !IsBubble(d.IPv6) || d.Origin != ap("192.0.2.1:3544") || !bytes.Equal(d.Trailers, []byte{3, 2, 0, 0}) {
		t.Errorf("bubble with origin and trailer: %+v, %v", d, err)
	}
}

func TestNoAllocations(t *testing.T) {
	b := AppendOrigin(nil, ap("192.0.2.1:3544"))
	b = AppendBubble(b, addr("2001:0:c633:640a::1"), addr("2001:0:c633:640a::2"))
	a := addr("2001:0:4136:e378:8000:63bf:3fff:fdd2")
	out := make([]byte, 0, 64)
	n := testing.AllocsPerRun(1000, func() {
		d, err := Parse(b)
		if err != nil || !IsBubble(d.IPv6) {
			panic("parse")
		}
		p, _ := ParseAddress(a)
		if p.IPv6() != a {
			panic("address")
		}
		out = AppendOrigin(out[:0], d.Origin)
		out = AppendBubble(out, a, a)
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}

// The per-packet operations, for `go test -bench . -benchmem`: each must
// report 0 allocs/op.

func BenchmarkParse(b *testing.B) {
	pkt := AppendOrigin(nil, ap("192.0.2.1:3544"))
	pkt = packet.AppendIPv6Header(pkt, 6, 1200, 64, addr("2001:0:c633:640a::1"), addr("2001:db8:c0::10"))
	pkt = append(pkt, make([]byte, 1200)...)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, err := Parse(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAddress(b *testing.B) {
	a := addr("2001:0:4136:e378:8000:63bf:3fff:fdd2")
	b.ReportAllocs()
	for b.Loop() {
		p, ok := ParseAddress(a)
		if !ok || p.IPv6() != a {
			b.Fatal("round trip")
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	out := make([]byte, 0, 64)
	src, dst := addr("2001:0:c633:640a::1"), addr("2001:0:c633:640a::2")
	b.ReportAllocs()
	for b.Loop() {
		out = AppendOrigin(out[:0], ap("192.0.2.1:3544"))
		out = AppendBubble(out, src, dst)
	}
}
