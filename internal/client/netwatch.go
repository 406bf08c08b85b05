package client

import (
	"context"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// clockCheck is how often the client compares the wall clock with the
// monotonic clock: the monotonic clock stops while the machine sleeps.
const clockCheck = 5 * time.Second

// watchNetwork kicks whenever the network the tunnel runs over may have come
// back: a link (other than the tunnel device itself) comes up, an address or
// a route is added, or the machine resumes from suspend. The reconnect loop
// then tries at once instead of waiting out its timer. It runs until ctx ends.
func watchNetwork(ctx context.Context, tunnel string, kick chan<- struct{}) error {
	done := make(chan struct{})
	defer close(done)
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	if err := netlink.LinkSubscribe(links, done); err != nil {
		return err
	}
	if err := netlink.AddrSubscribe(addrs, done); err != nil {
		return err
	}
	if err := netlink.RouteSubscribe(routes, done); err != nil {
		return err
	}
	ownIndex := 0
	if ifi, err := net.InterfaceByName(tunnel); err == nil {
		ownIndex = ifi.Index
	}
	signal := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	tick := time.NewTicker(clockCheck)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-links:
			if !ok {
				return nil
			}
			if int(u.Index) != ownIndex && u.IfInfomsg.Flags&unix.IFF_UP != 0 && u.IfInfomsg.Flags&unix.IFF_RUNNING != 0 {
				signal()
			}
		case u, ok := <-addrs:
			if !ok {
				return nil
			}
			if u.NewAddr && u.LinkIndex != ownIndex {
				signal()
			}
		case u, ok := <-routes:
			if !ok {
				return nil
			}
			if u.Type == unix.RTM_NEWROUTE && u.LinkIndex != ownIndex {
				signal()
			}
		case now := <-tick.C:
			// Round(0) strips the monotonic reading: a wall clock that ran
			// ahead of the monotonic one means the machine slept.
			if now.Round(0).Sub(last.Round(0))-now.Sub(last) > 2*clockCheck {
				signal()
			}
			last = now
		}
	}
}
