package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// cmdTimeout bounds every helper command (ip, sysctl writes, ...).
const cmdTimeout = 30 * time.Second

// netnsRunDir is where ip(8) keeps the namespace bind mounts.
const netnsRunDir = "/run/netns"

// etcNetnsDir is where ip-netns(8) looks for per-namespace /etc files.
const etcNetnsDir = "/etc/netns"

// run runs a helper command, bounded by cmdTimeout, and returns its stdout.
// A failure carries the command line and its stderr.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// ip runs ip(8) with args.
func ip(ctx context.Context, args ...string) error {
	_, err := run(ctx, "ip", args...)
	return err
}

// AddNetns creates the network namespace name and brings its loopback up.
func AddNetns(ctx context.Context, name string) error {
	if err := ip(ctx, "netns", "add", name); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	if err := ip(ctx, "-n", name, "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("namespace %s: loopback up: %w", name, err)
	}
	return nil
}

// ListNetns returns the names of all named network namespaces.
func ListNetns(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	return parseNetnsList(string(out)), nil
}

// parseNetnsList parses `ip netns list`, whose lines look like
// "name" or "name (id: 3)".
func parseNetnsList(s string) []string {
	var names []string
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// NetnsExists reports whether the named namespace exists.
func NetnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsRunDir, name))
	return err == nil
}

// NetnsPIDs returns the processes whose network namespace is name.
func NetnsPIDs(ctx context.Context, name string) ([]int, error) {
	out, err := run(ctx, "ip", "netns", "pids", name)
	if err != nil {
		return nil, fmt.Errorf("processes in namespace %s: %w", name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// DeleteNetns kills every process in the namespace (SIGTERM, then SIGKILL
// after a grace period) and deletes it. The calling process itself is never
// signalled, even when one of its threads sits in the namespace. A namespace
// that does not exist is not an error.
func DeleteNetns(ctx context.Context, name string) error {
	if !NetnsExists(name) {
		return nil
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pids, err := NetnsPIDs(ctx, name)
		if err != nil {
			return err
		}
		pids = withoutSelf(pids)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
		waitGone(pids, 3*time.Second)
	}
	if err := ip(ctx, "netns", "delete", name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// withoutSelf drops this process and init from pids.
func withoutSelf(pids []int) []int {
	self := os.Getpid()
	out := pids[:0]
	for _, p := range pids {
		if p != self && p > 1 {
			out = append(out, p)
		}
	}
	return out
}

// waitGone waits until none of pids runs any more, or timeout. A zombie
// counts as gone: an orphan's zombie lingers until init reaps it.
func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		alive := false
		for _, p := range pids {
			if running(p) {
				alive = true
				break
			}
		}
		if !alive {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running reports whether process pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := parseStatState(string(b))
	return err == nil && st != 'Z' && st != 'X'
}

// parseStatState extracts the state letter (field 3) of a /proc/PID/stat
// line.
func parseStatState(s string) (byte, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, errors.New("malformed /proc stat line")
	}
	return s[i+2], nil
}

// AddVeth creates a veth pair with end nameA in namespace nsA and end nameB
// in namespace nsB, and brings both up. Nothing is created in the caller's
// namespace, so names only need to be unique within each namespace.
func AddVeth(ctx context.Context, nsA, nameA, nsB, nameB string) error {
	if err := ip(ctx, "-n", nsA, "link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", nsB); err != nil {
		return fmt.Errorf("veth %s/%s - %s/%s: %w", nsA, nameA, nsB, nameB, err)
	}
	for _, e := range [][2]string{{nsA, nameA}, {nsB, nameB}} {
		if err := ip(ctx, "-n", e[0], "link", "set", e[1], "up"); err != nil {
			return fmt.Errorf("veth %s/%s up: %w", e[0], e[1], err)
		}
	}
	return nil
}

// AddAddr adds the address prefix (e.g. "203.0.113.1/24" or
// "2001:db8:c0::1/64") to dev in ns. IPv6 addresses skip duplicate address
// detection so they are usable at once.
func AddAddr(ctx context.Context, ns, dev, prefix string) error {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return fmt.Errorf("address %q: %w", prefix, err)
	}
	args := []string{"-n", ns, "addr", "add", p.String(), "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	if err := ip(ctx, args...); err != nil {
		return fmt.Errorf("namespace %s: add address %s to %s: %w", ns, p, dev, err)
	}
	return nil
}

// AddRoute adds a route to dst ("default" or a prefix) via gateway in ns.
func AddRoute(ctx context.Context, ns, dst, gateway string) error {
	gw, err := netip.ParseAddr(gateway)
	if err != nil {
		return fmt.Errorf("route gateway %q: %w", gateway, err)
	}
	family := "-4"
	if gw.Is6() {
		family = "-6"
	}
	if err := ip(ctx, "-n", ns, family, "route", "add", dst, "via", gw.String()); err != nil {
		return fmt.Errorf("namespace %s: route %s via %s: %w", ns, dst, gw, err)
	}
	return nil
}

// SetSysctl writes a sysctl (dotted key, e.g. "net.ipv4.ip_forward") inside
// namespace ns. Network sysctls under /proc/sys/net are per namespace and
// resolve against the writing thread's namespace.
func SetSysctl(ns, key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	err := Do(ns, func() error {
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("namespace %s: sysctl %s=%s: %w", ns, key, value, err)
	}
	return nil
}

// GetSysctl reads a sysctl inside namespace ns.
func GetSysctl(ns, key string) (string, error) {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	var v []byte
	err := Do(ns, func() error {
		var err error
		v, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("namespace %s: sysctl %s: %w", ns, key, err)
	}
	return strings.TrimSpace(string(v)), nil
}

// Do runs fn on a locked OS thread switched into network namespace ns, then
// switches the thread back. Sockets fn creates stay in ns for their whole
// life, so Do is the way to make in-process listeners and dialers inside the
// lab. Goroutines fn starts do not inherit the namespace; create sockets in
// fn itself. If the thread cannot be switched back it is discarded rather
// than returned to the Go scheduler.
func Do(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: current namespace: %w", ns, err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", ns, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime destroys it when this
		// goroutine ends, so no other goroutine runs in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("leave namespace %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Dialer returns a dial function (for net/http's Transport.DialContext and
// the like) whose sockets are created in namespace ns. addr must be an IP
// literal with a port: host names would be resolved on other goroutines,
// outside the namespace.
func Dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, err := netip.ParseAddrPort(addr); err != nil {
			return nil, fmt.Errorf("dial %s in namespace %s: need an IP literal and port: %w", addr, ns, err)
		}
		var c net.Conn
		err := Do(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dial %s in namespace %s: %w", addr, ns, err)
		}
		return c, nil
	}
}

// Listen creates a listener on addr inside namespace ns.
func Listen(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := Do(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in namespace %s: %w", addr, ns, err)
	}
	return ln, nil
}

// procStart returns the start time of process pid (clock ticks since boot,
// field 22 of /proc/PID/stat). Together with the PID it names a process
// unambiguously, guarding against PID reuse.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatStart(string(b))
}

// parseStatStart extracts the start time from a /proc/PID/stat line. The
// command name (field 2) is in parentheses and may contain spaces, so fields
// are counted from the last ')'.
func parseStatStart(s string) (uint64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat line")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	const idx = 22 - 3
	if len(f) <= idx {
		return 0, errors.New("short /proc stat line")
	}
	v, err := strconv.ParseUint(f[idx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("start time: %w", err)
	}
	return v, nil
}

// sameProcess reports whether pid is still the process that had start time
// start, and has not ended (a zombie has ended).
func sameProcess(pid int, start uint64) bool {
	if pid <= 1 {
		return false
	}
	st, err := procStart(pid)
	return err == nil && st == start && running(pid)
}

// Links lists the names of the network devices in namespace ns (the
// caller's namespace if ns is empty), only those of kind (e.g. "tun",
// "veth") if kind is not empty.
func Links(ctx context.Context, ns, kind string) ([]string, error) {
	var args []string
	if ns != "" {
		args = append(args, "-n", ns)
	}
	args = append(args, "-o", "link", "show")
	if kind != "" {
		args = append(args, "type", kind)
	}
	out, err := run(ctx, "ip", args...)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return parseLinkNames(string(out)), nil
}

// parseLinkNames parses `ip -o link show` lines ("5: name@peer: <...> ...").
func parseLinkNames(s string) []string {
	var names []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if i := strings.IndexByte(name, '@'); i >= 0 {
			name = name[:i]
		}
		names = append(names, name)
	}
	return names
}
