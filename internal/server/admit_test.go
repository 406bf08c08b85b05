package server

import (
	"net/netip"
	"testing"
)

func TestAdmissionPending(t *testing.T) {
	a := newAdmission()
	l := Limits{MaxClients: 10, MaxPending: 3, MaxPendingPerSource: 2}
	x, y := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	for i := 0; i < 2; i++ {
		if why := a.beginPending(x, l); why != "" {
			t.Fatalf("connection %d from x refused: %s", i, why)
		}
	}
	if why := a.beginPending(x, l); why != refusedPendingSource {
		t.Fatalf("third from x: got %q, want %q", why, refusedPendingSource)
	}
	if why := a.beginPending(y, l); why != "" {
		t.Fatalf("first from y refused: %s", why)
	}
	if why := a.beginPending(y, l); why != refusedPending {
		t.Fatalf("fourth in all: got %q, want %q", why, refusedPending)
	}
	a.endPending(x)
	if why := a.beginPending(x, l); why != "" {
		t.Fatalf("after one ended, x refused: %s", why)
	}
	a.endPending(x)
	a.endPending(x)
	a.endPending(y)
	if p, s, src := a.counts(); p != 0 || s != 0 || src != 0 {
		t.Fatalf("after all ended: pending %d sessions %d sources %d, want 0 0 0", p, s, src)
	}
}

func TestAdmissionSessions(t *testing.T) {
	a := newAdmission()
	l := Limits{MaxClients: 3, MaxClientsPerSource: 2, MaxPending: 10}
	x, y := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8:1::3")
	for i := 0; i < 2; i++ {
		if why := a.addSession(x, l); why != "" {
			t.Fatalf("session %d from x refused: %s", i, why)
		}
	}
	if why := a.addSession(x, l); why != refusedSource {
		t.Fatalf("third from x: got %q, want %q", why, refusedSource)
	}
	if why := a.addSession(y, l); why != "" {
		t.Fatalf("y refused: %s", why)
	}
	if why := a.addSession(y, l); why != refusedFull {
		t.Fatalf("fourth: got %q, want %q", why, refusedFull)
	}
	// A reload lifting the per-source limit applies to the next decision.
	a.removeSession(y)
	if why := a.addSession(x, Limits{MaxClients: 3, MaxPending: 10}); why != "" {
		t.Fatalf("no per-source limit: refused %s", why)
	}
	a.removeSession(x)
	a.removeSession(x)
	a.removeSession(x)
	if _, s, src := a.counts(); s != 0 || src != 0 {
		t.Fatalf("sessions %d sources %d, want 0 0", s, src)
	}
}

func TestAdmissionReleaseUntaken(t *testing.T) {
	a := newAdmission()
	x := netip.MustParseAddr("198.51.100.2")
	a.endPending(x)
	a.removeSession(x)
	if p, s, src := a.counts(); p != 0 || s != 0 || src != 0 {
		t.Fatalf("after releasing what was never taken: pending %d sessions %d sources %d", p, s, src)
	}
	l := Limits{MaxClients: 1, MaxPending: 1}
	if why := a.addSession(x, l); why != "" {
		t.Fatal(why)
	}
	if why := a.beginPending(x, l); why != "" {
		t.Fatalf("a session must not count against the pending slots: %s", why)
	}
}

func TestAdmissionIPv6PerSlash64(t *testing.T) {
	a := newAdmission()
	l := Limits{MaxClients: 10, MaxClientsPerSource: 2, MaxPending: 10}
	for _, s := range []string{"2001:db8:5::1", "2001:db8:5::2"} {
		if why := a.addSession(netip.MustParseAddr(s), l); why != "" {
			t.Fatalf("%s refused: %s", s, why)
		}
	}
	if why := a.addSession(netip.MustParseAddr("2001:db8:5::3"), l); why != refusedSource {
		t.Fatalf("a third address of the same /64: %q, want %q", why, refusedSource)
	}
	if why := a.addSession(netip.MustParseAddr("2001:db8:6::1"), l); why != "" {
		t.Fatalf("another /64 refused: %s", why)
	}
	a.removeSession(netip.MustParseAddr("2001:db8:5::2"))
	if why := a.addSession(netip.MustParseAddr("2001:db8:5::9"), l); why != "" {
		t.Fatalf("after one left, the /64 is still full: %s", why)
	}
}
