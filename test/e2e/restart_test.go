package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// TestServerRestart kills the server (SIGKILL) under two running clients,
// starts it again with the same arguments, and checks that the same client
// processes come back up by themselves and reach the intranet again.
func TestServerRestart(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipt2-", Clients: 2,
		ClientArgs: []string{"--reconnect-initial", "1s", "--reconnect-max", "3s"}})
	startLab(t, l)
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
	pids := []int{l.PID("cli1"), l.PID("cli2")}

	if err := l.KillServer(); err != nil {
		t.Fatal(err)
	}
	// Both clients must notice the loss before the server comes back.
	for i := 1; i <= 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := l.WaitStatus(ctx, lab.ClientName(i), func(s status.Interface) bool { return !lab.IsActive(s) })
		cancel()
		if err != nil {
			t.Fatalf("%s still reports an active tunnel 10s after the server was killed: %v", lab.ClientName(i), err)
		}
	}

	restart := time.Now()
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		waitActive(t, l, i)
	}
	t.Logf("both clients active again %s after the server restart", time.Since(restart).Round(time.Millisecond))

	for i := 1; i <= 2; i++ {
		if got := l.PID(lab.ClientName(i)); got != pids[i-1] || !l.Running(lab.ClientName(i)) {
			t.Errorf("%s: pid %d (running %v), want the original pid %d still running", lab.ClientName(i), got, l.Running(lab.ClientName(i)), pids[i-1])
		}
	}
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
	mustPing(t, l, l.ClientNS(2), lab.IntranetHost)
}
