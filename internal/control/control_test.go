package control

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/iphttps/iphttps/internal/status"
)

func TestServeFetch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "client-x.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, func() status.Interface { return status.Interface{Role: "client", LastErrorCode: 0x2af9} })
	}()
	s, err := Fetch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Role != "client" || s.LastErrorCode != 0x2af9 {
		t.Fatalf("got %+v", s)
	}
	if _, err := Listen(path); err == nil {
		t.Fatal("a second daemon could take a live socket")
	}
	socks, _ := Sockets(dir)
	if len(socks) != 1 {
		t.Fatalf("Sockets = %v", socks)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v", fi.Mode().Perm())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("socket left behind")
	}
}

// Polling the daemon leaves no connection open behind.
func TestFetchLeavesNoConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, ln, func() status.Interface { return status.Interface{Role: "server"} })
	fds := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents)
	}
	if _, err := Fetch(ctx, path); err != nil { // warm up
		t.Fatal(err)
	}
	before := fds()
	for i := 0; i < 50; i++ {
		if _, err := Fetch(ctx, path); err != nil {
			t.Fatal(err)
		}
	}
	// Both ends live in this process: 50 kept connections would be 100 fds.
	if after := fds(); after > before+10 {
		t.Fatalf("open descriptors grew from %d to %d over 50 fetches", before, after)
	}
}
