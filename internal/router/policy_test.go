package router

import (
	"testing"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/packet"
)

// pioOnLink returns the L flag of the Prefix Information of the router's RA
// to all nodes.
func pioOnLink(t *testing.T, r *Router) bool {
	t.Helper()
	ra := r.raTo(packet.AllNodes())
	m, err := ndp.ParseMessage(ra[40:])
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range m.(*ndp.RouterAdvertisement).Options {
		if p, ok := o.(*ndp.PrefixInformation); ok {
			return p.OnLink
		}
	}
	t.Fatal("no Prefix Information in the RA")
	return false
}

func TestSetPolicy(t *testing.T) {
	f := newFixture(t, baseConfig(ModeNone))
	if pioOnLink(t, f.r) {
		t.Fatal("mode none: L=1")
	}
	// Client to client is allowed until isolation is switched on.
	if got := f.r.FromClient(f.cs[0], udp(gA, gB, 64)); got != Handled {
		t.Fatalf("A to B before isolation: %v, want handled", got)
	}
	if err := f.r.SetPolicy(ModeNone, true); err != nil {
		t.Fatal(err)
	}
	if got := f.r.FromClient(f.cs[0], udp(gA, gB, 64)); got != Dropped {
		t.Fatalf("A to B with isolation: %v, want dropped", got)
	}
	if err := f.r.SetPolicy(ModeCertificates, false); err != nil {
		t.Fatal(err)
	}
	if !pioOnLink(t, f.r) {
		t.Fatal("after the change to certificates: the RA still says L=0")
	}
	if c := f.r.Config(); c.Mode != ModeCertificates || c.IsolateClients {
		t.Fatalf("Config after SetPolicy: mode %v isolate %v", c.Mode, c.IsolateClients)
	}
	if err := f.r.SetPolicy(Mode(9), false); err == nil {
		t.Fatal("an unknown mode was accepted")
	}
}
