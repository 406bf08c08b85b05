package diagnose

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
)

// fakeProc makes a /proc tree with the IPv6 switches (nil: no
// /proc/sys/net/ipv6) and the capability line of self/status.
func fakeProc(t *testing.T, all, def *string, capEff string) string {
	t.Helper()
	root := t.TempDir()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if all != nil {
		write(filepath.Join(root, "sys/net/ipv6/conf/all/disable_ipv6"), *all+"\n")
		write(filepath.Join(root, "sys/net/ipv6/conf/default/disable_ipv6"), *def+"\n")
	}
	write(filepath.Join(root, "self/status"), "Name:\tiphttps\nCapInh:\t0000000000000000\nCapEff:\t"+capEff+"\n")
	return root
}

func ptr(s string) *string { return &s }

func TestCheckIPv6(t *testing.T) {
	c := checkIPv6(fakeProc(t, ptr("0"), ptr("0"), "0"))
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "net.ipv6.conf.all.disable_ipv6", "0")

	c = checkIPv6(fakeProc(t, ptr("1"), ptr("0"), "0"))
	wantCheck(t, c, Fail, int64(winerr.InstallFailure))
	wantSaw(t, c, "net.ipv6.conf.all.disable_ipv6", "1")

	c = checkIPv6(fakeProc(t, ptr("0"), ptr("1"), "0"))
	wantCheck(t, c, Fail, int64(winerr.InstallFailure))
	if c.Fix != "`sysctl -w net.ipv6.conf.default.disable_ipv6=0`, and remove the setting from /etc/sysctl.conf and /etc/sysctl.d/ so it stays off" {
		t.Errorf("fix: %s", c.Fix)
	}

	c = checkIPv6(fakeProc(t, nil, nil, "0"))
	wantCheck(t, c, Fail, int64(winerr.InstallFailure))
	wantSaw(t, c, "/proc/sys/net/ipv6", "absent")
}

func TestCheckTUN(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "tun")
	if err := os.WriteFile(dev, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	c := checkTUN(dev, fakeProc(t, nil, nil, "000001ffffffffff"))
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "CAP_NET_ADMIN", "yes")

	c = checkTUN(dev, fakeProc(t, nil, nil, "0000000000000000"))
	wantCheck(t, c, Warn, int64(winerr.InstallFailure))
	wantSaw(t, c, "CAP_NET_ADMIN", "no")

	c = checkTUN(filepath.Join(t.TempDir(), "missing"), fakeProc(t, nil, nil, "000001ffffffffff"))
	wantCheck(t, c, Fail, int64(winerr.InstallFailure))
}

func TestCheckInterface(t *testing.T) {
	sys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "iphttps0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "iphttps0", "tun_flags"), []byte("0x1001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := func() ([]net.Interface, error) {
		return []net.Interface{{Index: 1, Name: "lo", MTU: 65536}, {Index: 7, Name: "iphttps0", MTU: 1280, Flags: net.FlagUp}}, nil
	}
	none := func(context.Context) []Daemon { return nil }
	ctx := context.Background()

	c := checkInterface(ctx, "iphttps1", links, sys, none)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "existing link", "none")

	c = checkInterface(ctx, "iphttps0", links, sys, none)
	wantCheck(t, c, Fail, int64(winerr.DupName))
	wantSaw(t, c, "existing link", "TUN device")
	wantSaw(t, c, "owner", "no running iphttps client")

	owned := func(context.Context) []Daemon {
		return []Daemon{
			{Socket: "/run/iphttps/server-iphttps-srv.sock", Status: status.Interface{Role: "server", Device: "iphttps-srv"}},
			{Socket: "/run/iphttps/client-iphttps0.sock", Status: status.Interface{Role: "client", Device: "iphttps0", PID: 42, URL: "https://da.example.test/IPHTTPS"}},
		}
	}
	c = checkInterface(ctx, "iphttps0", links, sys, owned)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "owner", "pid 42")

	broken := func() ([]net.Interface, error) { return nil, errors.New("netlink says no") }
	c = checkInterface(ctx, "iphttps0", broken, sys, none)
	wantCheck(t, c, Warn, int64(winerr.DupName))
}
