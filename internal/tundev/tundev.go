// Package tundev creates the TUN device an IP-HTTPS endpoint uses and moves
// packets through it in batches. It wraps wireguard-go's tun package, which
// brings GSO/GRO offload (virtio-net headers) where the kernel offers it.
package tundev

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/iphttps/iphttps/internal/winerr"
)

// Offset is the head room left in front of every packet buffer: the
// virtio-net header the offload path writes there needs 10 bytes.
const Offset = 16

// Offload selects whether TUN offload (TSO/GRO through virtio-net headers) is used.
type Offload int

const (
	OffloadAuto Offload = iota // use it when the kernel offers it
	OffloadOn                  // require it; fail otherwise
	OffloadOff                 // never use it (one packet per read and write)
)

// ParseOffload parses "auto", "on" or "off".
func ParseOffload(s string) (Offload, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return OffloadAuto, nil
	case "on", "true", "yes":
		return OffloadOn, nil
	case "off", "false", "no":
		return OffloadOff, nil
	}
	return 0, fmt.Errorf("offload %q: want auto, on or off", s)
}

func (o Offload) String() string {
	return [...]string{"auto", "on", "off"}[o]
}

// Device is an open TUN device.
type Device struct {
	tun.Device
	Ifname string
}

// Offloaded reports whether the device reads and writes batches.
func (d *Device) Offloaded() bool { return d.BatchSize() > 1 }

// Create makes the TUN device name with the given MTU. Failures carry the code
// Windows reports for an interface that cannot be created: 0x34 when an
// interface of that name already exists, 0x643 when IPv6 or the TUN driver is
// unavailable; the message names the Linux setting to change.
func Create(name string, mtu int, off Offload) (*Device, error) {
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return nil, winerr.Errorf(winerr.InstallFailure, "interface name %q must be 1-%d characters", name, unix.IFNAMSIZ-1)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		return nil, winerr.Errorf(winerr.DupName,
			"an interface named %s already exists (a stale iphttps interface or another program's); remove it with `ip link del %s` or `iphttps reset`, or choose another name with --interface", name, name)
	}
	if err := IPv6Usable(); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return nil, winerr.Errorf(winerr.InstallFailure,
			"the TUN driver is unavailable (/dev/net/tun: %v); load it with `modprobe tun`, or give a container the device (--device /dev/net/tun) and CAP_NET_ADMIN", err)
	}
	var (
		dev tun.Device
		err error
	)
	switch off {
	case OffloadOff:
		dev, err = createPlain(name, mtu)
	default:
		dev, err = tun.CreateTUN(name, mtu)
	}
	if err != nil {
		return nil, winerr.Errorf(winerr.InstallFailure, "create TUN device %s: %v (is CAP_NET_ADMIN missing?)", name, err)
	}
	// Link events are not used; drain them so the device's netlink
	// listeners never block (they would outlive the device).
	go func() {
		for range dev.Events() {
		}
	}()
	if off == OffloadOn && dev.BatchSize() <= 1 {
		dev.Close()
		return nil, winerr.Errorf(winerr.InstallFailure, "TUN offload was required (--offload on) but the kernel does not offer it on %s; use --offload auto", name)
	}
	return &Device{Device: dev, Ifname: name}, nil
}

// createPlain opens a TUN device without virtio-net headers, so the wireguard
// tun package runs it one packet at a time.
func createPlain(name string, mtu int) (tun.Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	dev, err := tun.CreateTUNFromFile(f, mtu)
	if err != nil {
		f.Close() // closing the last descriptor removes the device
		return nil, err
	}
	return dev, nil
}

// IPv6Usable checks that IPv6 is enabled in this network namespace. It returns
// a 0x643 error naming the setting otherwise (the Linux counterpart of the
// Windows DisabledComponents value).
func IPv6Usable() error {
	if _, err := os.Stat("/proc/sys/net/ipv6"); errors.Is(err, os.ErrNotExist) {
		return winerr.Errorf(winerr.InstallFailure, "IPv6 is disabled in the kernel (boot parameter ipv6.disable=1); remove it from the kernel command line and reboot")
	}
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return winerr.Errorf(winerr.InstallFailure, "IPv6 is disabled (net.ipv6.conf.all.disable_ipv6=1); enable it with `sysctl -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0`")
	}
	b, err = os.ReadFile("/proc/sys/net/ipv6/conf/default/disable_ipv6")
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return winerr.Errorf(winerr.InstallFailure, "IPv6 is disabled for new interfaces (net.ipv6.conf.default.disable_ipv6=1); enable it with `sysctl -w net.ipv6.conf.default.disable_ipv6=0`")
	}
	return nil
}
