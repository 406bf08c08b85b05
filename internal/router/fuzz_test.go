package router

import (
	"encoding/binary"
	"testing"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/mdlayher/ndp"
)

// FuzzFromClient feeds arbitrary bytes to FromClient (and FromHost) in both
// modes. The router must not panic, must return one of its three actions,
// must count exactly one drop per Dropped packet, must only send IPv6
// packets, and must keep its ownership table consistent.
//
// flags bit 0 picks ModeCertificates, bit 1 makes the framing consistent
// (version 6, Payload Length), bit 2 recomputes the ICMPv6 checksum, bit 3
// sets the hop limit to 255, bits 4-5 pick the sending client.
func FuzzFromClient(f *testing.F) {
	seeds := [][]byte{
		udp(gA, outside, 64),
		udp(gA, gB, 64),
		udp(llA, llB, 64),
		udp(llA, "ff02::1", 1),
		nd(f, llA, "ff02::2", rs()),
		nd(f, "::", "ff02::2", rs()),
		dadNS(f, gB),
		dadNS(f, "2001:db8:1::77"),
		nd(f, llA, "ff02::1:ff00:1", ns(serverLL)),
		nd(f, llA, "ff02::1", &ndp.NeighborAdvertisement{TargetAddress: a(gB)}),
		nd(f, llA, "ff02::1", &ndp.RouterAdvertisement{}),
		ipv6Packet(60, 255, llA, "ff02::1", cat(ext(58, 0), []byte{134, 0, 0, 0})),
		ipv6Packet(44, 64, gA, gB, []byte{58, 0, 0, 8, 0, 0, 0, 1, 135, 0}),
		{0x60},
	}
	for _, s := range seeds {
		for _, flags := range []uint8{0, 1, 0x0e, 0x0f} {
			f.Add(s, flags)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		mode := ModeNone
		if flags&1 != 0 {
			mode = ModeCertificates
		}
		cfg := baseConfig(mode)
		cfg.MaxAddrsPerClient = 4
		fx := newFixture(t, cfg)
		fx.clear()
		pkt := append([]byte(nil), data...)
		if flags&2 != 0 && len(pkt) >= packet.HeaderLen && len(pkt)-packet.HeaderLen <= 0xffff {
			pkt[0] = 0x60 | pkt[0]&0x0f
			binary.BigEndian.PutUint16(pkt[4:6], uint16(len(pkt)-packet.HeaderLen))
		}
		if flags&8 != 0 && len(pkt) >= packet.HeaderLen {
			packet.SetHopLimit(pkt, 255)
		}
		if flags&4 != 0 && packet.WellFormed(pkt) && packet.NextHeader(pkt) == packet.ProtoICMPv6 && len(pkt) >= packet.HeaderLen+4 {
			packet.SetICMPv6Checksum(pkt)
		}
		from := fx.cs[int(flags>>4&3)%len(fx.cs)]

		before := fx.r.Stats().Dropped
		act := fx.r.FromClient(from, pkt)
		after := fx.r.Stats().Dropped
		switch act {
		case Dropped:
			if after != before+1 {
				t.Fatalf("Dropped with %d drops counted", after-before)
			}
		case Handled:
			// Failed sends may be counted, nothing else.
			if d := fx.r.Drops()["queue_full"]; after-before != d {
				t.Fatalf("Handled with %d drops counted", after-before)
			}
		case ToHost:
			if after != before || !packet.WellFormed(pkt) {
				t.Fatalf("ToHost with %d drops, well-formed %v", after-before, packet.WellFormed(pkt))
			}
		default:
			t.Fatalf("FromClient returned %v", act)
		}
		for i, p := range fx.ports {
			for _, b := range p.take() {
				if !packet.WellFormed(b) {
					t.Fatalf("client %d was sent a malformed packet % x", i, b)
				}
			}
		}
		checkTable(t, fx.r)

		switch act := fx.r.FromHost(pkt); act {
		case Handled, Dropped:
		default:
			t.Fatalf("FromHost returned %v", act)
		}
	})
}

// checkTable verifies that the ownership table and the clients' address
// lists agree.
func checkTable(t *testing.T, r *Router) {
	t.Helper()
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, c := range r.clients {
		addrs := *c.addrs.Load()
		if len(addrs) > r.cfg.MaxAddrsPerClient {
			t.Fatalf("%v owns %d addresses, limit %d", c, len(addrs), r.cfg.MaxAddrsPerClient)
		}
		for _, a := range addrs {
			if r.owners[a] != c {
				t.Fatalf("%v lists %v, table says %v", c, a, r.owners[a])
			}
			if !r.claimable(a) {
				t.Fatalf("%v owns unclaimable %v", c, a)
			}
		}
		n += len(addrs)
	}
	if n != len(r.owners) {
		t.Fatalf("table has %d entries, clients list %d", len(r.owners), n)
	}
}
