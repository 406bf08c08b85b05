// Package netnstest gives a test a network namespace of its own, runs code
// inside it, and reads what is there back through ip(8), independently of
// the code under test. Creating a namespace needs root and ip: without them
// a test skips, or under CI fails (package testenv).
package netnstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/testenv"
)

var seq atomic.Int64

// New creates a network namespace for t, its loopback up, named prefix,
// this process's PID and a sequence number (prefix "ipnc-": "ipnc-4242-1"),
// and deletes it, with any process left in it, when t ends. why says what
// the test does that needs root.
func New(t testing.TB, prefix, why string) string {
	t.Helper()
	testenv.RequireRoot(t, why)
	testenv.RequireTool(t, "ip", "iproute2")
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lab.AddNetns(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := lab.DeleteNetns(ctx, name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// Do runs fn on an OS thread switched into namespace ns (lab.Do): sockets,
// devices and netlink requests fn makes belong to ns. An error from fn, or
// from switching, fails t.
func Do(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := lab.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// Run runs a command (ip, or another program under `ip netns exec`) and
// returns its standard output; a failure fails t.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// IP runs `ip -n ns args...`.
func IP(t testing.TB, ns string, args ...string) []byte {
	t.Helper()
	return Run(t, "ip", append([]string{"-n", ns}, args...)...)
}

// Sysctl reads a sysctl (dotted key) in ns through `ip netns exec ns cat`.
func Sysctl(t testing.TB, ns, key string) string {
	t.Helper()
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return strings.TrimSpace(string(Run(t, "ip", "netns", "exec", ns, "cat", p)))
}

// SetSysctl writes a sysctl (dotted key) in ns (lab.SetSysctl).
func SetSysctl(t testing.TB, ns, key, value string) {
	t.Helper()
	if err := lab.SetSysctl(ns, key, value); err != nil {
		t.Fatal(err)
	}
}

// Link is a device as `ip -d -j link show` and `ip -j addr show` describe it.
type Link struct {
	Name        string   `json:"ifname"`
	Flags       []string `json:"flags"`
	MTU         int      `json:"mtu"`
	TxQLen      int      `json:"txqlen"`
	Alias       string   `json:"ifalias"`
	AddrGenMode string   `json:"inet6_addr_gen_mode"`
	Info        struct {
		Kind string `json:"info_kind"`
		Data struct {
			Type    string `json:"type"`
			PI      bool   `json:"pi"`
			VnetHdr bool   `json:"vnet_hdr"`
			Persist bool   `json:"persist"`
		} `json:"info_data"`
	} `json:"linkinfo"`
	Addrs []Addr `json:"addr_info"`
}

// Up reports whether the device is administratively up.
func (l Link) Up() bool {
	for _, f := range l.Flags {
		if f == "UP" {
			return true
		}
	}
	return false
}

// Addr is an address of `ip -j addr show`.
type Addr struct {
	Family        string `json:"family"`
	Local         string `json:"local"`
	PrefixLen     int    `json:"prefixlen"`
	NoDAD         bool   `json:"nodad"`
	NoPrefixRoute bool   `json:"noprefixroute"`
	Deprecated    bool   `json:"deprecated"`
	Valid         uint32 `json:"valid_life_time"`
	Preferred     uint32 `json:"preferred_life_time"`
}

// Forever is the lifetime ip reports for an address that does not expire.
const Forever = 0xffffffff

// LinkShow describes the device dev in ns, with its addresses; ok is false
// when ns has no such device.
func LinkShow(t testing.TB, ns, dev string) (l Link, ok bool) {
	t.Helper()
	if _, err := run("ip", "-n", ns, "link", "show", "dev", dev); err != nil {
		return Link{}, false
	}
	var links, addrs []Link
	decode(t, IP(t, ns, "-d", "-j", "link", "show", "dev", dev), &links)
	decode(t, IP(t, ns, "-j", "addr", "show", "dev", dev), &addrs)
	if len(links) != 1 || len(addrs) != 1 {
		t.Fatalf("ip describes %d and %d devices %s in %s", len(links), len(addrs), dev, ns)
	}
	links[0].Addrs = addrs[0].Addrs
	return links[0], true
}

// Route is a route of `ip -j route show`.
type Route struct {
	Dst      string `json:"dst"`
	Dev      string `json:"dev"`
	Protocol string `json:"protocol"`
}

// Routes lists the routes of ns's main table for family ("-4" or "-6").
func Routes(t testing.TB, ns, family string) []Route {
	t.Helper()
	var rs []Route
	decode(t, IP(t, ns, family, "-j", "route", "show"), &rs)
	return rs
}

func decode(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("ip's JSON: %v\n%s", err, b)
	}
}
