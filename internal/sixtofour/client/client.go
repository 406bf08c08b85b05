// Package client is the 6to4 client transport (`iphttps client
// --6to4-relay IPV4`): IPv6 in IPv4 protocol 41 between this host's public
// IPv4 address and the DirectAccess server, which is the relay. Before the
// host gets the 6to4 address and the routes, three tests must pass, and
// they are run again on every network change and while the tunnel is up,
// so that 6to4 never keeps the intranet routes on a dead path (Windows'
// worst 6to4 failure: an address that looks public behind a NAT or a
// protocol-41 filter):
//
//   - the range test: the local address is not private, shared (carrier
//     NAT), or otherwise special (sixtofour.CheckPublic);
//   - the mapping test: when the server is also a Teredo server (as a
//     DirectAccess server is), the address it sees in a Teredo router
//     solicitation from this host must be the local one (no NAT);
//   - the reachability test: an ICMPv6 echo from our 6to4 address to the
//     server's, over protocol 41, answered within 2 s, up to 3 tries.
//
// The tests are package probe's, which `iphttps diagnose` runs too.
// A failed test takes 6to4 down: no address, no route, a reason and a code
// in the status (`iphttps show 6to4`), and the host side retries later.
package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/sixtofour"
	"github.com/iphttps/iphttps/internal/sixtofour/probe"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/udpbatch"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Options configure the 6to4 client.
type Options struct {
	// Relay is the DirectAccess server's public IPv4 address: the 6to4
	// relay for native destinations and the other end of the path test.
	Relay netip.Addr
	// Lab lets documentation addresses (192.0.2.0/24, ...) count as public.
	Lab bool
	// TestInterval is how often the reachability test runs while the
	// tunnel is up (DefaultTestInterval when 0).
	TestInterval time.Duration
	Log          *slog.Logger
}

// DefaultTestInterval is how often a working 6to4 path is tested again.
const DefaultTestInterval = time.Minute

// Interface names and service states as Windows shows them.
const (
	InterfaceName = "6TO4 Adapter"
	StateTesting  = "testing"
	StateUp       = "up"
	StateDown     = "down"
)

// Transport is the 6to4 client (hostside.Transport).
type Transport struct {
	o Options
	c counters
}

// New checks the options.
func New(o Options) (*Transport, error) {
	if !o.Relay.Is4() {
		return nil, winerr.Errorf(winerr.InvalidParameter, "6to4: the relay %v is not an IPv4 address", o.Relay)
	}
	if err := sixtofour.CheckPublic(o.Relay, o.Lab); err != nil {
		return nil, winerr.Errorf(winerr.InvalidParameter, "6to4: the relay: %v", err)
	}
	if o.TestInterval <= 0 {
		o.TestInterval = DefaultTestInterval
	}
	return &Transport{o: o}, nil
}

// Name is the transport's name in logs.
func (t *Transport) Name() string { return "6to4" }

// InitStatus names the interface as Windows does and shows 6to4 testing.
func (t *Transport) InitStatus(st *status.Interface) {
	st.Name, st.URL = InterfaceName, ""
	st.SixToFour = &status.SixToFourState{ServiceState: "enabled", State: StateTesting, Relay: t.o.Relay.String()}
}

// RequalifyOnNetworkChange asks for the tests to run again at once when
// the network changes: the local address, and whether it is public, may
// have changed.
func (t *Transport) RequalifyOnNetworkChange() bool { return true }

// session is one run of the tests and, when they pass, of the tunnel.
type session struct {
	t      *Transport
	l      hostside.Link
	log    *slog.Logger
	local  netip.Addr // this host's IPv4 address towards the relay
	me     netip.Addr // our 6to4 address
	relay6 netip.Addr // the relay's 6to4 address
	conn   *net.IPConn
	pc     *ipv4.PacketConn
	up     atomic.Bool
	// reach is the reachability test; the reader passes it the answers.
	reach  probe.Reachability
	routes []netip.Prefix
}

// Connect runs the tests and, when they pass, carries packets until ctx
// ends or a test fails (hostside.Transport).
func (t *Transport) Connect(ctx context.Context, l hostside.Link) (bool, error) {
	s := &session{t: t, l: l, log: t.o.Log, relay6: sixtofour.Address(t.o.Relay)}
	if s.log == nil {
		s.log = l.Log()
	}
	t.c.sessions.Add(1)
	s.state(func(st *status.SixToFourState) {
		*st = status.SixToFourState{ServiceState: "enabled", State: StateTesting, Relay: t.o.Relay.String()}
	})
	up, err := s.run(ctx)
	if ctx.Err() != nil {
		return up, nil
	}
	return up, err
}

func (s *session) run(ctx context.Context) (bool, error) {
	local, err := probe.Local(s.t.o.Relay)
	if err != nil {
		return false, s.fail("range", err)
	}
	s.local, s.me = local, sixtofour.Address(local)
	s.state(func(st *status.SixToFourState) { st.PublicAddress, st.Address = local.String(), s.me.String() })
	if err := sixtofour.CheckPublic(local, s.t.o.Lab); err != nil {
		return false, s.fail("range", winerr.Errorf(winerr.NetUnreach, "6to4: this host's address %v", err))
	}
	s.testResult("range", fmt.Sprintf("passed (%v is a public address)", local))
	if err := s.open(); err != nil {
		return false, s.fail("", err)
	}
	readDone := make(chan error, 1)
	go func() { readDone <- s.read() }()
	defer func() {
		s.down()
		s.conn.Close()
		<-readDone
	}()
	if err := s.mappingTest(ctx); err != nil {
		return false, s.fail("mapping", err)
	}
	if err := s.reachabilityTest(ctx); err != nil {
		return false, s.fail("reachability", err)
	}
	if err := s.configure(); err != nil {
		return false, s.fail("", err)
	}
	tick := time.NewTicker(s.t.o.TestInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case err := <-readDone:
			readDone <- err // for the deferred wait
			return true, s.fail("", winerr.Errorf(winerr.Classify(err), "6to4: reading protocol 41: %w", err))
		case <-tick.C:
			if err := s.reachabilityTest(ctx); err != nil {
				if ctx.Err() != nil {
					return true, nil
				}
				return true, s.fail("reachability", err)
			}
		}
	}
}

// open binds the raw protocol-41 socket to the local address (it then
// receives only what is addressed to this host's 6to4 side).
func (s *session) open() error {
	c, err := probe.Listen(s.local)
	if err != nil {
		return err
	}
	udpbatch.SetBuffers(c, udpbatch.SocketBuffer)
	s.conn, s.pc = c, ipv4.NewPacketConn(c)
	return nil
}

// configure puts the 6to4 address and the routes on the host and starts
// carrying packets.
func (s *session) configure() error {
	h := s.l.Host()
	if err := h.AddAddr(netip.PrefixFrom(s.me, 128), 0, 0, false); err != nil {
		return winerr.Errorf(winerr.InstallFailure, "6to4: cannot add the address %v to %s: %w", s.me, h.Describe(), err)
	}
	for _, p := range append([]netip.Prefix{sixtofour.Prefix}, s.l.Routes()...) {
		p = p.Masked()
		if slices.Contains(s.routes, p) {
			continue
		}
		if err := h.ReplaceRoute(p); err != nil {
			s.log.Warn("cannot install route", "route", p, "err", err)
			continue
		}
		s.routes = append(s.routes, p)
	}
	s.l.Attach(&sender{s: s, batch: udpbatch.Batch{RawIP: true}})
	s.up.Store(true)
	now := time.Now()
	routes := make([]string, len(s.routes))
	for i, r := range s.routes {
		routes[i] = r.String()
	}
	s.l.Update(func(st *status.Interface) {
		st.State, st.LastErrorCode, st.LastError = "LinkUp", winerr.Success, ""
		st.InterfaceStatus, st.Since, st.NextRetry = "6to4 interface active", now, time.Time{}
		st.Server = s.t.o.Relay.String()
		st.Addresses = []string{netip.PrefixFrom(s.me, 128).String()}
		st.Routes = routes
	})
	s.state(func(st *status.SixToFourState) { st.State, st.Code, st.Reason = StateUp, "", "" })
	s.t.c.ups.Add(1)
	s.log.Info("6to4 up", "address", s.me, "local", s.local, "relay", s.t.o.Relay, "routes", routes)
	return nil
}

// down takes the address and routes off the host: a path that failed a
// test must not keep the intranet's routes.
func (s *session) down() {
	if !s.up.Swap(false) {
		return
	}
	s.l.Detach()
	h := s.l.Host()
	for _, p := range s.routes {
		if err := h.DelRoute(p); err != nil {
			s.log.Warn("cannot remove route", "route", p, "err", err)
		}
	}
	s.routes = nil
	if err := h.DelAddr(netip.PrefixFrom(s.me, 128)); err != nil {
		s.log.Warn("cannot remove the 6to4 address", "addr", s.me, "err", err)
	}
	s.l.Update(func(st *status.Interface) { st.Addresses, st.Routes = nil, nil })
}

// fail takes 6to4 down with err, records which test failed (test may be
// empty) and returns err.
func (s *session) fail(test string, err error) error {
	s.down()
	if test != "" {
		s.testResult(test, "failed ("+err.Error()+")")
	}
	s.t.c.failures.Add(1)
	code := winerr.Classify(err)
	s.state(func(st *status.SixToFourState) {
		st.ServiceState, st.State = "disabled", StateDown
		st.Code, st.Reason = fmt.Sprintf("0x%x", code), err.Error()
	})
	s.log.Warn("6to4 down", "test", test, "err", err)
	return err
}

// testResult records a test's outcome in the status.
func (s *session) testResult(test, result string) {
	now := time.Now()
	s.state(func(st *status.SixToFourState) {
		switch test {
		case "range":
			st.RangeTest = result
		case "mapping":
			st.MappingTest = result
		case "reachability":
			st.ReachabilityTest = result
		}
		st.LastTest = now
	})
}

// state changes the 6to4 state in the status: a copy, since readers of the
// status hold the old pointer without the lock.
func (s *session) state(fn func(*status.SixToFourState)) {
	s.l.Update(func(st *status.Interface) {
		var ss status.SixToFourState
		if st.SixToFour != nil {
			ss = *st.SixToFour
		}
		fn(&ss)
		st.SixToFour = &ss
	})
}

// counters of the 6to4 client.
type counters struct {
	sessions, ups, failures       atomic.Uint64
	testsPassed, testsFailed      atomic.Uint64
	pktsUp, bytesUp               atomic.Uint64
	pktsDown, bytesDown           atomic.Uint64
	received                      atomic.Uint64
	drops                         [sixtofour.NumDrops]atomic.Uint64
	notOurs, notUp, oversized     atomic.Uint64
	notRoutable, sendFailed, host atomic.Uint64
}

// Counters returns the client's counters for show statistics ("6to4/...").
func (t *Transport) Counters() map[string]uint64 {
	c := &t.c
	m := map[string]uint64{
		"sessions":                 c.sessions.Load(),
		"ups":                      c.ups.Load(),
		"failures":                 c.failures.Load(),
		"tests_passed":             c.testsPassed.Load(),
		"tests_failed":             c.testsFailed.Load(),
		"packets_up":               c.pktsUp.Load(),
		"bytes_up":                 c.bytesUp.Load(),
		"packets_down":             c.pktsDown.Load(),
		"bytes_down":               c.bytesDown.Load(),
		"packets_received":         c.received.Load(),
		"drop_source_not_ours":     c.notOurs.Load(),
		"drop_tunnel_down":         c.notUp.Load(),
		"drop_oversized":           c.oversized.Load(),
		"drop_destination_invalid": c.notRoutable.Load(),
		"drop_send_failed":         c.sendFailed.Load(),
		"drop_host_write":          c.host.Load(),
	}
	for _, d := range sixtofour.Drops() {
		m["drop_"+d.String()] = c.drops[d].Load()
	}
	return m
}
