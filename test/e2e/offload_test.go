package e2e

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// TestOffloadOff runs server and clients with TUN offload disabled: one
// packet per TUN read and write instead of GSO/GRO batches.
func TestOffloadOff(t *testing.T) {
	off := []string{"--offload", "off"}
	l := newLab(t, lab.Options{Prefix: "ipto-", Clients: 2, ServerArgs: off, ClientArgs: off})
	addrs := startLab(t, l)
	for _, name := range []string{"server", lab.ClientName(1), lab.ClientName(2)} {
		s, err := l.Status(context.Background(), name)
		if err != nil || s.Offload {
			t.Fatalf("%s: offload %v (%v), want off", name, s.Offload, err)
		}
	}
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
	mustPing(t, l, l.ClientNS(1), addrs[1].String())
	transfer(t, l.ClientNS(1), l.NS(lab.RoleCorp), netip.MustParseAddr(lab.IntranetHost), 32<<20, 60*time.Second)
	transfer(t, l.ClientNS(2), l.ClientNS(1), addrs[0], 32<<20, 60*time.Second)
}
