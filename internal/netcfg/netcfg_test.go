package netcfg_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iphttps/iphttps/internal/netcfg"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
)

// The tests run netcfg in a namespace of their own, on a TUN device made
// there by ip(8) (persistent, so no process has to hold it), and read the
// result back with ip, not with netcfg.

const dev = "ipnc0"

// newDevice makes a namespace holding the TUN device dev, down, as
// tundev.Create leaves it.
func newDevice(t *testing.T) string {
	t.Helper()
	ns := netnstest.New(t, "ipnc-", "creates a network namespace and a TUN device in it")
	netnstest.IP(t, ns, "tuntap", "add", "mode", "tun", "name", dev)
	return ns
}

// prepared is newDevice with the device prepared (PrepareLink) and up.
func prepared(t *testing.T) string {
	t.Helper()
	ns := newDevice(t)
	netnstest.Do(t, ns, func() error { return netcfg.PrepareLink(dev, 1280) })
	return ns
}

// TestPrepareLink prepares a TUN device (as iphttps does) and a veth device
// whose peer is up: one with a carrier, on which the kernel would make a
// link-local address at once unless told not to.
func TestPrepareLink(t *testing.T) {
	for _, kind := range []string{"tun", "veth"} {
		t.Run(kind, func(t *testing.T) {
			var ns string
			if kind == "tun" {
				ns = newDevice(t)
			} else {
				ns = netnstest.New(t, "ipnc-", "creates a network namespace and a veth pair in it")
				netnstest.IP(t, ns, "link", "add", dev, "type", "veth", "peer", "name", "ipnc0p")
				netnstest.IP(t, ns, "link", "set", "ipnc0p", "up")
			}
			testPrepareLink(t, ns)
		})
	}
}

func testPrepareLink(t *testing.T, ns string) {
	// The kernel's defaults for a new device, made the opposite where they
	// are 0 already, so that each setting is seen to change.
	netnstest.SetSysctl(t, ns, "net.ipv6.conf."+dev+".disable_ipv6", "1")
	for _, k := range []string{"accept_ra", "autoconf", "disable_ipv6"} {
		if v := netnstest.Sysctl(t, ns, "net.ipv6.conf."+dev+"."+k); v != "1" {
			t.Fatalf("before: %s = %s, want 1", k, v)
		}
	}
	if l, _ := netnstest.LinkShow(t, ns, dev); l.Up() || l.MTU == 1280 || l.AddrGenMode == "none" {
		t.Fatalf("before: %+v", l)
	}

	netnstest.Do(t, ns, func() error { return netcfg.PrepareLink(dev, 1280) })

	l, ok := netnstest.LinkShow(t, ns, dev)
	if !ok {
		t.Fatal("the device is gone")
	}
	mark := "iphttps pid " + strconv.Itoa(os.Getpid())
	if !l.Up() || l.MTU != 1280 || l.AddrGenMode != "none" || l.Alias != mark {
		t.Errorf("after PrepareLink: up %v, MTU %d, addrgenmode %q, alias %q; want up, 1280, none, %q",
			l.Up(), l.MTU, l.AddrGenMode, l.Alias, mark)
	}
	for k, want := range map[string]string{"accept_ra": "0", "autoconf": "0", "disable_ipv6": "0"} {
		if v := netnstest.Sysctl(t, ns, "net.ipv6.conf."+dev+"."+k); v != want {
			t.Errorf("after PrepareLink: %s = %s, want %s", k, v, want)
		}
	}
	// iphttps makes its own link-local address; the kernel makes none.
	if len(l.Addrs) != 0 {
		t.Errorf("addresses the kernel made: %+v", l.Addrs)
	}

	netnstest.Do(t, ns, func() error {
		if err := netcfg.PrepareLink("ipnc-none", 1280); err == nil {
			t.Error("PrepareLink of a missing device succeeded")
		}
		return nil
	})
}

func TestMarkedLinksAndDelete(t *testing.T) {
	ns := prepared(t)
	netnstest.IP(t, ns, "tuntap", "add", "mode", "tun", "name", "other0") // not iphttps's
	netnstest.IP(t, ns, "tuntap", "add", "mode", "tun", "name", "other1")
	netnstest.IP(t, ns, "link", "set", "other1", "alias", "iphttps pid x") // a mark without a PID
	netnstest.Do(t, ns, func() error {
		ml, err := netcfg.MarkedLinks()
		if err != nil {
			return err
		}
		if want := []netcfg.MarkedLink{{Name: dev, PID: os.Getpid()}}; !slices.Equal(ml, want) {
			t.Errorf("MarkedLinks = %+v, want %+v", ml, want)
		}
		if ok, alias := netcfg.LinkExists(dev); !ok || alias != "iphttps pid "+strconv.Itoa(os.Getpid()) {
			t.Errorf("LinkExists(%s) = %v, %q", dev, ok, alias)
		}
		if ok, _ := netcfg.LinkExists("ipnc-none"); ok {
			t.Error("LinkExists(ipnc-none) = true")
		}
		if err := netcfg.DeleteLink(dev); err != nil {
			return err
		}
		if err := netcfg.DeleteLink(dev); err == nil {
			t.Error("deleting a missing device succeeded")
		}
		return nil
	})
	if _, ok := netnstest.LinkShow(t, ns, dev); ok {
		t.Error("DeleteLink left the device")
	}
	if _, ok := netnstest.LinkShow(t, ns, "other0"); !ok {
		t.Error("another device went too")
	}
}

func TestSetTxQueueLen(t *testing.T) {
	ns := prepared(t)
	netnstest.Do(t, ns, func() error { return netcfg.SetTxQueueLen(dev, 4321) })
	if l, _ := netnstest.LinkShow(t, ns, dev); l.TxQLen != 4321 {
		t.Errorf("txqlen %d, want 4321", l.TxQLen)
	}
}

// addr finds a in the device's addresses as ip reports them.
func addr(t *testing.T, ns, a string) (netnstest.Addr, bool) {
	t.Helper()
	l, _ := netnstest.LinkShow(t, ns, dev)
	for _, x := range l.Addrs {
		if x.Local == a {
			return x, true
		}
	}
	return netnstest.Addr{}, false
}

// near reports whether a lifetime ip shows, counting down, is want (in
// seconds) or a few seconds less.
func near(got, want uint32) bool { return got <= want && uint64(got)+10 >= uint64(want) }

func hasRoute(rs []netnstest.Route, dst, dev string) bool {
	for _, r := range rs {
		if r.Dst == dst && r.Dev == dev {
			return true
		}
	}
	return false
}

func TestAddAddr(t *testing.T) {
	ns := prepared(t)
	add := func(a string, valid, preferred time.Duration, prefixRoute bool) {
		t.Helper()
		netnstest.Do(t, ns, func() error {
			return netcfg.AddAddr(dev, netip.MustParsePrefix(a), valid, preferred, prefixRoute)
		})
	}
	const hour = time.Hour
	for _, c := range []struct {
		prefix           string
		valid, preferred time.Duration
		prefixRoute      bool
		wantValid        uint32
		wantPreferred    uint32
	}{
		{"2001:db8:1::5/64", hour, 30 * time.Minute, false, 3600, 1800},        // as advertised
		{"2001:db8:2::6/64", 0, 0, true, netnstest.Forever, netnstest.Forever}, // permanent
		{"2001:db8:3::7/64", 600 * time.Second, 0, false, 600, 0},              // deprecated at once
		{"2001:db8:4::8/64", 600 * time.Second, 2 * hour, false, 600, 600},     // preferred no longer than valid
		{"2001:db8:5::9/64", 200 * 365 * 24 * hour, hour, true, netnstest.Forever, 3600},
		{"198.51.100.5/24", 0, 0, true, netnstest.Forever, netnstest.Forever},
	} {
		add(c.prefix, c.valid, c.preferred, c.prefixRoute)
		p := netip.MustParsePrefix(c.prefix)
		a, ok := addr(t, ns, p.Addr().String())
		if !ok {
			t.Errorf("%s: not on the device", c.prefix)
			continue
		}
		if a.PrefixLen != p.Bits() || !near(a.Valid, c.wantValid) || !near(a.Preferred, c.wantPreferred) ||
			a.NoPrefixRoute == c.prefixRoute || (p.Addr().Is6() && !a.NoDAD) || a.Deprecated != (c.wantPreferred == 0) {
			t.Errorf("%s (valid %v, preferred %v, prefix route %v): ip shows %+v; want /%d, valid %d, preferred %d",
				c.prefix, c.valid, c.preferred, c.prefixRoute, a, p.Bits(), c.wantValid, c.wantPreferred)
		}
		family := "-6"
		if p.Addr().Is4() {
			family = "-4"
		}
		if rs := netnstest.Routes(t, ns, family); hasRoute(rs, p.Masked().String(), dev) != c.prefixRoute {
			t.Errorf("%s, prefix route %v: routes %+v", c.prefix, c.prefixRoute, rs)
		}
	}

	// Refreshed: the new lifetimes replace the old.
	add("2001:db8:1::5/64", 100*time.Second, 50*time.Second, false)
	if a, _ := addr(t, ns, "2001:db8:1::5"); !near(a.Valid, 100) || !near(a.Preferred, 50) {
		t.Errorf("refreshed 2001:db8:1::5: %+v, want valid 100, preferred 50", a)
	}

	netnstest.Do(t, ns, func() error {
		for _, a := range []string{"2001:db8:1::5/64", "2001:db8:1::5/64", "198.51.100.5/24"} { // twice: a missing address is no error
			if err := netcfg.DelAddr(dev, netip.MustParsePrefix(a)); err != nil {
				return err
			}
		}
		if err := netcfg.AddAddr("ipnc-none", netip.MustParsePrefix("2001:db8:9::5/64"), 0, 0, false); err == nil {
			t.Error("AddAddr to a missing device succeeded")
		}
		return nil
	})
	for _, a := range []string{"2001:db8:1::5", "198.51.100.5"} {
		if _, ok := addr(t, ns, a); ok {
			t.Errorf("DelAddr left %s", a)
		}
	}
	if _, ok := addr(t, ns, "2001:db8:3::7"); !ok {
		t.Error("DelAddr removed another address")
	}
}

func TestRoutes(t *testing.T) {
	ns := prepared(t)
	netnstest.IP(t, ns, "tuntap", "add", "mode", "tun", "name", "ipnc1")
	netnstest.IP(t, ns, "link", "set", "ipnc1", "up")
	routes := []string{"2001:db8:2::/48", "::/0", "203.0.113.0/24"}
	netnstest.Do(t, ns, func() error {
		for _, r := range routes {
			for range 2 { // replacing is idempotent
				if err := netcfg.ReplaceRoute(dev, netip.MustParsePrefix(r)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	all := append(netnstest.Routes(t, ns, "-6"), netnstest.Routes(t, ns, "-4")...)
	for _, r := range routes {
		dst := r
		if r == "::/0" {
			dst = "default"
		}
		n := 0
		for _, x := range all {
			if x.Dst == dst {
				n++
				if x.Dev != dev || x.Protocol != "static" {
					t.Errorf("route %s: %+v, want dev %s proto static", r, x, dev)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d routes %s, want 1: %+v", n, r, all)
		}
	}

	netnstest.Do(t, ns, func() error {
		for a, want := range map[string]string{"2001:db8:2::1": dev, "2001:db8:ff::1": dev, "203.0.113.9": dev} {
			if got, err := netcfg.RouteTo(netip.MustParseAddr(a)); err != nil || got != want {
				t.Errorf("RouteTo(%s) = %q, %v; want %s", a, got, err, want)
			}
		}
		if got, err := netcfg.RouteTo(netip.MustParseAddr("192.0.2.1")); err == nil {
			t.Errorf("RouteTo(192.0.2.1), no IPv4 default route = %q", got)
		}
		// A replaced route moves to the other device.
		if err := netcfg.ReplaceRoute("ipnc1", netip.MustParsePrefix("2001:db8:2::/48")); err != nil {
			return err
		}
		if got, err := netcfg.RouteTo(netip.MustParseAddr("2001:db8:2::1")); err != nil || got != "ipnc1" {
			t.Errorf("RouteTo(2001:db8:2::1) after the move = %q, %v; want ipnc1", got, err)
		}
		for _, r := range [][2]string{{"ipnc1", "2001:db8:2::/48"}, {dev, "203.0.113.0/24"}, {dev, "203.0.113.0/24"}} { // twice: a missing route is no error
			if err := netcfg.DelRoute(r[0], netip.MustParsePrefix(r[1])); err != nil {
				return err
			}
		}
		if err := netcfg.ReplaceRoute("ipnc-none", netip.MustParsePrefix("2001:db8:2::/48")); err == nil {
			t.Error("ReplaceRoute through a missing device succeeded")
		}
		return nil
	})
	all = append(netnstest.Routes(t, ns, "-6"), netnstest.Routes(t, ns, "-4")...)
	for _, r := range all {
		if r.Dst == "2001:db8:2::/48" || r.Dst == "203.0.113.0/24" {
			t.Errorf("DelRoute left %+v", r)
		}
	}
	if !hasRoute(all, "default", dev) {
		t.Errorf("DelRoute removed the default route too: %+v", all)
	}
}

func TestSysctl(t *testing.T) {
	ns := newDevice(t)
	hostBefore, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding")
	if err != nil {
		t.Fatal(err)
	}
	netnstest.Do(t, ns, func() error {
		if v, err := netcfg.Sysctl("net.ipv6.conf.all.forwarding"); err != nil || v != "0" {
			t.Errorf("Sysctl(forwarding) in a new namespace = %q, %v; want 0", v, err)
		}
		for _, kv := range [][2]string{{"net.ipv6.conf.all.forwarding", "1"}, {"net.ipv6.conf." + dev + ".mtu", "1400"}} {
			if err := netcfg.SetSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
		if err := netcfg.SetSysctl("net.ipv6.conf.ipnc-none.forwarding", "1"); err == nil {
			t.Error("SetSysctl of a missing key succeeded")
		}
		if _, err := netcfg.Sysctl("net.ipv6.conf.ipnc-none.forwarding"); err == nil {
			t.Error("Sysctl of a missing key succeeded")
		}
		return nil
	})
	if v := netnstest.Sysctl(t, ns, "net.ipv6.conf.all.forwarding"); v != "1" {
		t.Errorf("forwarding = %s, want 1", v)
	}
	if v := netnstest.Sysctl(t, ns, "net.ipv6.conf."+dev+".mtu"); v != "1400" {
		t.Errorf("%s mtu = %s, want 1400", dev, v)
	}
	netnstest.Do(t, ns, func() error {
		if v, err := netcfg.Sysctl("net.ipv6.conf.all.forwarding"); err != nil || v != "1" {
			t.Errorf("Sysctl(forwarding) = %q, %v; want 1", v, err)
		}
		return nil
	})
	if hostAfter, _ := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); string(hostAfter) != string(hostBefore) {
		t.Errorf("the host's forwarding changed: %q -> %q", hostBefore, hostAfter)
	}
}

// TestSocketOptions sets the TCP options on a loopback connection and reads
// them back with getsockopt (no root needed).
func TestSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := netcfg.SetTCPUserTimeout(raw, 7500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := netcfg.SetNotSentLowat(raw, 128<<10); err != nil {
		t.Fatal(err)
	}
	for opt, want := range map[int]int{unix.TCP_USER_TIMEOUT: 7500, unix.TCP_NOTSENT_LOWAT: 128 << 10} {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, opt) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if got != want {
			t.Errorf("option %d = %d, want %d", opt, got, want)
		}
	}

	// Not a TCP socket: the option's name is in the error.
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	uraw, err := u.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var errno syscall.Errno
	if err := netcfg.SetTCPUserTimeout(uraw, time.Second); !errors.As(err, &errno) || !strings.Contains(err.Error(), "TCP_USER_TIMEOUT") {
		t.Errorf("TCP_USER_TIMEOUT on UDP: error %v, want the errno, naming the option", err)
	}
}
