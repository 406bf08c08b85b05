package sixtofour

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func TestAddress(t *testing.T) {
	for _, c := range []struct{ v4, v6, site string }{
		{"192.0.2.1", "2002:c000:201::c000:201", "2002:c000:201::/48"},
		{"203.0.113.254", "2002:cb00:71fe::cb00:71fe", "2002:cb00:71fe::/48"},
		{"8.8.4.4", "2002:808:404::808:404", "2002:808:404::/48"},
	} {
		v4 := netip.MustParseAddr(c.v4)
		a := Address(v4)
		if a.String() != c.v6 {
			t.Errorf("Address(%s) = %s, want %s", c.v4, a, c.v6)
		}
		if got, ok := Embedded(a); !ok || got != v4 {
			t.Errorf("Embedded(%s) = %v, %v", a, got, ok)
		}
		if p := SitePrefix(v4); p.String() != c.site {
			t.Errorf("SitePrefix(%s) = %s, want %s", c.v4, p, c.site)
		}
	}
	for _, s := range []string{"2001:db8::1", "2001::1", "::ffff:192.0.2.1", "2003::1", "192.0.2.1"} {
		if _, ok := Embedded(netip.MustParseAddr(s)); ok {
			t.Errorf("Embedded(%s) ok, want not a 6to4 address", s)
		}
	}
}

func TestCheckPublic(t *testing.T) {
	for _, c := range []struct {
		addr string
		lab  bool
		want string // substring of the error; "" = public
	}{
		{"8.8.8.8", false, ""},
		{"1.1.1.1", false, ""},
		{"10.1.2.3", false, "10.0.0.0/8, private"},
		{"172.16.0.1", false, "private"},
		{"172.31.255.255", false, "private"},
		{"172.32.0.1", false, ""},
		{"192.168.1.5", false, "private"},
		{"100.64.0.1", false, "carrier-grade NAT"},
		{"100.127.255.255", false, "carrier-grade NAT"},
		{"100.128.0.1", false, ""},
		{"127.0.0.1", false, "loopback"},
		{"169.254.1.1", false, "link-local"},
		{"0.1.2.3", false, "this network"},
		{"192.0.0.8", false, "IETF"},
		{"192.88.99.1", false, "anycast"},
		{"198.18.0.1", false, "benchmarking"},
		{"198.19.255.1", false, "benchmarking"},
		{"224.0.0.1", false, "multicast"},
		{"255.255.255.255", false, "reserved"},
		{"192.0.2.1", false, "documentation"},
		{"198.51.100.7", false, "documentation"},
		{"203.0.113.9", false, "documentation"},
		{"192.0.2.1", true, ""},
		{"198.51.100.7", true, ""},
		{"10.1.2.3", true, "private"},
		{"2001:db8::1", false, "not an IPv4"},
	} {
		a := netip.MustParseAddr(c.addr)
		err := CheckPublic(a, c.lab)
		if c.want == "" {
			if err != nil || !IsPublic(a, c.lab) {
				t.Errorf("%s lab=%v: %v, IsPublic %v; want public", c.addr, c.lab, err, IsPublic(a, c.lab))
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || IsPublic(a, c.lab) {
			t.Errorf("%s lab=%v: %v (IsPublic %v), want an error with %q", c.addr, c.lab, err, IsPublic(a, c.lab), c.want)
		}
	}
}

// encap builds, independently of Decapsulate, an IPv4 packet of protocol
// proto from src to dst carrying payload.
func encap(src, dst string, proto byte, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(payload)))
	b[8], b[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, payload...)
}

// ipv6 builds an IPv6 packet from src to dst with n bytes of UDP-like payload.
func ipv6(src, dst string, n int) []byte {
	b := make([]byte, 40+n)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	b[6], b[7] = 17, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

const (
	clientV4 = "192.0.2.2"
	clientV6 = "2002:c000:202::c000:202"
	relayV4  = "192.0.2.1"
	relayV6  = "2002:c000:201::c000:201"
	intranet = "2001:db8:7::1"
)

func TestDecapsulateAndInbound(t *testing.T) {
	relay := netip.MustParseAddr(relayV4)
	good := ipv6(relayV6, clientV6, 8)
	withOptions := func() []byte {
		b := encap(relayV4, clientV4, 41, good)
		// Insert 4 bytes of options (a NOP row): IHL 6.
		b = append(b[:20], append([]byte{1, 1, 1, 1}, b[20:]...)...)
		b[0] = 0x46
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		return b
	}()
	fragment := encap(relayV4, clientV4, 41, good)
	fragment[6] = 0x20 // MF
	trailing := append(encap(relayV4, clientV4, 41, good), 0xde, 0xad)
	longInner := encap(relayV4, clientV4, 41, append(ipv6(relayV6, clientV6, 8), 1, 2, 3))
	shortInner := encap(relayV4, clientV4, 41, ipv6(relayV6, clientV6, 8)[:45])
	for _, c := range []struct {
		name  string
		b     []byte
		relay netip.Addr
		want  Drop
	}{
		{"6to4 to 6to4", encap(relayV4, clientV4, 41, good), netip.Addr{}, Accept},
		{"header options", withOptions, netip.Addr{}, Accept},
		{"link padding after the packet", trailing, netip.Addr{}, Accept},
		{"bytes after the IPv6 packet", longInner, netip.Addr{}, Accept},
		{"native source from the relay", encap(relayV4, clientV4, 41, ipv6(intranet, clientV6, 8)), relay, Accept},
		{"native source from another host", encap("192.0.2.66", clientV4, 41, ipv6(intranet, clientV6, 8)), relay, DropSourceNotRelay},
		{"native source, no relay", encap(relayV4, clientV4, 41, ipv6(intranet, clientV6, 8)), netip.Addr{}, DropSourceNotRelay},
		{"spoofed 6to4 source", encap("192.0.2.66", clientV4, 41, good), relay, DropSourceSpoofed},
		{"wrong 6to4 destination", encap(relayV4, "192.0.2.3", 41, good), relay, DropDestinationSpoofed},
		{"link-local source", encap(relayV4, clientV4, 41, ipv6("fe80::1", clientV6, 8)), relay, DropSourceNotRoutable},
		{"multicast source", encap(relayV4, clientV4, 41, ipv6("ff02::1", clientV6, 8)), relay, DropSourceNotRoutable},
		{"IPv4-mapped source", encap(relayV4, clientV4, 41, ipv6("::ffff:192.0.2.1", clientV6, 8)), relay, DropSourceNotRoutable},
		{"IPv4-compatible source", encap(relayV4, clientV4, 41, ipv6("::192.0.2.1", clientV6, 8)), relay, DropSourceNotRoutable},
		{"unspecified source", encap(relayV4, clientV4, 41, ipv6("::", clientV6, 8)), relay, DropSourceNotRoutable},
		{"UDP, not 41", encap(relayV4, clientV4, 17, good), relay, DropNotProtocol41},
		{"fragment", fragment, relay, DropFragment},
		{"truncated IPv4", encap(relayV4, clientV4, 41, good)[:19], relay, DropMalformedIPv4},
		{"IPv6 outer", append([]byte{0x60}, encap(relayV4, clientV4, 41, good)[1:]...), relay, DropMalformedIPv4},
		{"total length past the end", encap(relayV4, clientV4, 41, good)[:50], relay, DropMalformedIPv4},
		{"inner truncated", shortInner, relay, DropMalformedIPv6},
		{"inner IPv4", encap(relayV4, clientV4, 41, encap(relayV4, clientV4, 17, make([]byte, 30))), relay, DropMalformedIPv6},
		{"inner empty", encap(relayV4, clientV4, 41, nil), relay, DropMalformedIPv6},
	} {
		o, p, d := Decapsulate(c.b)
		if d == Accept {
			if len(p) != 40+int(binary.BigEndian.Uint16(p[4:])) {
				t.Errorf("%s: inner packet of %d bytes for payload length %d", c.name, len(p), binary.BigEndian.Uint16(p[4:]))
			}
			d = Inbound(o, p, c.relay)
		}
		if d != c.want {
			t.Errorf("%s: %v, want %v", c.name, d, c.want)
		}
	}
}

func TestNextHop(t *testing.T) {
	relay := netip.MustParseAddr(relayV4)
	for _, c := range []struct {
		dst   string
		relay netip.Addr
		lab   bool
		want  string
		drop  Drop
	}{
		{"2002:808:808::808:808", relay, false, "8.8.8.8", Accept},
		{relayV6, relay, true, relayV4, Accept},
		{relayV6, relay, false, "", DropDestinationNotPublic},
		{"2002:a00:1::a00:1", relay, true, "", DropDestinationNotPublic},
		{intranet, relay, true, relayV4, Accept},
		{intranet, netip.Addr{}, true, "", DropNoRelay},
	} {
		got, d := NextHop(netip.MustParseAddr(c.dst), c.relay, c.lab)
		if d != c.drop || (d == Accept && got.String() != c.want) {
			t.Errorf("NextHop(%s, lab=%v) = %v, %v; want %s, %v", c.dst, c.lab, got, d, c.want, c.drop)
		}
	}
}

func TestDropNames(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Drops() {
		n := d.String()
		if n == "" || n == "unknown" || seen[n] || strings.ContainsAny(n, " -") {
			t.Errorf("drop %d named %q", d, n)
		}
		seen[n] = true
	}
	if len(seen) != int(NumDrops)-1 {
		t.Errorf("%d names for %d reasons", len(seen), NumDrops-1)
	}
}

func TestPerPacketDoesNotAllocate(t *testing.T) {
	b := encap(relayV4, clientV4, 41, ipv6(relayV6, clientV6, 1000))
	relay := netip.MustParseAddr(relayV4)
	dst := netip.MustParseAddr(relayV6)
	if n := testing.AllocsPerRun(1000, func() {
		o, p, d := Decapsulate(b)
		if d != Accept || Inbound(o, p, relay) != Accept {
			t.Fatal("refused")
		}
		if _, d := NextHop(dst, relay, true); d != Accept {
			t.Fatal("no next hop")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

func BenchmarkDecapsulate(b *testing.B) {
	pkt := encap(relayV4, clientV4, 41, ipv6(relayV6, clientV6, 1200))
	relay := netip.MustParseAddr(relayV4)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		o, p, d := Decapsulate(pkt)
		if d != Accept || Inbound(o, p, relay) != Accept {
			b.Fatal("refused")
		}
	}
}
