package router

import (
	"bytes"
	"testing"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/mdlayher/ndp"
)

// expect is the outcome of one packet in one mode.
type expect struct {
	action Action
	reason DropReason // counted when action is Dropped
	sent   [3]int     // packets received by clients A, B, C
	hop    int        // if non-zero, the hop limit of what B received
}

func dropped(r DropReason) expect { return expect{action: Dropped, reason: r} }

var toHost = expect{action: ToHost}

func handled(a, b, c int) expect { return expect{action: Handled, sent: [3]int{a, b, c}} }

func TestFromClient(t *testing.T) {
	mldReport := ipv6Packet(0, 1, llA, "ff02::16", cat(
		[]byte{58, 0, 5, 2, 0, 0, 1, 0}, // hop-by-hop: router alert
		[]byte{143, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 20)))
	raBehindDestOpts := ipv6Packet(60, 255, llA, "ff02::1", cat(ext(58, 0), []byte{134, 0, 0, 0, 64, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0}))
	nsBehindHBH := ipv6Packet(0, 255, llA, "ff02::1:ff00:b", cat(ext(58, 0), nd(t, llA, "ff02::1:ff00:b", ns(llB))[40:]))
	brokenChain := ipv6Packet(0, 64, gA, outside, []byte{17, 4, 0, 0, 0, 0, 0, 0})
	short := udp(gA, outside, 64)[:39]
	longer := append(udp(gA, outside, 64), 0)
	v4 := udp(gA, outside, 64)
	v4[0] = 0x45
	raHop254 := withHop(nd(t, llA, "ff02::2", &ndp.RouterSolicitation{}), 254)
	nsHop254 := withHop(nd(t, llA, "ff02::1:ff00:1", ns(serverLL)), 254)
	redirect := icmp(packet.TypeRedirect, 255, llA, llB)

	tests := []struct {
		name        string
		from        int
		pkt         []byte
		isolate     bool
		none, certs expect
	}{
		// Framing.
		{name: "shorter than a header", pkt: short, none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "payload length mismatch", pkt: longer, none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "IPv4", pkt: v4, none: dropped(DropNotIPv6), certs: dropped(DropNotIPv6)},

		// Source checks.
		{name: "source outside prefix", pkt: udp("2001:db8:2::a", outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "multicast source", pkt: udp("ff02::1", outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "source of another client", pkt: udp(gB, outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "link-local source of another client", pkt: udp(llB, serverLL, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "source is a host address", pkt: udp(hostAddr, outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "source is the server link-local", pkt: udp(serverLL, outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "source is the subnet-router anycast", pkt: udp(anycast, outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "loopback source", pkt: udp("::1", outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "unspecified source, UDP", pkt: udp("::", outside, 64), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "unspecified source, echo to all-nodes", pkt: icmp(128, 64, "::", "ff02::1"), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "unspecified source, NS to unicast", pkt: nd(t, "::", llB, ns(llB)), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "unspecified source, NA", pkt: nd(t, "::", "ff02::1", &ndp.NeighborAdvertisement{TargetAddress: a(gA)}), none: dropped(DropSpoofedSource), certs: dropped(DropSpoofedSource)},
		{name: "new source in prefix is learned", from: 2, pkt: udp(gC, outside, 64), none: toHost, certs: toHost},

		// Unicast beyond the link and to the server.
		{name: "global beyond the link", pkt: udp(gA, outside, 64), none: toHost, certs: toHost},
		{name: "hop limit 1 beyond the link (kernel's job)", pkt: udp(gA, outside, 1), none: toHost, certs: toHost},
		{name: "to a host address", pkt: udp(gA, hostAddr, 64), none: toHost, certs: toHost},
		{name: "link-local to the server", pkt: udp(llA, serverLL, 64), none: toHost, certs: toHost},
		{name: "echo to the server", pkt: icmp(128, 64, llA, serverLL), none: toHost, certs: toHost},
		{name: "to the subnet-router anycast", pkt: udp(gA, anycast, 64), none: toHost, certs: toHost},
		{name: "to ::", pkt: udp(gA, "::", 64), none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "to ::1", pkt: udp(gA, "::1", 64), none: dropped(DropMalformed), certs: dropped(DropMalformed)},

		// Link-local unicast between clients.
		{name: "link-local to another client", pkt: udp(llA, llB, 64), none: dropped(DropLinkLocal), certs: expect{action: Handled, sent: [3]int{0, 1, 0}, hop: 64}},
		{name: "link-local to nobody", pkt: udp(llA, unownedLL, 64), none: dropped(DropLinkLocal), certs: dropped(DropNoNeighbor)},
		{name: "link-local to another client, isolated", isolate: true, pkt: udp(llA, llB, 64), none: dropped(DropLinkLocal), certs: dropped(DropIsolated)},

		// Global unicast inside the prefix.
		{name: "global to another client", pkt: udp(gA, gB, 64), none: expect{action: Handled, sent: [3]int{0, 1, 0}, hop: 63}, certs: expect{action: Handled, sent: [3]int{0, 1, 0}, hop: 64}},
		{name: "global to another client, hop limit 1", pkt: udp(gA, gB, 1), none: dropped(DropHopLimit), certs: expect{action: Handled, sent: [3]int{0, 1, 0}, hop: 1}},
		{name: "global to another client, hop limit 0", pkt: udp(gA, gB, 0), none: dropped(DropHopLimit), certs: expect{action: Handled, sent: [3]int{0, 1, 0}}},
		{name: "global to another client, isolated", isolate: true, pkt: udp(gA, gB, 64), none: dropped(DropIsolated), certs: dropped(DropIsolated)},
		{name: "global to nobody", pkt: udp(gA, unowned, 64), none: dropped(DropNoNeighbor), certs: dropped(DropNoNeighbor)},
		{name: "global to itself", pkt: udp(gA, gA, 64), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "global to itself, isolated", isolate: true, pkt: udp(gA, gA, 64), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "link-local source to a global client address", pkt: udp(llA, gB, 64), none: expect{action: Handled, sent: [3]int{0, 1, 0}, hop: 63}, certs: handled(0, 1, 0)},

		// Multicast.
		{name: "UDP to all-nodes", pkt: udp(llA, "ff02::1", 1), none: dropped(DropMulticast), certs: handled(0, 1, 1)},
		{name: "UDP to site-local multicast", pkt: udp(gA, "ff05::1:3", 1), none: dropped(DropMulticast), certs: handled(0, 1, 1)},
		{name: "UDP to all-nodes, isolated", isolate: true, pkt: udp(llA, "ff02::1", 1), none: dropped(DropMulticast), certs: handled(0, 1, 1)},
		{name: "interface-local multicast", pkt: udp(llA, "ff01::1", 1), none: dropped(DropMulticast), certs: dropped(DropMulticast)},
		{name: "MLD report behind hop-by-hop", pkt: mldReport, none: dropped(DropMulticast), certs: handled(0, 1, 1)},

		// Router messages and ND behind extension headers.
		{name: "RA from a client", pkt: nd(t, llA, "ff02::1", &ndp.RouterAdvertisement{CurrentHopLimit: 64}), none: dropped(DropRouterMessage), certs: dropped(DropRouterMessage)},
		{name: "RA to the server", pkt: nd(t, llA, serverLL, &ndp.RouterAdvertisement{}), none: dropped(DropRouterMessage), certs: dropped(DropRouterMessage)},
		{name: "redirect from a client", pkt: redirect, none: dropped(DropRouterMessage), certs: dropped(DropRouterMessage)},
		{name: "RA behind destination options", pkt: raBehindDestOpts, none: dropped(DropRouterMessage), certs: dropped(DropRouterMessage)},
		{name: "NS behind hop-by-hop", pkt: nsBehindHBH, none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "broken extension header chain", pkt: brokenChain, none: dropped(DropMalformed), certs: dropped(DropMalformed)},

		// Router Solicitation.
		{name: "RS", pkt: nd(t, llA, "ff02::2", &ndp.RouterSolicitation{}), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "RS from ::", from: 2, pkt: nd(t, "::", "ff02::2", &ndp.RouterSolicitation{}), none: handled(0, 0, 1), certs: handled(0, 0, 1)},
		{name: "RS unicast to the server", pkt: nd(t, llA, serverLL, &ndp.RouterSolicitation{}), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "RS with hop limit 254", pkt: raHop254, none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "RS with a bad checksum", pkt: func() []byte {
			b := nd(t, llA, "ff02::2", &ndp.RouterSolicitation{})
			b[42] ^= 1
			return b
		}(), none: dropped(DropMalformed), certs: dropped(DropMalformed)},

		// Neighbor Solicitation.
		{name: "NS for the server link-local", pkt: nd(t, llA, "ff02::1:ff00:1", ns(serverLL)), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "NUD of the server", pkt: nd(t, llA, serverLL, ns(serverLL)), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "NS for a host address", pkt: nd(t, gA, "ff02::1:ff00:1", ns(hostAddr)), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "NS for the anycast address", pkt: nd(t, gA, "ff02::1:ff00:0", ns(anycast)), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "DAD for a host address", from: 2, pkt: dadNS(t, hostAddr), none: handled(0, 0, 1), certs: handled(0, 0, 1)},
		{name: "NS with hop limit 254", pkt: nsHop254, none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "NS to the server about someone else", pkt: nd(t, llA, serverLL, ns(gB)), none: handled(0, 0, 0), certs: handled(0, 0, 0)},
		{name: "DAD for a free address", pkt: dadNS(t, "2001:db8:1::a2"), none: handled(0, 0, 0), certs: handled(0, 1, 1)},
		{name: "DAD for its own address", pkt: dadNS(t, gA), none: handled(0, 0, 0), certs: handled(0, 1, 1)},
		{name: "DAD for another client's address", from: 2, pkt: dadNS(t, gB), none: handled(0, 1, 1), certs: handled(0, 1, 0)},
		{name: "DAD for another client's link-local", from: 2, pkt: dadNS(t, llA), none: handled(1, 0, 1), certs: handled(1, 0, 0)},
		{name: "DAD for an address beyond the link", pkt: dadNS(t, outside), none: handled(0, 0, 0), certs: handled(0, 1, 1)},
		{name: "address resolution between clients", pkt: nd(t, gA, packet.SolicitedNode(a(gB)).String(), ns(gB)), none: dropped(DropMulticast), certs: handled(0, 1, 1)},
		{name: "NUD between clients, link-local", pkt: nd(t, llA, llB, ns(llB)), none: dropped(DropLinkLocal), certs: handled(0, 1, 0)},

		// Neighbor Advertisement.
		{name: "multicast NA for another client's address", pkt: nd(t, llA, "ff02::1", &ndp.NeighborAdvertisement{TargetAddress: a(gB)}), none: dropped(DropMulticast), certs: handled(0, 1, 0)},
		{name: "multicast NA for its own address", from: 1, pkt: nd(t, gB, "ff02::1", &ndp.NeighborAdvertisement{TargetAddress: a(gB)}), none: dropped(DropMulticast), certs: handled(1, 0, 1)},
		{name: "multicast NA for a free address", pkt: nd(t, llA, "ff02::1", &ndp.NeighborAdvertisement{TargetAddress: a(unowned)}), none: dropped(DropMulticast), certs: handled(0, 1, 1)},
		{name: "multicast NA with S set", pkt: func() []byte {
			b := nd(t, llA, "ff02::1", &ndp.NeighborAdvertisement{TargetAddress: a(gA)})
			b[44] |= 0x40
			packet.SetICMPv6Checksum(b)
			return b
		}(), none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "NA to the server", pkt: nd(t, llA, serverLL, &ndp.NeighborAdvertisement{Solicited: true, TargetAddress: a(llA)}), none: handled(0, 0, 0), certs: handled(0, 0, 0)},
		{name: "NA unicast to another client", pkt: nd(t, llA, llB, &ndp.NeighborAdvertisement{Solicited: true, TargetAddress: a(llA)}), none: dropped(DropLinkLocal), certs: handled(0, 1, 0)},
	}

	for _, tt := range tests {
		for _, mode := range []Mode{ModeNone, ModeCertificates} {
			want := tt.none
			if mode == ModeCertificates {
				want = tt.certs
			}
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				cfg := baseConfig(mode)
				cfg.IsolateClients = tt.isolate
				f := newFixture(t, cfg)
				f.clear()
				before := f.r.Drops()
				beforeStats := f.r.Stats()
				pkt := append([]byte(nil), tt.pkt...)

				got := f.r.FromClient(f.cs[tt.from], pkt)
				if got != want.action {
					t.Errorf("FromClient = %v, want %v (drops %v)", got, want.action, diffDrops(before, f.r.Drops()))
				}
				d := diffDrops(before, f.r.Drops())
				if want.action == Dropped {
					if len(d) != 1 || d[want.reason.String()] != 1 {
						t.Errorf("drops = %v, want exactly one %v", d, want.reason)
					}
				} else if len(d) != 0 {
					t.Errorf("drops = %v, want none", d)
				}
				for i, p := range f.ports {
					recv := p.take()
					if len(recv) != want.sent[i] {
						t.Errorf("client %c received %d packets, want %d", 'A'+i, len(recv), want.sent[i])
						continue
					}
					for _, r := range recv {
						if i == 1 && want.hop != 0 && int(packet.HopLimit(r)) != want.hop {
							t.Errorf("client B got hop limit %d, want %d", packet.HopLimit(r), want.hop)
						}
						// Relayed packets are the sender's, bar the hop limit;
						// the router's own (a probe of an address's owner) are not relays.
						if packet.Src(r) == a(serverLL) {
							continue
						}
						if i != tt.from && !packet.WellFormed(r) {
							t.Errorf("client %c received a malformed packet % x", 'A'+i, r)
						}
						if i != tt.from && !bytes.Equal(r[8:], tt.pkt[8:]) {
							t.Errorf("client %c received a modified packet", 'A'+i)
						}
					}
				}
				if s := f.r.Stats(); s.FromClient != beforeStats.FromClient+1 {
					t.Errorf("Stats.FromClient = %d, want %d", s.FromClient, beforeStats.FromClient+1)
				}
			})
		}
	}
}

func diffDrops(before, after map[string]uint64) map[string]uint64 {
	d := make(map[string]uint64)
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}
