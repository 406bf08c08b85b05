package cleanup

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/testenv"
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

// IphttpsRunning goes by the executable a process runs (/proc/PID/exe),
// not by its argv: a live process whose executable is named iphttps
// counts, also after that file was deleted or replaced (an upgrade); a
// process that only calls itself iphttps, one that has exited, and a PID
// that cannot exist do not.
func TestIphttpsRunning(t *testing.T) {
	if IphttpsRunning(os.Getpid()) {
		t.Error("the test binary counted as iphttps")
	}
	if IphttpsRunning(0) || IphttpsRunning(2147483646) {
		t.Error("a PID that cannot exist counted as running")
	}

	// A stand-in daemon: sleep(1) copied to a file named iphttps.
	sleepPath := testenv.RequireTool(t, "sleep", "coreutils")
	bin := filepath.Join(t.TempDir(), "iphttps")
	data, err := os.ReadFile(sleepPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// argv[0] stays "sleep" (a multi-call binary picks the program by it):
	// what counts is the executable.
	daemon := startChild(t, bin, "sleep", "60")
	if !IphttpsRunning(daemon.Process.Pid) {
		t.Errorf("process %d running %s not counted as a running iphttps", daemon.Process.Pid, bin)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if !IphttpsRunning(daemon.Process.Pid) {
		t.Errorf("process %d running %s, since deleted (an upgrade), not counted as a running iphttps", daemon.Process.Pid, bin)
	}

	// A process that only names itself iphttps.
	impostor := startChild(t, sleepPath, "iphttps", "60")
	if IphttpsRunning(impostor.Process.Pid) {
		t.Errorf("process %d running %s with argv[0] iphttps counted as a running iphttps", impostor.Process.Pid, sleepPath)
	}

	// The daemon gone: its PID no longer counts.
	pid := daemon.Process.Pid
	daemon.Process.Kill()
	daemon.Wait()
	if IphttpsRunning(pid) {
		t.Errorf("process %d counted as a running iphttps after it exited", pid)
	}
}

// startChild starts path with argv args, killed and reaped at the end of
// the test. A file just written may be busy for a moment (another fork
// still holding the descriptor it was written through): that is retried.
func startChild(t *testing.T, path string, args ...string) *exec.Cmd {
	t.Helper()
	for try := 0; ; try++ {
		cmd := &exec.Cmd{Path: path, Args: args}
		err := cmd.Start()
		if err == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			return cmd
		}
		if !errors.Is(err, syscall.ETXTBSY) || try == 50 {
			t.Fatalf("start %s: %v", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
