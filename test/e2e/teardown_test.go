package e2e

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// TestTeardown checks that a client removes its tunnel device on SIGTERM
// and that Down leaves nothing behind: no namespace, /etc/netns directory,
// process, control socket or new TUN device in the root namespace.
func TestTeardown(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	rootTUNs, err := lab.Links(ctx, "", "tun")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l := newLab(t, lab.Options{Prefix: "ipt4-", Clients: 2, Dir: dir})
	startLab(t, l)

	s, err := l.Status(ctx, "cli1")
	if err != nil {
		t.Fatal(err)
	}
	dev := s.Device
	if dev == "" {
		dev = lab.ClientDevice
	}
	links, err := lab.Links(ctx, l.ClientNS(1), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(links, dev) {
		t.Fatalf("cli1's namespace has no device %s (devices %v)", dev, links)
	}

	t.Run("ClientSIGTERM", func(t *testing.T) {
		start := time.Now()
		err := l.StopClient(1)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("client after SIGTERM: %v", err)
		}
		if took > 5*time.Second {
			t.Errorf("client took %s to exit after SIGTERM, want < 5s", took)
		}
		t.Logf("client exited with status 0 %s after SIGTERM", took.Round(time.Millisecond))
		links, err := lab.Links(ctx, l.ClientNS(1), "")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(links, dev) {
			t.Errorf("device %s still exists in %s after the client exited", dev, l.ClientNS(1))
		}
	})

	t.Run("Down", func(t *testing.T) {
		st := l.State()
		if err := l.Down(); err != nil {
			t.Fatalf("down: %v", err)
		}
		names, err := lab.ListNetns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range st.Namespaces {
			if slices.Contains(names, ns) || lab.NetnsExists(ns) {
				t.Errorf("namespace %s still exists", ns)
			}
			if _, err := os.Stat("/etc/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("/etc/netns/%s still exists (%v)", ns, err)
			}
		}
		if len(st.Procs) < 4 {
			t.Errorf("state records %d processes, want dnsmasq, server, cli1, cli2: %+v", len(st.Procs), st.Procs)
		}
		for _, p := range st.Procs {
			if p.Alive() {
				t.Errorf("%s (pid %d) is still alive", p.Name, p.PID)
			}
		}
		for _, sock := range st.Sockets {
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("control socket %s still exists (%v)", sock, err)
			}
		}
		after, err := lab.Links(ctx, "", "tun")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range after {
			if !slices.Contains(rootTUNs, d) && strings.HasPrefix(d, "iphttps") {
				t.Errorf("new TUN device %s in the root namespace", d)
			}
		}
	})
}
