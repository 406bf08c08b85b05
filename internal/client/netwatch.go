package client

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// clockCheck is how often the client compares the wall clock with the
// monotonic clock: the monotonic clock stops while the machine sleeps.
const clockCheck = 5 * time.Second

// watchNetwork kicks when the network the tunnel runs over may have come
// back: a link (other than the tunnel device) turns up and running, an
// address not seen before appears, a default route is added, or the machine
// resumes from suspend. Refreshes of what is already there (address
// lifetimes renewed by router advertisements, repeated link notifications)
// do not kick. It runs until ctx ends or the subscriptions fail.
func watchNetwork(ctx context.Context, tunnel string, kick chan<- struct{}) error {
	done := make(chan struct{})
	defer close(done)
	var subErr error
	onErr := func(err error) { subErr = err }
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return err
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return err
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return err
	}

	// What is there now: only changes from this state kick.
	ownIndex := 0
	running := map[int]bool{}
	if ls, err := netlink.LinkList(); err == nil {
		for _, l := range ls {
			a := l.Attrs()
			if a.Name == tunnel {
				ownIndex = a.Index
			}
			running[a.Index] = a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_RUNNING != 0
		}
	}
	type addrKey struct {
		index int
		addr  netip.Addr
	}
	seen := map[addrKey]bool{}
	if as, err := netlink.AddrList(nil, netlink.FAMILY_ALL); err == nil {
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				seen[addrKey{a.LinkIndex, ip.Unmap()}] = true
			}
		}
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
				return subscriptionEnded(subErr)
			}
			idx := int(u.Index)
			up := u.Header.Type != unix.RTM_DELLINK && u.IfInfomsg.Flags&unix.IFF_UP != 0 && u.IfInfomsg.Flags&unix.IFF_RUNNING != 0
			if up && !running[idx] && idx != ownIndex {
				signal()
			}
			running[idx] = up
		case u, ok := <-addrs:
			if !ok {
				return subscriptionEnded(subErr)
			}
			ip, _ := netip.AddrFromSlice(u.LinkAddress.IP)
			k := addrKey{u.LinkIndex, ip.Unmap()}
			if u.NewAddr && !seen[k] && u.LinkIndex != ownIndex {
				signal()
			}
			seen[k] = u.NewAddr
		case u, ok := <-routes:
			if !ok {
				return subscriptionEnded(subErr)
			}
			isDefault := u.Dst == nil || u.Dst.IP.IsUnspecified()
			if u.Type == unix.RTM_NEWROUTE && isDefault && u.LinkIndex != ownIndex && u.NlFlags&unix.NLM_F_REPLACE == 0 {
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

func subscriptionEnded(err error) error {
	if err == nil {
		err = errors.New("closed")
	}
	return errors.Join(errors.New("netlink subscription ended"), err)
}
