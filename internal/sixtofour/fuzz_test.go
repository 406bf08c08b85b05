package sixtofour

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzDecapsulate feeds arbitrary datagrams to the receive path and checks
// what it accepts against the bytes themselves: the outer header says
// IPv4, protocol 41, not a fragment; the inner packet lies inside the
// datagram, is IPv6 and exactly as long as its header says; an accepted
// source embeds the outer source or came from the relay; an accepted 6to4
// destination embeds the outer destination.
func FuzzDecapsulate(f *testing.F) {
	good := encap(relayV4, clientV4, 41, ipv6(relayV6, clientV6, 8))
	f.Add(good)
	f.Add(encap(relayV4, clientV4, 41, ipv6(intranet, clientV6, 8)))
	f.Add(encap("192.0.2.66", clientV4, 41, ipv6(relayV6, clientV6, 8)))
	f.Add(encap(relayV4, clientV4, 41, ipv6("fe80::1", clientV6, 0)))
	f.Add(encap(relayV4, clientV4, 17, ipv6(relayV6, clientV6, 8)))
	f.Add(good[:30])
	f.Add([]byte{0x4f})
	relay := netip.MustParseAddr(relayV4)
	f.Fuzz(func(t *testing.T, b []byte) {
		o, p, d := Decapsulate(b)
		if d != Accept {
			if p != nil {
				t.Fatalf("refused (%v) but returned a packet", d)
			}
			return
		}
		hl := int(b[0]&0x0f) * 4
		if b[0]>>4 != 4 || b[9] != 41 || b[6]&0x3f != 0 || b[7] != 0 || hl < 20 {
			t.Fatalf("accepted outer header %x", b[:min(len(b), 20)])
		}
		if o.Src != netip.AddrFrom4([4]byte(b[12:16])) || o.Dst != netip.AddrFrom4([4]byte(b[16:20])) {
			t.Fatalf("outer %+v, header %x", o, b[12:20])
		}
		if len(p) < 40 || p[0]>>4 != 6 || len(p) != 40+int(p[4])<<8+int(p[5]) {
			t.Fatalf("accepted inner packet %x", p[:min(len(p), 40)])
		}
		if !bytes.Equal(b[hl:hl+len(p)], p) {
			t.Fatal("inner packet is not the bytes after the outer header")
		}
		if Inbound(o, p, relay) != Accept {
			return
		}
		src, dst := netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		if src.IsLinkLocalUnicast() || src.IsMulticast() || src.IsUnspecified() || src.IsLoopback() {
			t.Fatalf("accepted source %v", src)
		}
		if s := src.As16(); s[0] == 0x20 && s[1] == 0x02 {
			if netip.AddrFrom4([4]byte(s[2:6])) != o.Src {
				t.Fatalf("accepted 6to4 source %v from %v", src, o.Src)
			}
		} else if o.Src != relay {
			t.Fatalf("accepted native source %v from %v, not the relay", src, o.Src)
		}
		if s := dst.As16(); s[0] == 0x20 && s[1] == 0x02 && netip.AddrFrom4([4]byte(s[2:6])) != o.Dst {
			t.Fatalf("accepted 6to4 destination %v sent to %v", dst, o.Dst)
		}
	})
}
