// Package netcfg configures the kernel side of an IP-HTTPS interface through
// netlink and sysctls: link state, addresses with lifetimes, routes.
package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addrGenModeNone stops the kernel from making its own link-local address:
// the IP-HTTPS link engine configures addresses itself.
const addrGenModeNone = 1

// SetSysctl writes value to /proc/sys/<key>, with key in dotted form
// (net.ipv6.conf.all.forwarding).
func SetSysctl(key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Sysctl reads /proc/sys/<key>.
func Sysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// PrepareLink readies a freshly created tunnel device: no kernel router
// discovery or address generation on it (iphttps does that itself), the MTU,
// and the link up.
func PrepareLink(name string, mtu int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkSetAlias(link, markPrefix+strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("%s: mark as iphttps's: %w", name, err)
	}
	if err := netlink.LinkSetIP6AddrGenMode(link, addrGenModeNone); err != nil {
		return fmt.Errorf("%s: disable kernel address generation: %w", name, err)
	}
	for _, kv := range [][2]string{{"accept_ra", "0"}, {"autoconf", "0"}, {"disable_ipv6", "0"}} {
		if err := SetSysctl("net.ipv6.conf."+name+"."+kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("%s: set MTU %d: %w", name, mtu, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set up: %w", name, err)
	}
	return nil
}

// markPrefix starts the alias (ip link show: "alias iphttps pid 1234") that
// PrepareLink gives every device iphttps creates: `iphttps reset` removes
// only devices with this mark whose process is gone.
const markPrefix = "iphttps pid "

// MarkedLink is a network device iphttps created.
type MarkedLink struct {
	Name string
	PID  int // the process that created it
}

// MarkedLinks lists the devices in this network namespace that carry
// iphttps' mark.
func MarkedLinks() ([]MarkedLink, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list network devices: %w", err)
	}
	var out []MarkedLink
	for _, l := range links {
		a := l.Attrs()
		rest, ok := strings.CutPrefix(a.Alias, markPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		out = append(out, MarkedLink{Name: a.Name, PID: pid})
	}
	return out, nil
}

// LinkExists reports whether a device named name exists, and its alias.
func LinkExists(name string) (bool, string) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false, ""
	}
	return true, l.Attrs().Alias
}

// DeleteLink removes the device name.
func DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// infinity is the "forever" lifetime of netlink and of router advertisements.
const infinity = 0xffffffff

func lifetime(d time.Duration) int {
	switch {
	case d <= 0:
		return 0
	case d >= infinity*time.Second:
		return infinity
	}
	return int(d / time.Second)
}

// AddAddr adds (or refreshes) addr on the device without duplicate address
// detection (the link engine already did it on the IP-HTTPS link). With
// prefixRoute the kernel also routes addr's prefix to the device; iphttps
// installs its other routes itself. Zero lifetimes (both) mean forever.
func AddAddr(dev string, addr netip.Prefix, valid, preferred time.Duration, prefixRoute bool) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("find %s: %w", dev, err)
	}
	a := &netlink.Addr{IPNet: ipnet(addr), Flags: unix.IFA_F_NODAD}
	if !prefixRoute {
		a.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	// Both zero: a permanent address. Otherwise the lifetimes as advertised:
	// a preferred lifetime of 0 deprecates the address (RFC 4862 5.5.4).
	if valid > 0 || preferred > 0 {
		a.ValidLft, a.PreferedLft = lifetime(valid), lifetime(min(preferred, valid))
	}
	if err := netlink.AddrReplace(link, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", addr, dev, err)
	}
	return nil
}

// DelAddr removes addr from the device; a missing address is not an error.
func DelAddr(dev string, addr netip.Prefix) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("find %s: %w", dev, err)
	}
	err = netlink.AddrDel(link, &netlink.Addr{IPNet: ipnet(addr)})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove address %s from %s: %w", addr, dev, err)
	}
	return nil
}

// ReplaceRoute routes dst through the device.
func ReplaceRoute(dev string, dst netip.Prefix) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("find %s: %w", dev, err)
	}
	r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipnet(dst), Protocol: unix.RTPROT_STATIC}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s via %s: %w", dst, dev, err)
	}
	return nil
}

// DelRoute removes the route to dst through the device, if present.
func DelRoute(dev string, dst netip.Prefix) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("find %s: %w", dev, err)
	}
	err = netlink.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipnet(dst)})
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("remove route %s via %s: %w", dst, dev, err)
	}
	return nil
}

// RouteTo reports the route the kernel would use to reach dst (its device
// name), to avoid a default route through the tunnel capturing the tunnel's
// own outer connection.
func RouteTo(dst netip.Addr) (string, error) {
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		return "", fmt.Errorf("no route to %s: %w", dst, err)
	}
	l, err := netlink.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}

// SetTCPUserTimeout makes the kernel abort a TCP connection whose sent data
// stays unacknowledged for d (TCP_USER_TIMEOUT, which also bounds keepalive
// probing), so a tunnel over a path that silently died fails in bounded time.
func SetTCPUserTimeout(c syscall.RawConn, d time.Duration) error {
	return setTCPOption(c, unix.TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", int(d/time.Millisecond))
}

// SetNotSentLowat caps the bytes a TCP socket holds that it has not sent yet
// (TCP_NOTSENT_LOWAT): the socket reports itself writable only below it, so a
// tunnel's packets wait in the tunnel's own bounded queue, where they can be
// dropped or batched, instead of in a send buffer that grows to megabytes
// and adds its drain time to every packet's latency.
func SetNotSentLowat(c syscall.RawConn, bytes int) error {
	return setTCPOption(c, unix.TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT", bytes)
}

func setTCPOption(c syscall.RawConn, opt int, name string, value int) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, opt, value)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("%s: %w", name, serr)
	}
	return nil
}

// SetTxQueueLen sets how many packets the kernel queues for a device before
// dropping (ip link set NAME txqueuelen N).
func SetTxQueueLen(name string, n int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkSetTxQLen(link, n); err != nil {
		return fmt.Errorf("%s: set txqueuelen %d: %w", name, n, err)
	}
	return nil
}
