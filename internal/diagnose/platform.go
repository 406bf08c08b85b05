package diagnose

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
)

// The local platform: what Windows calls "Interface creation failure"
// (0x643, 0x34). On Linux the counterpart of the DisabledComponents value is
// the IPv6 sysctls and the ipv6.disable boot parameter; the counterpart of
// the hidden ghost adapter is a leftover TUN device.

// checkIPv6 reads the IPv6 switches under procRoot ("/proc").
func checkIPv6(procRoot string) Check {
	var saw Facts
	base := filepath.Join(procRoot, "sys", "net", "ipv6")
	if _, err := os.Stat(base); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			saw.Add("/proc/sys/net/ipv6", "absent")
			return fail(winerr.InstallFailure, saw,
				"IPv6 is disabled in the kernel (boot parameter ipv6.disable=1): the client cannot create its interface",
				"remove ipv6.disable=1 from the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot")
		}
		saw.Add("/proc/sys/net/ipv6", err)
		return warn(winerr.InstallFailure, saw, "cannot tell whether IPv6 is enabled", "")
	}
	saw.Add("/proc/sys/net/ipv6", "present")
	var off []string
	for _, scope := range []string{"all", "default"} {
		key := "net.ipv6.conf." + scope + ".disable_ipv6"
		b, err := os.ReadFile(filepath.Join(base, "conf", scope, "disable_ipv6"))
		if err != nil {
			saw.Add(key, fmt.Sprintf("unreadable (%v)", err))
			continue
		}
		v := strings.TrimSpace(string(b))
		saw.Add(key, v)
		if v == "1" {
			off = append(off, key)
		}
	}
	if len(off) > 0 {
		sets := make([]string, len(off))
		for i, k := range off {
			sets[i] = k + "=0"
		}
		return fail(winerr.InstallFailure, saw,
			fmt.Sprintf("IPv6 is disabled (%s = 1) in this network namespace: the client cannot create its interface (the Linux form of Windows' DisabledComponents)", strings.Join(off, ", ")),
			fmt.Sprintf("`sysctl -w %s`, and remove the setting from /etc/sysctl.conf and /etc/sysctl.d/ so it stays off", strings.Join(sets, " ")))
	}
	return pass(saw, "")
}

// capNetAdmin is bit 12 of the capability sets (linux/capability.h).
const capNetAdmin = 12

// hasNetAdmin reports whether the process at procRoot/self has
// CAP_NET_ADMIN in its effective set.
func hasNetAdmin(procRoot string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "self", "status"))
	if err != nil {
		return false, fmt.Errorf("read capabilities: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("CapEff %q: %w", strings.TrimSpace(v), err)
			}
			return caps&(1<<capNetAdmin) != 0, nil
		}
	}
	return false, errors.New("no CapEff line in /proc/self/status")
}

// checkTUN opens the TUN clone device and looks for CAP_NET_ADMIN, which
// creating a TUN device needs.
func checkTUN(tunPath, procRoot string) Check {
	var saw Facts
	f, err := os.OpenFile(tunPath, os.O_RDWR, 0)
	switch {
	case err == nil:
		f.Close()
		saw.Add(tunPath, "opens")
	case errors.Is(err, fs.ErrNotExist):
		saw.Add(tunPath, "absent")
		return fail(winerr.InstallFailure, saw,
			"the TUN driver is not available: the client cannot create its interface",
			"load it with `modprobe tun` (and add tun to /etc/modules); in a container, pass the device (--device /dev/net/tun) and CAP_NET_ADMIN; or run the client without TUN with --userspace")
	case errors.Is(err, fs.ErrPermission):
		saw.Add(tunPath, fmt.Sprintf("not openable by this user (%v)", err))
	default:
		saw.Add(tunPath, err)
		return fail(winerr.InstallFailure, saw,
			fmt.Sprintf("the TUN device cannot be opened: %v", err),
			"check the TUN driver (`modprobe tun`) and the device node (`ls -l /dev/net/tun`: a character device 10,200)")
	}
	admin, cerr := hasNetAdmin(procRoot)
	switch {
	case cerr != nil:
		saw.Add("CAP_NET_ADMIN", fmt.Sprintf("unknown (%v)", cerr))
	case admin:
		saw.Add("CAP_NET_ADMIN", "yes")
	default:
		saw.Add("CAP_NET_ADMIN", "no")
	}
	if err != nil || !admin {
		return warn(winerr.InstallFailure, saw,
			"this process cannot create a TUN device: that needs CAP_NET_ADMIN (root)",
			"run the client as root or with CAP_NET_ADMIN (the systemd unit grants it with AmbientCapabilities=CAP_NET_ADMIN), or run it without a TUN device: `iphttps client --userspace`")
	}
	return pass(saw, "")
}

// Daemon is a running iphttps daemon, as its control socket describes it.
type Daemon struct {
	Socket string
	Status status.Interface
}

// Holder is a process that holds a TUN device open.
type Holder struct {
	PID int
	Exe string
}

// isIphttps reports whether the holder runs iphttps.
func (h Holder) isIphttps() bool { return strings.HasPrefix(filepath.Base(h.Exe), "iphttps") }

// tunHolders scans procRoot for the processes of this network namespace
// that hold the TUN device name open (a TUN device that is not persistent
// lives as long as its holder). complete is false when some processes could
// not be looked at (other users' processes, without root).
func tunHolders(procRoot, name string) (holders []Holder, complete bool) {
	self, err := os.Readlink(filepath.Join(procRoot, "self", "ns", "net"))
	if err != nil {
		return nil, false
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, false
	}
	complete = true
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		ns, err := os.Readlink(filepath.Join(dir, "ns", "net"))
		// Root is refused only processes of another security domain
		// (another container), which cannot hold this namespace's devices.
		if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
			complete = false
		}
		if err != nil || ns != self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				complete = false
			}
			continue
		}
		for _, fd := range fds {
			if t, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err != nil || t != "/dev/net/tun" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, "fdinfo", fd.Name()))
			if err == nil && strings.Contains(string(b), "iff:\t"+name+"\n") {
				exe, _ := os.Readlink(filepath.Join(dir, "exe"))
				holders = append(holders, Holder{PID: pid, Exe: strings.TrimSuffix(exe, " (deleted)")})
				break
			}
		}
	}
	return holders, complete
}

// checkInterface looks for a link named name that no running iphttps
// client owns: the client would fail with 0x34. The owner is found by the
// daemons' control sockets, or else by the process that holds the TUN
// device (holders).
func checkInterface(ctx context.Context, name string, links func() ([]net.Interface, error), sysNet string,
	daemons func(context.Context) []Daemon, holders func(name string) ([]Holder, bool)) Check {
	var saw Facts
	saw.Add("interface", name)
	ifs, err := links()
	if err != nil {
		saw.Add("links", err)
		return warn(winerr.DupName, saw, fmt.Sprintf("cannot list the network interfaces: %v", err), "")
	}
	var link *net.Interface
	for i := range ifs {
		if ifs[i].Name == name {
			link = &ifs[i]
			break
		}
	}
	if link == nil {
		saw.Add("existing link", "none")
		return pass(saw, "")
	}
	tun := false
	kind := "not a TUN device"
	if _, err := os.Stat(filepath.Join(sysNet, name, "tun_flags")); err == nil {
		tun, kind = true, "TUN device"
	}
	state := "down"
	if link.Flags&net.FlagUp != 0 {
		state = "up"
	}
	saw.Add("existing link", fmt.Sprintf("%s (index %d, %s, %s, MTU %d)", name, link.Index, kind, state, link.MTU))
	second := fmt.Sprintf("%s belongs to a running iphttps client; a second client needs another --interface (it would fail with 0x34)", name)
	for _, d := range daemons(ctx) {
		if d.Status.Role == "client" && d.Status.Device == name {
			saw.Add("owner", fmt.Sprintf("the running iphttps client (pid %d, %s, %s: %s)", d.Status.PID, d.Socket, d.Status.URL, d.Status.InterfaceStatus))
			return pass(saw, second)
		}
	}
	var hs []Holder
	complete := true
	if tun {
		hs, complete = holders(name)
	}
	for _, h := range hs {
		if h.isIphttps() {
			saw.Add("owner", fmt.Sprintf("iphttps process %d (%s), whose control socket was not found (--control-socket names it)", h.PID, h.Exe))
			return pass(saw, second)
		}
	}
	if len(hs) > 0 {
		saw.Add("owner", fmt.Sprintf("process %d (%s)", hs[0].PID, hs[0].Exe))
		return fail(winerr.DupName, saw,
			fmt.Sprintf("an interface named %s already exists and another program (process %d, %s) holds it", name, hs[0].PID, hs[0].Exe),
			"give the client another name with --interface, or stop that program")
	}
	if !complete {
		saw.Add("owner", "unknown: no iphttps control socket names it, and other users' processes cannot be looked at without root")
		return warn(winerr.DupName, saw,
			fmt.Sprintf("an interface named %s already exists (%s); if no iphttps client runs with it, the client will fail with 0x34", name, kind),
			fmt.Sprintf("run the diagnosis as root to see who holds it; remove a leftover with `ip link del %s` (or `iphttps reset`), or give the client another name with --interface", name))
	}
	saw.Add("owner", "no running iphttps client")
	return fail(winerr.DupName, saw,
		fmt.Sprintf("an interface named %s already exists (%s) and no running iphttps client owns it: a stale device left behind (a persistent TUN device, or one made by a tool), or another program's device", name, kind),
		fmt.Sprintf("remove it with `ip link del %s` (or `iphttps reset`), or give the client another name with --interface", name))
}
