package client

import (
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/netcfg"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Host is this machine's end of the tunnel: where the packets from the other
// side go, where the packets for the tunnel come from, and where the
// transport puts the addresses and routes it configures. The kernel TUN
// device is one (the default); an in-process IPv6 stack is the other
// (--userspace, package userspace).
type Host interface {
	// Read, Write and BatchSize move packets as wireguard-go's tun.Device
	// does; Read returns os.ErrClosed once the host is closed.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	Write(bufs [][]byte, offset int) (int, error)
	BatchSize() int
	Close() error

	// Describe names the host for logs and status ("iphttps0", "userspace").
	Describe() string
	// Offloaded reports whether segmentation offload (GSO/GRO) is in use.
	Offloaded() bool

	// AddAddr adds or refreshes an address (lifetimes zero: forever).
	AddAddr(addr netip.Prefix, valid, preferred time.Duration, linkLocal bool) error
	DelAddr(addr netip.Prefix) error
	// ReplaceRoute routes dst into the tunnel; DelRoute stops doing so.
	ReplaceRoute(dst netip.Prefix) error
	DelRoute(dst netip.Prefix) error
}

// OpenHost makes the host for a client; the client calls it once, retrying
// with its reconnect timer while it fails.
type OpenHost func() (Host, error)

// kernelHost is a TUN device whose addresses and routes live in the kernel.
type kernelHost struct {
	*tundev.Device
}

// KernelHost returns an OpenHost that creates the TUN device name (MTU 1280)
// and readies it for a transport.
func KernelHost(name string, off tundev.Offload) OpenHost {
	return func() (Host, error) {
		dev, err := tundev.Create(name, LinkMTU, off)
		if err != nil {
			return nil, err
		}
		if err := netcfg.PrepareLink(name, LinkMTU); err != nil {
			dev.Close()
			return nil, winerr.New(winerr.InstallFailure, err)
		}
		return kernelHost{dev}, nil
	}
}

func (k kernelHost) Describe() string { return k.Ifname }

func (k kernelHost) AddAddr(addr netip.Prefix, valid, preferred time.Duration, linkLocal bool) error {
	return netcfg.AddAddr(k.Ifname, addr, valid, preferred, linkLocal)
}

func (k kernelHost) DelAddr(addr netip.Prefix) error { return netcfg.DelAddr(k.Ifname, addr) }

func (k kernelHost) ReplaceRoute(dst netip.Prefix) error { return netcfg.ReplaceRoute(k.Ifname, dst) }

func (k kernelHost) DelRoute(dst netip.Prefix) error { return netcfg.DelRoute(k.Ifname, dst) }
