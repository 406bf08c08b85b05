// Package userspace runs the client's end of the IP-HTTPS link inside the
// process, so that no root, TUN device or route is needed: an IPv6 stack
// (gVisor, through wireguard-go's tun/netstack) takes the address the server
// advertises, and local SOCKS5 and HTTP proxy listeners let unmodified
// applications open connections through it.
package userspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// Stack is the in-process host end of the link. It implements the client's
// Host interface: packets for the tunnel come out of Read, packets from the
// server go in through Write, and the link engine gives it addresses and
// routes. The gVisor stack is made when the global address is known (the
// address is fixed when such a stack is made) and made again if the server's
// prefix changes.
type Stack struct {
	mtu int
	dns []netip.Addr
	log *slog.Logger

	cur atomic.Pointer[instance] // nil until the link has a global address; read per packet

	mu      sync.Mutex     // serialises changes of cur; guards the fields below
	changed chan struct{}  // closed (and replaced) whenever cur changes or the stack closes
	routes  []netip.Prefix // destinations that go through the tunnel
	closed  bool

	// DroppedNoAddress counts packets from the server that arrived while no
	// address was configured (nothing could receive them).
	DroppedNoAddress atomic.Uint64
}

// instance is one gVisor stack with its address.
type instance struct {
	dev  tun.Device
	net  *netstack.Net
	addr netip.Addr
}

// New prepares a stack for a link of the given MTU. dns lists name servers
// reached through the tunnel (may be empty: names are then resolved by the
// system resolver).
func New(mtu int, dns []netip.Addr, log *slog.Logger) *Stack {
	return &Stack{mtu: mtu, dns: dns, log: log, changed: make(chan struct{})}
}

// Describe names the host in logs and status.
func (s *Stack) Describe() string { return "userspace" }

// Offloaded is false: the in-process stack moves one packet at a time.
func (s *Stack) Offloaded() bool { return false }

// BatchSize is 1, as for wireguard-go's netstack device.
func (s *Stack) BatchSize() int { return 1 }

func (s *Stack) setLocked(in *instance) {
	old := s.cur.Swap(in)
	close(s.changed)
	s.changed = make(chan struct{})
	if old != nil {
		old.dev.Close()
	}
}

// Read returns the next packet the stack sends into the tunnel, waiting for
// a stack to exist; os.ErrClosed once Close was called.
func (s *Stack) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		s.mu.Lock()
		closed, changed := s.closed, s.changed
		s.mu.Unlock()
		cur := s.cur.Load()
		if closed {
			return 0, os.ErrClosed
		}
		if cur == nil {
			<-changed
			continue
		}
		n, err := cur.dev.Read(bufs, sizes, offset)
		if errors.Is(err, os.ErrClosed) {
			continue // replaced or closed: look again
		}
		return n, err
	}
}

// Write hands packets from the server to the stack.
func (s *Stack) Write(bufs [][]byte, offset int) (int, error) {
	cur := s.cur.Load()
	if cur == nil {
		s.DroppedNoAddress.Add(uint64(len(bufs)))
		return len(bufs), nil
	}
	return cur.dev.Write(bufs, offset)
}

// Close ends the stack and every connection through it.
func (s *Stack) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.setLocked(nil)
	return nil
}

// AddAddr takes the link's global address; the link-local address needs no
// stack of its own (the client's link engine answers neighbor discovery).
func (s *Stack) AddAddr(addr netip.Prefix, _, _ time.Duration, linkLocal bool) error {
	if linkLocal || addr.Addr().IsLinkLocalUnicast() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return os.ErrClosed
	}
	if cur := s.cur.Load(); cur != nil && cur.addr == addr.Addr() {
		return nil // a refresh
	}
	dev, tnet, err := netstack.CreateNetTUN([]netip.Addr{addr.Addr()}, s.dns, s.mtu)
	if err != nil {
		return fmt.Errorf("in-process IPv6 stack for %s: %w", addr.Addr(), err)
	}
	// Link events mean nothing here; drain them.
	go func() {
		for range dev.Events() {
		}
	}()
	s.setLocked(&instance{dev: dev, net: tnet, addr: addr.Addr()})
	s.log.Info("in-process IPv6 stack ready", "address", addr.Addr())
	return nil
}

// DelAddr drops the stack holding addr, ending its connections.
func (s *Stack) DelAddr(addr netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.cur.Load(); cur != nil && cur.addr == addr.Addr() {
		s.setLocked(nil)
	}
	return nil
}

// ReplaceRoute sends connections to dst through the tunnel.
func (s *Stack) ReplaceRoute(dst netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.routes, dst) {
		s.routes = append(s.routes, dst)
	}
	return nil
}

// DelRoute stops sending connections to dst through the tunnel.
func (s *Stack) DelRoute(dst netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = slices.DeleteFunc(s.routes, func(p netip.Prefix) bool { return p == dst })
	return nil
}

// ErrNoTunnel is returned for a tunnel destination while the link has no
// address (the tunnel is down or still coming up).
var ErrNoTunnel = errors.New("the IP-HTTPS tunnel is not up (no address yet)")

// routed returns the stack to use for a destination, or nil when the
// destination is not inside the tunnel's routes.
func (s *Stack) routed(ip netip.Addr) (*instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.routes {
		if p.Contains(ip) {
			return s.cur.Load(), true
		}
	}
	return nil, false
}

// dialTunnel opens a connection to ap through the tunnel.
func (s *Stack) dialTunnel(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error) {
	in, ok := s.routed(ap.Addr())
	if !ok {
		return nil, fmt.Errorf("%s is not routed through the tunnel", ap.Addr())
	}
	if in == nil {
		return nil, ErrNoTunnel
	}
	switch network {
	case "tcp", "tcp6":
		return in.net.DialContextTCPAddrPort(ctx, ap)
	case "udp", "udp6":
		return in.net.DialUDPAddrPort(netip.AddrPort{}, ap)
	}
	return nil, fmt.Errorf("network %q is not supported through the tunnel", network)
}

// lookupTunnel resolves name through the tunnel's name servers.
func (s *Stack) lookupTunnel(ctx context.Context, name string) ([]netip.Addr, error) {
	in := s.cur.Load()
	if in == nil {
		return nil, ErrNoTunnel
	}
	hosts, err := in.net.LookupContextHost(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}
