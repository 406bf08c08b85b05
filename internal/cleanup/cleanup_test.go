package cleanup

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Sockets, certificates and the cache, without root: a stale socket and the
// certificate of a server that is gone are removed; a live socket, and the
// certificate next to a running server's socket, are kept; a dry run
// removes nothing.
func TestRunFiles(t *testing.T) {
	gone, running := t.TempDir(), t.TempDir()
	stale := filepath.Join(gone, "client-x.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	live, err := net.Listen("unix", filepath.Join(running, "server-srv.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	certGone := filepath.Join(gone, "self-signed-a.pem")
	certKept := filepath.Join(running, "self-signed-b.pem")
	other := filepath.Join(gone, "notes.txt") // not iphttps': never looked at
	cache := filepath.Join(gone, "cache.json")
	for _, f := range []string{certGone, certKept, other, cache} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{DryRun: true, SocketDirs: []string{gone, running, filepath.Join(gone, "missing")}, ProxyCache: cache, Alive: func(int) bool { return false }}
	want := map[string]string{stale: WouldRemove, certGone: WouldRemove, cache: WouldRemove,
		filepath.Join(running, "server-srv.sock"): Kept, certKept: Kept}
	check := func(found []Finding) {
		t.Helper()
		got := map[string]string{}
		for _, f := range found {
			got[f.Name] = f.Action
		}
		for name, action := range want {
			if got[name] != action {
				t.Errorf("%s: %q, want %q", name, got[name], action)
			}
		}
		if _, ok := got[other]; ok {
			t.Errorf("a file that is not iphttps' was looked at")
		}
	}
	found, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	check(found)
	if _, err := os.Stat(stale); err != nil {
		t.Fatal("dry run removed the socket")
	}
	o.DryRun = false
	for n, a := range want {
		if a == WouldRemove {
			want[n] = Removed
		}
	}
	if found, err = Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	check(found)
	for _, f := range []string{stale, certGone, cache} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s not removed", f)
		}
	}
	for _, f := range []string{certKept, other} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s removed", f)
		}
	}
}

func TestIphttpsRunning(t *testing.T) {
	if IphttpsRunning(os.Getpid()) {
		t.Error("the test binary counted as iphttps")
	}
	if IphttpsRunning(0) || IphttpsRunning(2147483646) {
		t.Error("a PID that cannot exist counted as running")
	}
}
