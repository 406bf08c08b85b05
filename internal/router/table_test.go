package router

import (
	"net/netip"
	"slices"
	"testing"
)

func TestDetachFreesAddresses(t *testing.T) {
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t, baseConfig(mode))
			A, C := f.cs[0], f.cs[2]
			if got := A.Addrs(); !slices.Equal(got, []netip.Addr{a(llA), a(gA)}) {
				t.Fatalf("A.Addrs() = %v", got)
			}
			// Before: C cannot use A's addresses.
			if got := f.r.FromClient(C, udp(gA, outside, 64)); got != Dropped {
				t.Fatalf("C spoofing A: %v", got)
			}
			f.r.Detach(A)
			f.ports[0].closed = true
			for _, s := range []string{llA, gA} {
				if o, ok := f.r.Owner(a(s)); ok {
					t.Errorf("Owner(%s) = %v after Detach", s, o)
				}
			}
			if got := A.Addrs(); len(got) != 0 {
				t.Errorf("A.Addrs() = %v after Detach", got)
			}
			if slices.Contains(f.r.Clients(), A) || len(f.r.Clients()) != 2 {
				t.Errorf("Clients() = %v after Detach", f.r.Clients())
			}

			// A's packets are dropped and nothing is learned for it.
			before := f.r.Drops()["detached"]
			if got := f.r.FromClient(A, udp("2001:db8:1::a9", outside, 64)); got != Dropped {
				t.Errorf("FromClient(detached) = %v", got)
			}
			if f.r.Drops()["detached"] != before+1 {
				t.Error("detached drop not counted")
			}
			if _, ok := f.r.Owner(a("2001:db8:1::a9")); ok {
				t.Error("a detached client learned an address")
			}
			// Traffic to A's old address finds nobody.
			if got := f.r.FromHost(udp(outside, gA, 64)); got != Dropped {
				t.Errorf("FromHost to a freed address: %v", got)
			}

			// C may now claim them, by DAD and by use.
			f.r.FromClient(C, dadNS(t, gA))
			if o, _ := f.r.Owner(a(gA)); o != C {
				t.Errorf("after C's DAD, Owner(%s) = %v", gA, o)
			}
			if got := f.r.FromClient(C, udp(llA, serverLL, 64)); got != ToHost {
				t.Errorf("C sending from A's old link-local: %v", got)
			}
			f.r.Detach(A) // twice is harmless
			if len(f.r.Clients()) != 2 {
				t.Error("second Detach changed the client list")
			}
			if f.ports[0].late != 0 {
				t.Errorf("the router called Send %d times after Detach", f.ports[0].late)
			}
		})
	}
}

func TestDetachKeepsOthersIndexed(t *testing.T) {
	r, err := New(baseConfig(ModeCertificates))
	if err != nil {
		t.Fatal(err)
	}
	var ports []*fakePort
	var cs []*Client
	for range 5 {
		p := &fakePort{}
		ports = append(ports, p)
		cs = append(cs, r.Attach(p))
	}
	r.Detach(cs[1])
	r.Detach(cs[4])
	r.Detach(cs[0])
	r.AdvertiseAll()
	for i, p := range ports {
		want := 1
		if i == 0 || i == 1 || i == 4 {
			want = 0
		}
		if got := len(p.take()); got != want {
			t.Errorf("port %d got %d RAs, want %d", i, got, want)
		}
	}
	if n := r.Stats().Clients; n != 2 {
		t.Errorf("Stats.Clients = %d", n)
	}
	ids := map[uint64]bool{}
	for _, c := range cs {
		if ids[c.ID()] {
			t.Errorf("duplicate client ID %d", c.ID())
		}
		ids[c.ID()] = true
	}
	if cs[2].Port() != ports[2] {
		t.Error("Port() is not the attached port")
	}
}

func TestAddrLimit(t *testing.T) {
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := baseConfig(mode)
			cfg.MaxAddrsPerClient = 3
			f := newFixture(t, cfg) // A owns 2 addresses
			A := f.cs[0]
			if got := f.r.FromClient(A, udp("2001:db8:1::a1", outside, 64)); got != ToHost {
				t.Fatalf("third address: %v", got)
			}
			before := f.r.Drops()
			if got := f.r.FromClient(A, udp("2001:db8:1::a2", outside, 64)); got != Dropped {
				t.Errorf("fourth address: %v, want Dropped", got)
			}
			if got := f.r.FromClient(A, dadNS(t, "2001:db8:1::a3")); got != Dropped {
				t.Errorf("DAD for a fourth address: %v, want Dropped", got)
			}
			if d := diffDrops(before, f.r.Drops()); d["addr_limit"] != 2 || len(d) != 1 {
				t.Errorf("drops = %v, want 2 addr_limit", d)
			}
			// Owned addresses keep working; repeat DAD for one is fine.
			if got := f.r.FromClient(A, udp(gA, outside, 64)); got != ToHost {
				t.Errorf("owned address: %v", got)
			}
			if got := f.r.FromClient(A, dadNS(t, gA)); got != Handled {
				t.Errorf("DAD for an owned address: %v", got)
			}
			if _, ok := f.r.Owner(a("2001:db8:1::a2")); ok {
				t.Error("address over the limit was recorded")
			}
			if s := A.Stats(); s.Addrs != 3 || s.Drops["addr_limit"] != 2 {
				t.Errorf("A.Stats() = %+v", s)
			}
			// Other clients are unaffected.
			if got := f.r.FromClient(f.cs[2], udp("2001:db8:1::a2", outside, 64)); got != ToHost {
				t.Errorf("another client claiming the refused address: %v", got)
			}
		})
	}
}

func TestSourceCache(t *testing.T) {
	f := newFixture(t, baseConfig(ModeNone))
	A := f.cs[0]
	// Alternate sources: each switch takes the slow path, all succeed.
	for i := range 10 {
		src := gA
		if i%2 == 1 {
			src = llA
		}
		if got := f.r.FromClient(A, udp(src, serverLL, 64)); got != ToHost {
			t.Fatalf("packet %d from %s: %v", i, src, got)
		}
		if !A.knows(a(src)) {
			t.Errorf("cache does not hold %s", src)
		}
	}
	// The cache never vouches for an address the client does not own.
	if A.knows(a(gB)) {
		t.Error("cache knows B's address")
	}
	f.r.Detach(A)
	if A.knows(a(gA)) {
		t.Error("cache survives Detach")
	}
}
