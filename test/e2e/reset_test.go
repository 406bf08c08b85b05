package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/cleanup"
	"github.com/iphttps/iphttps/internal/lab"
)

// TestReset leaves behind what iphttps can leave (a marked device whose
// process is gone, a control socket nobody answers on, a --self-signed
// certificate, a proxy cache) next to what it must not touch (devices named
// like iphttps interfaces without its mark, a running client's device and
// socket), then runs `iphttps reset`: a dry run first, then for real, then
// again; and once more after the client is killed.
func TestReset(t *testing.T) {
	bin := requireLab(t)
	l := newLab(t, lab.Options{Prefix: "ipr-", Clients: 1})
	startLab(t, l)
	ns := l.ClientNS(1)
	must := func(args ...string) {
		t.Helper()
		if out, err := l.Exec(ns, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	// A device iphttps made whose process is gone (a persistent TUN with the
	// mark of a PID that does not exist), and two that are not iphttps's.
	must("ip", "tuntap", "add", "dev", "iphttps9", "mode", "tun")
	must("ip", "link", "set", "dev", "iphttps9", "alias", "iphttps pid 2147483646")
	must("ip", "tuntap", "add", "dev", "iphttps-srv", "mode", "tun")
	must("ip", "link", "add", "corp0", "type", "veth", "peer", "name", "corp0p")

	// A stale socket (its listener gone without removing it), a
	// --self-signed certificate and a proxy cache.
	dir := t.TempDir()
	stale := filepath.Join(dir, "client-old0.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	cert := filepath.Join(dir, "self-signed-da.example.test.pem")
	cache := filepath.Join(dir, "proxy-cache.json")
	for _, f := range []string{cert, cache} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	live := l.SocketFile("cli1")

	reset := func(extra ...string) map[string]cleanup.Finding {
		t.Helper()
		args := append([]string{bin, "reset", "--json", "--socket-dir", dir, "--socket-dir", l.Dir(),
			"--proxy-cache", cache, "--interface", "corp0"}, extra...)
		out, err := l.Exec(ns, args...)
		if err != nil {
			t.Fatalf("iphttps reset %v: %v\n%s", extra, err, out)
		}
		var got struct {
			DryRun   bool              `json:"dry_run"`
			Findings []cleanup.Finding `json:"findings"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("reset output: %v\n%s", err, out)
		}
		m := map[string]cleanup.Finding{}
		for _, f := range got.Findings {
			m[f.Name] = f
			t.Logf("reset %v: %-12s %-14s %s: %s", extra, f.Action, f.Kind, f.Name, f.Reason)
		}
		return m
	}
	expect := func(m map[string]cleanup.Finding, name, action string) {
		t.Helper()
		f, ok := m[name]
		if !ok {
			t.Errorf("no finding for %s", name)
			return
		}
		if f.Action != action {
			t.Errorf("%s: %s (%s), want %s", name, f.Action, f.Reason, action)
		}
	}
	linkExists := func(name string) bool {
		_, err := l.Exec(ns, "ip", "link", "show", "dev", name)
		return err == nil
	}

	m := reset("--dry-run")
	for _, n := range []string{"iphttps9", stale, cert, cache} {
		expect(m, n, cleanup.WouldRemove)
	}
	for _, n := range []string{"iphttps0", "iphttps-srv", "corp0", live, l.SocketFile("server")} {
		expect(m, n, cleanup.Kept)
	}
	if !strings.Contains(m["iphttps-srv"].Reason, "not created by iphttps") || !strings.Contains(m["iphttps-srv"].Reason, "ip link del iphttps-srv") {
		t.Errorf("unmarked device reason: %q", m["iphttps-srv"].Reason)
	}
	if !linkExists("iphttps9") {
		t.Fatal("the dry run removed a device")
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatal("the dry run removed a socket")
	}

	m = reset()
	for _, n := range []string{"iphttps9", stale, cert, cache} {
		expect(m, n, cleanup.Removed)
	}
	if linkExists("iphttps9") {
		t.Error("iphttps9 still exists after reset")
	}
	for _, n := range []string{"iphttps0", "iphttps-srv", "corp0"} {
		if !linkExists(n) {
			t.Errorf("reset removed %s, which it must keep", n)
		}
	}
	for _, f := range []string{stale, cert, cache} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s still exists after reset", f)
		}
	}
	// The running client did not notice.
	if _, err := l.WaitClientActive(t.Context(), 1, 5*time.Second); err != nil {
		t.Fatalf("client after reset: %v", err)
	}
	mustPing(t, l, ns, lab.IntranetHost)

	// Nothing more to do.
	m = reset()
	for n, f := range m {
		if f.Action != cleanup.Kept {
			t.Errorf("second reset: %s %s", f.Action, n)
		}
	}

	// A killed client: the kernel removes its TUN device with it; the
	// socket stays behind until reset.
	if err := l.KillClient(1); err != nil {
		t.Fatal(err)
	}
	if linkExists("iphttps0") {
		t.Error("the killed client's TUN device outlived it")
	}
	m = reset()
	expect(m, live, cleanup.Removed)
	if _, ok := m["iphttps0"]; ok {
		t.Errorf("finding for the vanished device: %+v", m["iphttps0"])
	}
}
