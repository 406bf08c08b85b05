package router

import "testing"

func TestFromHost(t *testing.T) {
	short := udp(outside, gA, 64)[:30]
	v4 := udp(outside, gA, 64)
	v4[0] = 0x45
	tests := []struct {
		name        string
		pkt         []byte
		fullB       bool
		none, certs expect
	}{
		{name: "to a client's global address", pkt: udp(outside, gA, 63), none: handled(1, 0, 0), certs: handled(1, 0, 0)},
		{name: "to a client's link-local address", pkt: udp(serverLL, llB, 64), none: handled(0, 1, 0), certs: handled(0, 1, 0)},
		{name: "to nobody", pkt: udp(outside, unowned, 64), none: dropped(DropNoNeighbor), certs: dropped(DropNoNeighbor)},
		{name: "to the server itself", pkt: udp(outside, serverLL, 64), none: dropped(DropNoNeighbor), certs: dropped(DropNoNeighbor)},
		{name: "queue full", pkt: udp(outside, gB, 64), fullB: true, none: dropped(DropQueueFull), certs: dropped(DropQueueFull)},
		{name: "multicast", pkt: udp(serverLL, "ff02::1", 1), none: dropped(DropHostMulticast), certs: handled(1, 1, 1)},
		{name: "multicast with a full port", pkt: udp(serverLL, "ff02::1", 1), fullB: true, none: dropped(DropHostMulticast), certs: handled(1, 0, 1)},
		{name: "interface-local multicast", pkt: udp(serverLL, "ff01::1", 1), none: dropped(DropHostMulticast), certs: dropped(DropHostMulticast)},
		{name: "short", pkt: short, none: dropped(DropMalformed), certs: dropped(DropMalformed)},
		{name: "IPv4", pkt: v4, none: dropped(DropNotIPv6), certs: dropped(DropNotIPv6)},
		{name: "trailing garbage", pkt: append(udp(outside, gA, 64), 9), none: dropped(DropMalformed), certs: dropped(DropMalformed)},
	}
	for _, tt := range tests {
		for _, mode := range []Mode{ModeNone, ModeCertificates} {
			want := tt.none
			if mode == ModeCertificates {
				want = tt.certs
			}
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, baseConfig(mode))
				f.clear()
				f.ports[1].full = tt.fullB
				before := f.r.Drops()
				if got := f.r.FromHost(append([]byte(nil), tt.pkt...)); got != want.action {
					t.Errorf("FromHost = %v, want %v", got, want.action)
				}
				d := diffDrops(before, f.r.Drops())
				switch {
				case want.action == Dropped && (len(d) != 1 || d[want.reason.String()] != 1):
					t.Errorf("drops = %v, want one %v", d, want.reason)
				case want.action != Dropped && !tt.fullB && len(d) != 0:
					t.Errorf("drops = %v, want none", d)
				case want.action == Handled && tt.fullB && d["queue_full"] != 1:
					t.Errorf("drops = %v, want one queue_full for the full port", d)
				}
				for i, p := range f.ports {
					got := p.take()
					if len(got) != want.sent[i] {
						t.Errorf("client %c received %d packets, want %d", 'A'+i, len(got), want.sent[i])
					}
					for _, b := range got {
						if string(b) != string(tt.pkt) {
							t.Errorf("client %c received a modified packet", 'A'+i)
						}
					}
				}
				if f.r.Stats().FromHost != 1 {
					t.Errorf("Stats.FromHost = %d", f.r.Stats().FromHost)
				}
			})
		}
	}
}

func TestQueueFullFromClient(t *testing.T) {
	f := newFixture(t, baseConfig(ModeCertificates))
	f.clear()
	f.ports[1].full = true
	A, B := f.cs[0], f.cs[1]

	// Unicast to a full port: Dropped.
	before := f.r.Drops()
	if got := f.r.FromClient(A, udp(gA, gB, 64)); got != Dropped {
		t.Errorf("unicast to a full port: %v", got)
	}
	if d := diffDrops(before, f.r.Drops()); d["queue_full"] != 1 || len(d) != 1 {
		t.Errorf("drops = %v", d)
	}
	// Flood with one full port: Handled, counted once.
	before = f.r.Drops()
	if got := f.r.FromClient(A, udp(llA, "ff02::1", 1)); got != Handled {
		t.Errorf("flood: %v", got)
	}
	if d := diffDrops(before, f.r.Drops()); d["queue_full"] != 1 || len(d) != 1 {
		t.Errorf("drops = %v", d)
	}
	if got := len(f.ports[2].take()); got != 1 {
		t.Errorf("C got %d packets", got)
	}
	// A reply to a full port: still Handled.
	f.ports[0].full = true
	before = f.r.Drops()
	if got := f.r.FromClient(A, nd(t, llA, "ff02::2", rs())); got != Handled {
		t.Errorf("RS with a full port: %v", got)
	}
	if d := diffDrops(before, f.r.Drops()); d["queue_full"] != 1 {
		t.Errorf("drops = %v", d)
	}
	if s := B.Stats(); s.TxDropped != 2 || s.TxPackets != 0 {
		t.Errorf("B.Stats() = %+v", s)
	}
	if s := A.Stats(); s.Drops["queue_full"] != 1 || s.TxDropped != 1 {
		t.Errorf("A.Stats() = %+v", s)
	}
}
