package router

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// hotPath is a router with clients A and B on counting ports, each owning
// its addresses.
func hotPath(tb testing.TB, mode Mode) (*Router, *Client, *countPort, *countPort) {
	tb.Helper()
	r, err := New(baseConfig(mode))
	if err != nil {
		tb.Fatal(err)
	}
	pa, pb := &countPort{}, &countPort{}
	A, B := r.Attach(pa), r.Attach(pb)
	for c, src := range map[*Client]string{A: gA, B: gB} {
		if got := r.FromClient(c, udp(src, outside, 64)); got != ToHost {
			tb.Fatalf("learning %s: %v", src, got)
		}
	}
	return r, A, pa, pb
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		r, A, pa, pb := hotPath(t, mode)
		toHost := udp(gA, outside, 64)
		fromHost := udp(outside, gA, 64)
		toB := udp(gA, gB, 255)
		toNobody := udp(outside, unowned, 64) // on the link, owned by no client
		tests := []struct {
			name string
			run  func() Action
			want Action
			drop DropReason // counted once per packet when want is Dropped
		}{
			{"client to host", func() Action { return r.FromClient(A, toHost) }, ToHost, 0},
			{"host to client", func() Action { return r.FromHost(fromHost) }, Handled, 0},
			{"client to client", func() Action {
				toB[7] = 255 // the hop limit is decremented in ModeNone
				return r.FromClient(A, toB)
			}, Handled, 0},
			{"dropped: spoofed", func() Action { return r.FromClient(A, fromHost) }, Dropped, DropSpoofedSource},
			{"dropped: no neighbor", func() Action { return r.FromHost(toNobody) }, Dropped, DropNoNeighbor},
		}
		for _, tt := range tests {
			var got Action
			var runs uint64
			before := r.Drops()
			allocs := testing.AllocsPerRun(1000, func() { got = tt.run(); runs++ })
			if got != tt.want {
				t.Errorf("%v/%s: %v, want %v", mode, tt.name, got, tt.want)
			}
			if allocs != 0 {
				t.Errorf("%v/%s: %v allocations per packet, want 0", mode, tt.name, allocs)
			}
			after := r.Drops()
			for reason, n := range after {
				want := before[reason]
				if tt.want == Dropped && reason == tt.drop.String() {
					want += runs
				}
				if n != want {
					t.Errorf("%v/%s: drop counter %s %d -> %d after %d packets, want %d", mode, tt.name, reason, before[reason], n, runs, want)
				}
			}
		}
		if pa.n == 0 || pb.n == 0 {
			t.Errorf("ports saw %d and %d packets", pa.n, pb.n)
		}
	}
}

func BenchmarkFromClientToHost(b *testing.B) {
	r, A, _, _ := hotPath(b, ModeNone)
	pkt := udp(gA, outside, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if r.FromClient(A, pkt) != ToHost {
			b.Fatal("not ToHost")
		}
	}
}

func BenchmarkFromHostToClient(b *testing.B) {
	r, _, _, _ := hotPath(b, ModeNone)
	pkt := udp(outside, gA, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if r.FromHost(pkt) != Handled {
			b.Fatal("not Handled")
		}
	}
}

func BenchmarkClientToClient(b *testing.B) {
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		b.Run(mode.String(), func(b *testing.B) {
			r, A, _, _ := hotPath(b, mode)
			pkt := udp(gA, gB, 64)
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				pkt[7] = 64
				if r.FromClient(A, pkt) != Handled {
					b.Fatal("not Handled")
				}
			}
		})
	}
}

// BenchmarkFromClientToHostParallel measures many clients at once, each on
// its own goroutine, as the server runs them.
func BenchmarkFromClientToHostParallel(b *testing.B) {
	r, err := New(baseConfig(ModeNone))
	if err != nil {
		b.Fatal(err)
	}
	var ids atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := r.Attach(&countPort{})
		pkt := udp("2001:db8:1::1:0:0", outside, 64)
		binary.BigEndian.PutUint32(pkt[20:24], ids.Add(1)) // a distinct source per client
		if r.FromClient(c, pkt) != ToHost {
			b.Error("learning failed")
			return
		}
		for pb.Next() {
			r.FromClient(c, pkt)
		}
	})
}
