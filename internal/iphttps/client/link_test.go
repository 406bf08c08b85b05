package client

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/status"
)

// The liveness watch probes after probeIdle of silence from the server and
// gives the connection up after deadIdle; any packet from the server starts
// the silence again.
func TestLiveness(t *testing.T) {
	t0 := time.Unix(100, 0)
	l := newLiveness(t0, 7)
	type step struct {
		at          time.Duration
		count       uint64
		probe, dead bool
	}
	for i, s := range []step{
		{1 * time.Second, 8, false, false},
		{5 * time.Second, 8, false, false},
		{10 * time.Second, 8, false, false}, // 9 s of silence
		{11 * time.Second, 8, true, false},  // 10 s
		{12 * time.Second, 9, false, false}, // the answer: silence over
		{31 * time.Second, 9, true, false},  // 19 s
		{32 * time.Second, 9, true, true},   // 20 s: dead
	} {
		probe, dead, silent := l.check(t0.Add(s.at), s.count)
		if probe != s.probe || dead != s.dead {
			t.Fatalf("step %d at %v (count %d): probe %v dead %v (silent %v), want probe %v dead %v",
				i, s.at, s.count, probe, dead, silent, s.probe, s.dead)
		}
	}
}

// nullHost is a Host that does nothing.
type nullHost struct{}

func (nullHost) Read([][]byte, []int, int) (int, error)                         { return 0, nil }
func (nullHost) Write(b [][]byte, _ int) (int, error)                           { return len(b), nil }
func (nullHost) BatchSize() int                                                 { return 1 }
func (nullHost) Close() error                                                   { return nil }
func (nullHost) Describe() string                                               { return "null" }
func (nullHost) Offloaded() bool                                                { return false }
func (nullHost) AddAddr(netip.Prefix, time.Duration, time.Duration, bool) error { return nil }
func (nullHost) DelAddr(netip.Prefix) error                                     { return nil }
func (nullHost) ReplaceRoute(netip.Prefix) error                                { return nil }
func (nullHost) DelRoute(netip.Prefix) error                                    { return nil }

// fakeLink is the host side for a session: host, and nothing else.
type fakeLink struct{ host hostside.Host }

func (l fakeLink) Host() hostside.Host          { return l.host }
func (fakeLink) Attach(hostside.Sender)         {}
func (fakeLink) Detach()                        {}
func (fakeLink) Update(func(*status.Interface)) {}
func (fakeLink) Received(int, int)              {}
func (fakeLink) Routes() []netip.Prefix         { return nil }
func (fakeLink) Log() *slog.Logger              { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testSession is a session of a new transport on a host.
func testSession(h hostside.Host) *session {
	l := fakeLink{h}
	return &session{t: New(Options{}), l: l, log: l.Log()}
}

// A reconnecting client whose previous address is still defended (by its
// own previous connection, which the server has not yet seen end) probes
// it again instead of giving it up at once: sockets bound to it survive.
// A conflict on a new address still moves to another at once.
func TestDuplicateDetectionReclaimsPreviousAddress(t *testing.T) {
	s := testSession(nullHost{})
	pfx := netip.MustParsePrefix("2001:db8:1::/64")
	run := func(l *link, conflicts int) (netip.Addr, []netip.Addr) {
		nd := make(chan ndp.Message, 8)
		var probes []netip.Addr
		dad := func(a netip.Addr) {
			probes = append(probes, a)
			if len(probes) <= conflicts {
				nd <- &ndp.NeighborAdvertisement{TargetAddress: a} // the server defends it
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		got, err := l.detectDuplicates(ctx, s, pfx, nd, dad)
		if err != nil {
			t.Fatalf("duplicate address detection: %v (probes %v)", err, probes)
		}
		return got, probes
	}

	var again link
	again.init()
	prev := iphttps.WithIID(pfx.Addr(), again.gIID)
	again.prefix, again.addr = pfx, prev
	got, probes := run(&again, 2)
	if got != prev || len(probes) != 3 || probes[0] != prev || probes[1] != prev || probes[2] != prev {
		t.Errorf("previous address %v defended twice: got %v after probes %v, want it kept after 3 probes of it", prev, got, probes)
	}

	var fresh link
	fresh.init()
	first := iphttps.WithIID(pfx.Addr(), fresh.gIID)
	got, probes = run(&fresh, 1)
	if got == first || len(probes) != 2 || probes[1] != got {
		t.Errorf("new address %v defended once: got %v after probes %v, want another address at once", first, got, probes)
	}
}
