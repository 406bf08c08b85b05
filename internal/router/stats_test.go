package router

import "testing"

func TestStats(t *testing.T) {
	f := newFixture(t, baseConfig(ModeNone)) // 5 packets learned addresses, all ToHost
	A, B := f.cs[0], f.cs[1]
	f.r.FromClient(A, udp(gA, gB, 64))        // delivered to B
	f.r.FromClient(A, udp(gB, outside, 64))   // spoofed
	f.r.FromClient(A, udp(llA, "ff02::1", 1)) // multicast
	f.r.FromHost(udp(outside, gA, 64))        // delivered to A
	f.r.FromHost(udp(outside, unowned, 64))   // no neighbor
	f.r.RecordDrop(A, DropNotIPv6)
	f.r.RecordDrop(nil, DropNotIPv6)
	f.r.RecordDrop(A, numDropReasons) // ignored

	s := f.r.Stats()
	udpLen := len(udp(gA, gB, 64)) // every packet from a client here is such a UDP packet
	want := Stats{
		Clients: 3, Addresses: 5,
		FromClient: 8, FromClientBytes: 8 * uint64(udpLen), FromHost: 2, ToHost: 5, Delivered: 2,
		Learned: 5, Dropped: 5,
	}
	if s != want {
		t.Errorf("Stats() = %+v\nwant      %+v", s, want)
	}
	d := f.r.Drops()
	if d["spoofed_source"] != 1 || d["multicast"] != 1 || d["no_neighbor"] != 1 || d["not_ipv6"] != 2 || len(d) != int(numDropReasons) {
		t.Errorf("Drops() = %v", d)
	}

	as := A.Stats()
	if as.Addrs != 2 || as.RxPackets != 5 || as.ToHost != 2 || as.Dropped != 3 || as.TxPackets != 1 ||
		as.Drops["spoofed_source"] != 1 || as.Drops["multicast"] != 1 || as.Drops["not_ipv6"] != 1 || len(as.Drops) != 3 {
		t.Errorf("A.Stats() = %+v", as)
	}
	if as.RxBytes != 5*56 {
		t.Errorf("A.RxBytes = %d, want %d", as.RxBytes, 5*56)
	}
	bs := B.Stats()
	if bs.TxPackets != 1 || bs.TxBytes != 56 || bs.Dropped != 0 {
		t.Errorf("B.Stats() = %+v", bs)
	}

	// Counters survive Detach.
	f.r.Detach(A)
	s2 := f.r.Stats()
	if s2.FromClient != s.FromClient || s2.Delivered != s.Delivered || s2.ToHost != s.ToHost || s2.Clients != 2 || s2.Addresses != 3 {
		t.Errorf("after Detach, Stats() = %+v", s2)
	}
}
