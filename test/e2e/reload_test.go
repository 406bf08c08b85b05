package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// TestClientReload changes the client's configuration file and sends SIGHUP:
// the same process reconnects with the new routes and drops the old ones.
func TestClientReload(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "iptl-", Clients: 1})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(l.Dir(), "client.toml")
	write := func(route string) {
		body := fmt.Sprintf("route = [%q]\nreconnect_initial = \"1s\"\nreconnect_max = \"3s\"\n", route)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("2001:db8:77::/64")
	if err := l.StartClient(1, "--config", conf); err != nil {
		t.Fatal(err)
	}
	waitActive(t, l, 1)
	hasRoute := func(r string) func(status.Interface) bool {
		return func(s status.Interface) bool { return lab.IsActive(s) && slices.Contains(s.Routes, r) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.WaitStatus(ctx, lab.ClientName(1), hasRoute("2001:db8:77::/64")); err != nil {
		t.Fatalf("the configured route is not installed: %v", err)
	}
	pid := l.PID(lab.ClientName(1))

	write("2001:db8:78::/64")
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s, err := l.WaitStatus(ctx, lab.ClientName(1), hasRoute("2001:db8:78::/64"))
	if err != nil {
		t.Fatalf("after SIGHUP the new route never appeared: %v", err)
	}
	if slices.Contains(s.Routes, "2001:db8:77::/64") {
		t.Errorf("the old route stayed: %v", s.Routes)
	}
	out, err := l.Exec(l.ClientNS(1), "ip", "-6", "route", "show", "2001:db8:77::/64")
	if err != nil || len(out) != 0 {
		t.Errorf("the kernel still routes the old prefix: %q %v", out, err)
	}
	if got := l.PID(lab.ClientName(1)); got != pid || !l.Running(lab.ClientName(1)) {
		t.Errorf("the client was restarted (pid %d -> %d) instead of reloading", pid, got)
	}

	// A broken file is refused, and says so in the log; the running
	// configuration stays, and so does the session (no reconnect).
	s, err = l.WaitStatus(ctx, lab.ClientName(1), hasRoute("2001:db8:78::/64"))
	if err != nil {
		t.Fatal(err)
	}
	since := s.Since
	if err := os.WriteFile(conf, []byte("nonsense = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup := time.Now().Truncate(time.Millisecond) // the log's times are to the millisecond
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const refused = `msg="configuration not reloaded; the running one stays"`
	var lines []timedLine
	for deadline := time.Now().Add(5 * time.Second); ; {
		lines, err = logLinesSince(l.LogFile(lab.ClientName(1)), hup, refused)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case len(lines) != 1:
		t.Errorf("the client logged %d refusals of the broken file after SIGHUP, want 1; its log:\n%s", len(lines), lab.LogTail(l.LogFile(lab.ClientName(1)), 10))
	case !strings.Contains(lines[0].line, "nonsense"):
		t.Errorf("the refusal does not name the bad key: %s", lines[0].line)
	default:
		t.Logf("refused: %s", lines[0].line)
	}
	if again, err := logLinesSince(l.LogFile(lab.ClientName(1)), hup, `msg="configuration reloaded`); err != nil || len(again) != 0 {
		t.Errorf("the broken file was applied: %v %v", again, err)
	}
	time.Sleep(time.Second) // a reconnect, had one started, would show by now
	if s, err := l.Status(context.Background(), lab.ClientName(1)); err != nil || !hasRoute("2001:db8:78::/64")(s) || !s.Since.Equal(since) {
		t.Errorf("a bad configuration disturbed the client (up since %v before): %+v %v", since, s, err)
	}
	if got := l.PID(lab.ClientName(1)); got != pid || !l.Running(lab.ClientName(1)) {
		t.Errorf("the client was restarted (pid %d -> %d) by a broken configuration", pid, got)
	}
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
}
