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
