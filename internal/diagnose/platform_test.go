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

func TestTUNHolders(t *testing.T) {
	root := t.TempDir()
	mk := func(pid, ns, exe string, fds map[string][2]string) {
		d := filepath.Join(root, pid)
		for _, sub := range []string{"ns", "fd", "fdinfo"} {
			if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.Symlink(ns, filepath.Join(d, "ns", "net")))
		must(os.Symlink(exe, filepath.Join(d, "exe")))
		for fd, v := range fds {
			must(os.Symlink(v[0], filepath.Join(d, "fd", fd)))
			must(os.WriteFile(filepath.Join(d, "fdinfo", fd), []byte(v[1]), 0o644))
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "self", "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("net:[1]", filepath.Join(root, "self", "ns", "net")); err != nil {
		t.Fatal(err)
	}
	info := func(name string) string { return "pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t105\niff:\t" + name + "\n" }
	mk("10", "net:[1]", "/usr/bin/iphttps", map[string][2]string{"3": {"/dev/null", ""}, "7": {"/dev/net/tun", info("iphttps0")}})
	mk("11", "net:[2]", "/usr/bin/iphttps", map[string][2]string{"7": {"/dev/net/tun", info("iphttps0")}}) // another namespace
	mk("12", "net:[1]", "/usr/sbin/openvpn", map[string][2]string{"5": {"/dev/net/tun", info("tun0")}})
	got, complete := tunHolders(root, "iphttps0")
	if len(got) != 1 || got[0].PID != 10 || !got[0].isIphttps() || !complete {
		t.Fatalf("holders of iphttps0: %+v %v", got, complete)
	}
	if got, _ := tunHolders(root, "tun0"); len(got) != 1 || got[0].isIphttps() {
		t.Fatalf("holders of tun0: %+v", got)
	}
	if got, _ := tunHolders(root, "iphttps1"); len(got) != 0 {
		t.Fatalf("holders of iphttps1: %+v", got)
	}
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
	nobody := func(string) ([]Holder, bool) { return nil, true }
	ctx := context.Background()

	c := checkInterface(ctx, "iphttps1", links, sys, none, nobody)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "existing link", "none")

	c = checkInterface(ctx, "iphttps0", links, sys, none, nobody)
	wantCheck(t, c, Fail, int64(winerr.DupName))
	wantSaw(t, c, "existing link", "TUN device")
	wantSaw(t, c, "owner", "no running iphttps client")

	owned := func(context.Context) []Daemon {
		return []Daemon{
			{Socket: "/run/iphttps/server-iphttps-srv.sock", Status: status.Interface{Role: "server", Device: "iphttps-srv"}},
			{Socket: "/run/iphttps/client-iphttps0.sock", Status: status.Interface{Role: "client", Device: "iphttps0", PID: 42, URL: "https://da.example.test/IPHTTPS"}},
		}
	}
	c = checkInterface(ctx, "iphttps0", links, sys, owned, nobody)
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "owner", "pid 42")

	// No control socket, but an iphttps process holds the device; or
	// another program does.
	c = checkInterface(ctx, "iphttps0", links, sys, none, func(string) ([]Holder, bool) { return []Holder{{PID: 7, Exe: "/usr/bin/iphttps"}}, true })
	wantCheck(t, c, Pass, 0)
	wantSaw(t, c, "owner", "iphttps process 7")
	c = checkInterface(ctx, "iphttps0", links, sys, none, func(string) ([]Holder, bool) { return []Holder{{PID: 8, Exe: "/usr/sbin/openvpn"}}, true })
	wantCheck(t, c, Fail, int64(winerr.DupName))
	wantSaw(t, c, "owner", "openvpn")
	// Without root the holders cannot all be seen: a warning.
	c = checkInterface(ctx, "iphttps0", links, sys, none, func(string) ([]Holder, bool) { return nil, false })
	wantCheck(t, c, Warn, int64(winerr.DupName))

	broken := func() ([]net.Interface, error) { return nil, errors.New("netlink says no") }
	c = checkInterface(ctx, "iphttps0", broken, sys, none, nobody)
	wantCheck(t, c, Warn, int64(winerr.DupName))
}
