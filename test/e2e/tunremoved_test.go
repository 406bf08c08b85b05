package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// TestTUNRemoved deletes each daemon's TUN device under it: the daemon must
// notice, say so, and exit non-zero (for its supervisor to restart it)
// instead of reporting an active interface that carries nothing.
func TestTUNRemoved(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "iptr-", Clients: 1})
	startLab(t, l)
	cases := []struct {
		name, ns, dev string
		stop          func() error
	}{
		{lab.ClientName(1), l.ClientNS(1), lab.ClientDevice, func() error { return l.StopClient(1) }},
		{"server", l.NS(lab.RoleEdge), lab.ServerDevice, l.StopServer},
	}
	for _, c := range cases {
		if out, err := l.Exec(c.ns, "ip", "link", "del", c.dev); err != nil {
			t.Fatalf("ip link del %s: %v\n%s", c.dev, err, out)
		}
		deadline := time.Now().Add(10 * time.Second)
		for l.Running(c.name) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if l.Running(c.name) {
			t.Fatalf("%s still runs 10 s after its TUN device %s was deleted", c.name, c.dev)
		}
		if err := c.stop(); err == nil {
			t.Errorf("%s exited with status 0 after losing its TUN device; want non-zero", c.name)
		}
		log, _ := os.ReadFile(l.LogFile(c.name))
		if !strings.Contains(string(log), "was removed") {
			t.Errorf("%s's log does not say the device was removed:\n%s", c.name, lab.LogTail(l.LogFile(c.name), 10))
		}
	}
}
