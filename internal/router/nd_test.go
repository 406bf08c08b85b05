package router

import (
	"net/netip"
	"testing"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/mdlayher/ndp"
)

// parseNA checks that b is a valid NA and returns it.
func parseNA(t *testing.T, b []byte) *ndp.NeighborAdvertisement {
	t.Helper()
	if !packet.WellFormed(b) {
		t.Fatalf("NA packet is not well-formed: % x", b)
	}
	if !packet.VerifyICMPv6Checksum(b) {
		t.Fatal("NA has a bad checksum")
	}
	m, err := packet.ParseND(b)
	if err != nil {
		t.Fatalf("ParseND: %v", err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("got %T, want a Neighbor Advertisement", m)
	}
	return na
}

func TestDADConflictNoneForgesNA(t *testing.T) {
	f := newFixture(t, baseConfig(ModeNone))
	f.clear()
	conflictsBefore := f.r.Stats().DADConflicts

	// C probes B's global address.
	if got := f.r.FromClient(f.cs[2], dadNS(t, gB)); got != Handled {
		t.Fatalf("FromClient = %v, want Handled", got)
	}
	// The owner gets a solicitation from the router, not the probe: the
	// write ends a session that is dead on the client's side.
	owned := f.ports[1].take()
	if len(owned) != 1 {
		t.Fatalf("the owner received %d packets, want the router's solicitation", len(owned))
	}
	if src, dst := packet.Src(owned[0]), packet.Dst(owned[0]); src != a("fe80::1") || dst != a(gB) || owned[0][40] != 135 {
		t.Errorf("to the owner: type %d %v -> %v, want a neighbor solicitation fe80::1 -> %s", owned[0][40], src, dst, gB)
	}
	if m, err := ndp.ParseMessage(owned[0][40:]); err != nil || m.(*ndp.NeighborSolicitation).TargetAddress != a(gB) {
		t.Errorf("solicitation to the owner: %v %v, want target %s", m, err, gB)
	}
	got := f.ports[2].take()
	if len(got) != 1 {
		t.Fatalf("the prober received %d packets, want 1", len(got))
	}
	b := got[0]
	if src, dst, hop := packet.Src(b), packet.Dst(b), packet.HopLimit(b); src != a(gB) || dst != a("ff02::1") || hop != 255 {
		t.Errorf("NA header: %v -> %v hop limit %d, want %s -> ff02::1 hop limit 255", src, dst, hop, gB)
	}
	if packet.NextHeader(b) != packet.ProtoICMPv6 || b[41] != 0 {
		t.Errorf("next header %d, ICMP code %d", packet.NextHeader(b), b[41])
	}
	na := parseNA(t, b)
	want := ndp.NeighborAdvertisement{TargetAddress: a(gB)}
	if na.Router || na.Solicited || na.Override || na.TargetAddress != want.TargetAddress || len(na.Options) != 0 {
		t.Errorf("NA = %+v, want R=0 S=0 O=0 target %s no options", na, gB)
	}
	if len(b) != 40+24 {
		t.Errorf("NA is %d bytes, want 64 (no options)", len(b))
	}
	if o, _ := f.r.Owner(a(gB)); o != f.cs[1] {
		t.Errorf("Owner(%s) = %v after the conflict, want client B", gB, o)
	}
	if s := f.r.Stats(); s.DADConflicts != conflictsBefore+1 || s.NeighborAdvertisements == 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestDADConflictCertificatesForwardsToOwner(t *testing.T) {
	f := newFixture(t, baseConfig(ModeCertificates))
	f.clear()
	probe := dadNS(t, gB)
	if got := f.r.FromClient(f.cs[2], probe); got != Handled {
		t.Fatalf("FromClient = %v, want Handled", got)
	}
	got := f.ports[1].take()
	if len(got) != 1 || string(got[0]) != string(probe) {
		t.Fatalf("the owner received %d packets, want the probe unchanged", len(got))
	}
	if n := len(f.ports[0].take()) + len(f.ports[2].take()); n != 0 {
		t.Errorf("others received %d packets", n)
	}
	// The owner defends with a multicast NA from its address: it reaches the
	// prober.
	defence := nd(t, gB, "ff02::1", &ndp.NeighborAdvertisement{Override: true, TargetAddress: a(gB)})
	if got := f.r.FromClient(f.cs[1], defence); got != Handled {
		t.Fatalf("defence: FromClient = %v", got)
	}
	if n := len(f.ports[2].take()); n != 1 {
		t.Errorf("the prober received %d packets, want the defence", n)
	}
}

func TestDADClaimsTarget(t *testing.T) {
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t, baseConfig(mode))
			const tentative = "2001:db8:1::77"
			if got := f.r.FromClient(f.cs[2], dadNS(t, tentative)); got != Handled {
				t.Fatalf("FromClient = %v", got)
			}
			if o, ok := f.r.Owner(a(tentative)); !ok || o != f.cs[2] {
				t.Fatalf("Owner(%s) = %v, %v, want client C", tentative, o, ok)
			}
			// A second prober now conflicts, and cannot send from it.
			f.clear()
			f.r.FromClient(f.cs[0], dadNS(t, tentative))
			if mode == ModeNone {
				if got := f.ports[0].take(); len(got) != 1 || packet.Src(got[0]) != a(tentative) {
					t.Errorf("second prober got %d packets, want a forged NA", len(got))
				}
			} else if got := f.ports[2].take(); len(got) != 1 {
				t.Errorf("owner got %d packets, want the probe", len(got))
			}
			if got := f.r.FromClient(f.cs[0], udp(tentative, outside, 64)); got != Dropped {
				t.Errorf("sending from another client's tentative address: %v, want Dropped", got)
			}
			// The claimant uses it.
			if got := f.r.FromClient(f.cs[2], udp(tentative, outside, 64)); got != ToHost {
				t.Errorf("claimant sending from its address: %v, want ToHost", got)
			}
		})
	}
}

func TestNSForServerAnswered(t *testing.T) {
	tests := []struct {
		name, src, dst, target string
		wantFrom, wantTo       string
		wantS, wantO           bool
	}{
		{"link-local, multicast", llA, "ff02::1:ff00:1", serverLL, serverLL, llA, true, true},
		{"link-local, NUD", llA, serverLL, serverLL, serverLL, llA, true, true},
		{"host address", gA, "ff02::1:ff00:1", hostAddr, hostAddr, gA, true, true},
		{"DAD for the server's address", "::", "ff02::1:ff00:1", serverLL, serverLL, "ff02::1", false, true},
		{"subnet-router anycast", llA, "ff02::1:ff00:0", anycast, serverLL, llA, true, false},
	}
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, baseConfig(mode))
				f.clear()
				if got := f.r.FromClient(f.cs[0], nd(t, tt.src, tt.dst, ns(tt.target))); got != Handled {
					t.Fatalf("FromClient = %v, want Handled", got)
				}
				got := f.ports[0].take()
				if len(got) != 1 {
					t.Fatalf("client received %d packets, want 1", len(got))
				}
				b := got[0]
				if packet.Src(b) != a(tt.wantFrom) || packet.Dst(b) != a(tt.wantTo) || packet.HopLimit(b) != 255 {
					t.Errorf("NA %v -> %v hop %d, want %s -> %s hop 255", packet.Src(b), packet.Dst(b), packet.HopLimit(b), tt.wantFrom, tt.wantTo)
				}
				na := parseNA(t, b)
				if !na.Router || na.Solicited != tt.wantS || na.Override != tt.wantO || na.TargetAddress != a(tt.target) || len(na.Options) != 0 {
					t.Errorf("NA = %+v, want R=1 S=%v O=%v target %s, no options", na, tt.wantS, tt.wantO, tt.target)
				}
				if n := len(f.ports[1].take()) + len(f.ports[2].take()); n != 0 {
					t.Errorf("other clients received %d packets", n)
				}
			})
		}
	}
}

func TestRSAnsweredWithRA(t *testing.T) {
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		for _, src := range []string{llA, "::"} {
			t.Run(mode.String()+"/"+src, func(t *testing.T) {
				f := newFixture(t, baseConfig(mode))
				f.clear()
				before := f.r.Stats().RouterAdvertisements
				if got := f.r.FromClient(f.cs[0], nd(t, src, "ff02::2", &ndp.RouterSolicitation{})); got != Handled {
					t.Fatalf("FromClient = %v", got)
				}
				got := f.ports[0].take()
				if len(got) != 1 {
					t.Fatalf("client received %d packets, want the RA", len(got))
				}
				wantDst := a(src)
				if src == "::" {
					wantDst = packet.AllNodes()
				}
				if packet.Dst(got[0]) != wantDst || packet.Src(got[0]) != a(serverLL) {
					t.Errorf("RA %v -> %v, want fe80::1 -> %v", packet.Src(got[0]), packet.Dst(got[0]), wantDst)
				}
				// Byte-identical to a freshly built RA (checks the patched
				// destination and checksum of the cached one).
				want, err := f.r.BuildRA(wantDst)
				if err != nil {
					t.Fatal(err)
				}
				if string(got[0]) != string(want) {
					t.Errorf("RA differs from BuildRA(%v)", wantDst)
				}
				if m, err := packet.ParseND(got[0]); err != nil {
					t.Errorf("ParseND: %v", err)
				} else if _, ok := m.(*ndp.RouterAdvertisement); !ok {
					t.Errorf("got %T", m)
				}
				if n := len(f.ports[1].take()) + len(f.ports[2].take()); n != 0 {
					t.Errorf("other clients received %d packets: the RA goes to the soliciting client only", n)
				}
				if s := f.r.Stats(); s.RouterAdvertisements != before+1 {
					t.Errorf("RouterAdvertisements = %d, want %d", s.RouterAdvertisements, before+1)
				}
			})
		}
	}
}

func TestRSFromUnknownLinkLocalLearnsIt(t *testing.T) {
	f := newFixture(t, baseConfig(ModeNone))
	const ll = "fe80::1234:5678:9abc:def0"
	if got := f.r.FromClient(f.cs[2], nd(t, ll, "ff02::2", &ndp.RouterSolicitation{})); got != Handled {
		t.Fatalf("FromClient = %v", got)
	}
	if o, _ := f.r.Owner(netip.MustParseAddr(ll)); o != f.cs[2] {
		t.Errorf("Owner = %v, want client C", o)
	}
}
