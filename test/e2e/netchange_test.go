package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// TestLinkOutage takes the client's only link away long enough for the
// tunnel to die and the reconnect timer to reach its 30 s first wait, then
// gives it back (as a network manager would: link up, default route): the
// tunnel must be up again within a few seconds, not when the timer expires.
func TestLinkOutage(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "iptn-", Clients: 1, ClientArgs: []string{"--reconnect-initial", "30s", "--reconnect-max", "15m"}})
	startLab(t, l)
	ns := l.ClientNS(1)
	gw := fmt.Sprintf("198.51.100.%d", 8*1+1) // the client's Internet router
	if out, err := l.Exec(ns, "ip", "link", "set", "to-inet", "down"); err != nil {
		t.Fatalf("link down: %v\n%s", err, out)
	}
	downAt := time.Now()
	// Traffic into the tunnel: its unacknowledged bytes make the outer TCP
	// connection fail (TCP_USER_TIMEOUT) instead of idling on.
	pinger, cancelPing := context.WithCancel(context.Background())
	defer cancelPing()
	go l.ExecContext(pinger, ns, "ping", "-6", "-i", "0.5", "-w", "90", lab.IntranetHost)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	failed, err := l.WaitStatus(ctx, lab.ClientName(1), func(s status.Interface) bool {
		return s.LastErrorCode != 0 && !s.NextRetry.IsZero() && time.Until(s.NextRetry) > 10*time.Second
	})
	if err != nil {
		t.Fatalf("the client did not notice the dead path and wait to reconnect: %v", err)
	}
	cancelPing()
	t.Logf("tunnel failed %v after the link went down: %s (0x%x), next try in %v",
		time.Since(downAt).Round(time.Second), failed.InterfaceStatus, failed.LastErrorCode, time.Until(failed.NextRetry).Round(time.Second))

	for _, cmd := range [][]string{{"ip", "link", "set", "to-inet", "up"}, {"ip", "route", "replace", "default", "via", gw}} {
		if out, err := l.Exec(ns, cmd...); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	upAt := time.Now()
	s, err := l.WaitClientActive(context.Background(), 1, 20*time.Second)
	if err != nil {
		t.Fatalf("tunnel not back: %v", err)
	}
	back := time.Since(upAt)
	t.Logf("tunnel active again %v after the link returned (the timer had %v left)", back.Round(time.Millisecond), time.Until(failed.NextRetry).Round(time.Second))
	if back > 5*time.Second {
		t.Errorf("the tunnel came back %v after the link: want within a few seconds", back)
	}
	if !lab.IsActive(s) {
		t.Errorf("status %+v", s)
	}
	mustPing(t, l, ns, lab.IntranetHost)
}
