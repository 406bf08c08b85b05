package router

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// racePort copies what it gets into a scratch buffer and records Sends made
// after its client was detached.
type racePort struct {
	mu      sync.Mutex
	buf     [2048]byte
	n       int
	gone    atomic.Bool
	lateHit atomic.Int64
}

func (p *racePort) Send(pkt []byte) bool {
	if p.gone.Load() {
		p.lateHit.Add(1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	copy(p.buf[:], pkt)
	p.n++
	return p.n%17 != 0 // refuse now and then
}

func TestConcurrentUse(t *testing.T) {
	for _, mode := range []Mode{ModeNone, ModeCertificates} {
		t.Run(mode.String(), func(t *testing.T) {
			r, err := New(baseConfig(mode))
			if err != nil {
				t.Fatal(err)
			}
			const workers, rounds = 8, 30
			var clients, host sync.WaitGroup
			var late atomic.Int64
			stop := make(chan struct{})

			for w := range workers {
				clients.Go(func() {
					for round := range rounds {
						p := &racePort{}
						c := r.Attach(p)
						ll := fmt.Sprintf("fe80::%x:%x", w+1, round+1)
						g := fmt.Sprintf("2001:db8:1::%x:%x", w+1, round+1)
						peer := fmt.Sprintf("2001:db8:1::%x:%x", (w+1)%workers+1, round+1)
						pkts := [][]byte{
							nd(t, ll, "ff02::2", rs()),
							dadNS(t, g),
							udp(g, outside, 64),
							udp(g, peer, 64),
							udp(ll, "ff02::1", 1),
							udp(ll, fmt.Sprintf("fe80::%x:%x", (w+1)%workers+1, round+1), 64),
							dadNS(t, peer),
							udp(peer, outside, 64),
						}
						for range 20 {
							for _, pkt := range pkts {
								switch r.FromClient(c, append([]byte(nil), pkt...)) {
								case Handled, ToHost, Dropped:
								default:
									t.Error("unknown action")
								}
							}
						}
						r.Detach(c)
						p.gone.Store(true)
						// Packets in flight after Detach are dropped.
						if got := r.FromClient(c, udp(g, outside, 64)); got != Dropped {
							t.Errorf("after Detach: %v", got)
						}
						late.Add(p.lateHit.Load())
					}
				})
			}
			host.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					dst := fmt.Sprintf("2001:db8:1::%x:%x", i%workers+1, i%rounds+1)
					r.FromHost(udp(outside, dst, 64))
					r.FromHost(udp(serverLL, "ff02::1", 1))
					if i%50 == 0 {
						r.AdvertiseAll()
						_ = r.Stats()
						_ = r.Drops()
						for _, c := range r.Clients() {
							_ = c.Addrs()
							_ = c.Stats()
							r.Advertise(c)
						}
						_, _ = r.Owner(netip.MustParseAddr(dst))
					}
				}
			})
			clients.Wait()
			close(stop)
			host.Wait()

			if n := late.Load(); n != 0 {
				t.Errorf("%d Sends after Detach returned", n)
			}
			s := r.Stats()
			if s.Clients != 0 || s.Addresses != 0 {
				t.Errorf("after detaching everyone: %+v", s)
			}
			if s.FromClient != workers*rounds*160 {
				t.Errorf("FromClient = %d, want %d", s.FromClient, workers*rounds*160)
			}
		})
	}
}
