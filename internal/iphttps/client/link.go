package client

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
	"github.com/iphttps/iphttps/internal/wire"
)

const (
	dadWait     = time.Second     // RFC 4861 RetransTimer: wait for a defending NA
	rsInterval  = 2 * time.Second // between router solicitations while none is answered
	dadAttempts = 3               // fresh interface identifiers tried on conflicts
	// reclaimAttempts is how many more times the address of the previous
	// connection is probed, reclaimWait apart, before another is chosen.
	reclaimAttempts = 3
	reclaimWait     = time.Second
)

var defRoute = netip.MustParsePrefix("::/0")

// link is the host side of the IP-HTTPS link. Its addresses and routes outlive
// one connection, so sockets survive a reconnect; closing the TUN device at
// exit removes them all.
type link struct {
	mu      sync.Mutex
	llIID   [8]byte
	gIID    [8]byte
	ll      netip.Addr   // link-local address once configured
	prefix  netip.Prefix // prefix of the global address once configured
	addr    netip.Addr   // global address once configured
	routes  []netip.Prefix
	up      bool      // this connection configured an address
	upSince time.Time // when it did
}

func (l *link) init() {
	l.llIID, l.gIID = iphttps.RandomIID(), iphttps.RandomIID()
}

func (l *link) wasUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

// upFor is how long the last connection's link was up.
func (l *link) upFor() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return 0
	}
	return time.Since(l.upSince)
}

// run brings the link up on a fresh connection: duplicate address detection for
// the link-local address, router solicitation, then address and routes from
// the router advertisement; afterwards it follows further advertisements. It
// returns an error when no advertisement with a prefix comes in time (the KB's
// "server has no IPv6 prefix published", 0x2AFC), nil when ctx ends.
func (l *link) run(ctx context.Context, s *session, ob *wire.Outbox, nd <-chan ndp.Message, outerV6 bool) error {
	l.mu.Lock()
	l.up = false
	l.mu.Unlock()
	send := func(pkt []byte, err error) {
		if err == nil {
			err = ob.Append(pkt)
		}
		if err != nil {
			s.log.Debug("cannot send ND message", "err", err)
		}
	}
	ll := iphttps.LinkLocal(l.llIID)
	dad := func(target netip.Addr) { send(iphttps.DADProbe(target)) }
	// Router solicitations come from :: until the link-local address has
	// passed duplicate address detection (RFC 4861 6.3.7), then from it.
	llDone := l.ll == ll
	rsFrom := func() netip.Addr {
		if llDone {
			return ll
		}
		return netip.IPv6Unspecified()
	}
	if !llDone {
		dad(ll)
	}
	send(iphttps.RouterSolicitation(rsFrom()))
	llTimer := time.NewTimer(dadWait)
	defer llTimer.Stop()
	rs := time.NewTicker(rsInterval)
	defer rs.Stop()
	deadline := time.NewTimer(s.t.o.RATimeout)
	defer deadline.Stop()

	var ra *ndp.RouterAdvertisement
	for ra == nil || !llDone {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return winerr.Errorf(winerr.NoData, "connected, but no router advertisement with a /64 prefix came within %v: the server publishes no IPv6 prefix", s.t.o.RATimeout)
		case <-rs.C:
			if ra == nil {
				send(iphttps.RouterSolicitation(rsFrom()))
			}
		case <-llTimer.C:
			if !llDone {
				if err := l.setLinkLocal(s, ll); err != nil {
					return err
				}
				llDone = true
			}
		case m := <-nd:
			switch m := m.(type) {
			case *ndp.RouterAdvertisement:
				if _, _, ok := iphttps.ChoosePrefix(m); ok {
					ra = m
				}
			case *ndp.NeighborAdvertisement:
				if m.TargetAddress == ll && !llDone {
					s.log.Warn("link-local address in use on the link; choosing another", "addr", ll)
					l.llIID = iphttps.RandomIID()
					ll = iphttps.LinkLocal(l.llIID)
					dad(ll)
					llTimer.Reset(dadWait)
				}
			}
		}
	}
	if err := l.apply(ctx, s, ra, nd, dad, outerV6, true); err != nil {
		return err
	}
	l.mu.Lock()
	l.up, l.upSince = true, time.Now()
	l.mu.Unlock()
	s.l.Update(func(st *status.Interface) {
		st.State, st.LastErrorCode, st.LastError = "LinkUp", winerr.Success, ""
		st.InterfaceStatus, st.Since, st.NextRetry = winerr.StatusActive, time.Now(), time.Time{}
	})
	s.log.Info("IPHTTPS interface active", "address", l.addr, "prefix", l.prefix, "routes", l.routes)

	live := newLiveness(time.Now(), s.received.Load())
	check := time.NewTicker(livenessCheck)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-check.C:
			probe, dead, silent := live.check(now, s.received.Load())
			if dead {
				return winerr.Errorf(winerr.TimedOut, "nothing came from the server for %v despite neighbor solicitations to the router: the connection is dead", silent.Round(time.Second))
			}
			if probe {
				if r := s.t.st.routerLL.Load(); r != nil {
					send(packet.BuildICMPv6(ll, *r, 255, &ndp.NeighborSolicitation{TargetAddress: *r}))
				} else {
					send(iphttps.RouterSolicitation(ll))
				}
				s.log.Debug("the server is silent; probing the router", "silent", silent.Round(time.Second))
			}
		case m := <-nd:
			if ra, ok := m.(*ndp.RouterAdvertisement); ok {
				if err := l.apply(ctx, s, ra, nd, dad, outerV6, false); err != nil {
					s.log.Warn("router advertisement not applied", "err", err)
				}
			}
		}
	}
}

func (l *link) setLinkLocal(s *session, ll netip.Addr) error {
	if l.ll == ll {
		return nil
	}
	if err := s.l.Host().AddAddr(netip.PrefixFrom(ll, 64), 0, 0, true); err != nil {
		return winerr.New(winerr.InstallFailure, err)
	}
	if l.ll.IsValid() {
		s.l.Host().DelAddr(netip.PrefixFrom(l.ll, 64))
	}
	l.ll = ll
	return nil
}

// apply configures the address and routes an advertisement gives. On a new
// connection (fresh) the address goes through duplicate address detection
// again, which also registers it with the server.
func (l *link) apply(ctx context.Context, s *session, ra *ndp.RouterAdvertisement, nd <-chan ndp.Message, dad func(netip.Addr), outerV6, fresh bool) error {
	pfx, pi, ok := iphttps.ChoosePrefix(ra)
	if !ok {
		return fmt.Errorf("advertisement without a usable /64 prefix")
	}
	h := s.l.Host()
	if l.prefix.IsValid() && l.prefix != pfx {
		s.log.Info("the server's prefix changed; removing the old address", "old", l.prefix, "new", pfx)
		h.DelAddr(netip.PrefixFrom(l.addr, 64))
		l.prefix, l.addr = netip.Prefix{}, netip.Addr{}
		fresh = true
	}
	addr := iphttps.WithIID(pfx.Addr(), l.gIID)
	if fresh || !l.addr.IsValid() {
		var err error
		if addr, err = l.detectDuplicates(ctx, s, pfx, nd, dad); err != nil {
			return err
		}
	}
	if err := h.AddAddr(netip.PrefixFrom(addr, 64), pi.ValidLifetime, pi.PreferredLifetime, false); err != nil {
		return winerr.New(winerr.InstallFailure, err)
	}
	l.prefix, l.addr = pfx, addr

	want := []netip.Prefix{pfx}
	for _, o := range ra.Options {
		if ri, ok := o.(*ndp.RouteInformation); ok && ri.RouteLifetime > 0 {
			want = append(want, netip.PrefixFrom(ri.Prefix, int(ri.PrefixLength)).Masked())
		}
	}
	if ra.RouterLifetime > 0 && s.t.o.AcceptDefaultRoute {
		want = append(want, defRoute)
	}
	want = append(want, s.l.Routes()...)
	var installed []netip.Prefix
	for _, p := range want {
		if slices.Contains(installed, p) {
			continue
		}
		if p.Bits() == 0 && outerV6 {
			s.log.Warn("not installing the advertised default route: the connection to the server runs over IPv6 and would be routed into the tunnel")
			continue
		}
		if err := h.ReplaceRoute(p); err != nil {
			s.log.Warn("cannot install route", "route", p, "err", err)
			continue
		}
		installed = append(installed, p)
	}
	for _, p := range l.routes {
		if !slices.Contains(installed, p) {
			h.DelRoute(p)
		}
	}
	l.routes = installed
	addrs := []string{netip.PrefixFrom(addr, 64).String(), netip.PrefixFrom(l.ll, 64).String()}
	routes := make([]string, len(installed))
	for i, p := range installed {
		routes[i] = p.String()
	}
	s.l.Update(func(st *status.Interface) { st.Prefix, st.Addresses, st.Routes = pfx.String(), addrs, routes })
	return nil
}

// detectDuplicates runs duplicate address detection for the global address,
// choosing a new interface identifier when the server defends the address
// for another client.
func (l *link) detectDuplicates(ctx context.Context, s *session, pfx netip.Prefix, nd <-chan ndp.Message, dad func(netip.Addr)) (netip.Addr, error) {
	reclaims := 0
	for i := 0; i < dadAttempts; i++ {
		addr := iphttps.WithIID(pfx.Addr(), l.gIID)
		dad(addr)
		t := time.NewTimer(dadWait)
		conflict := false
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return addr, ctx.Err()
			case <-t.C:
				break wait
			case m := <-nd:
				if na, ok := m.(*ndp.NeighborAdvertisement); ok && na.TargetAddress == addr {
					conflict = true
					t.Stop()
					break wait
				}
			}
		}
		if !conflict {
			return addr, nil
		}
		if l.addr == addr && reclaims < reclaimAttempts {
			// The address of our previous connection: the server most
			// likely defends it for that connection, which it has not yet
			// seen end (a reset or a dead path reached only this side).
			// Keeping the address keeps every socket bound to it.
			reclaims++
			i--
			s.log.Info("our previous address is still held at the server, probably by our previous connection; trying it again", "addr", addr, "in", reclaimWait)
			select {
			case <-ctx.Done():
				return addr, ctx.Err()
			case <-time.After(reclaimWait):
			}
			continue
		}
		s.log.Warn("address in use by another client (duplicate address detection); choosing another", "addr", addr)
		if l.addr == addr {
			s.l.Host().DelAddr(netip.PrefixFrom(addr, 64))
			l.addr = netip.Addr{}
		}
		l.gIID = iphttps.RandomIID()
	}
	return netip.Addr{}, winerr.Errorf(winerr.NoData, "duplicate address detection failed %d times on %s", dadAttempts, pfx)
}
