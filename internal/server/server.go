// Package server is the IP-HTTPS server: it accepts HTTPS connections, answers
// the IP-HTTPS POST, attaches each client to the link's router, and moves
// packets between the clients and the host's IPv6 routing through a TUN device.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/metrics"
	"github.com/iphttps/iphttps/internal/netcfg"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
)

// counters of the server outside the router.
type counters struct {
	sessionsTotal, sessionsActive, handshakeFailures   atomic.Uint64
	handshakeTimeouts, headTimeouts, proxyErrors       atomic.Uint64
	refusedFull, refusedSource                         atomic.Uint64
	refusedPending, refusedPendingSource, healthChecks atomic.Uint64
	badRequest, notFound, badMethod                    atomic.Uint64
	dropTruncated                                      atomic.Uint64
	tunWriteErrors, tunReadErrors                      atomic.Uint64
	reloads, reloadFailures, authModeDrops             atomic.Uint64
	handshakeCodes                                     codeCounts
}

// refused counts a refusal by its reason.
func (c *counters) refused(why string) {
	switch why {
	case refusedFull:
		c.refusedFull.Add(1)
	case refusedSource:
		c.refusedSource.Add(1)
	case refusedPending:
		c.refusedPending.Add(1)
	case refusedPendingSource:
		c.refusedPendingSource.Add(1)
	}
}

// handshakeFailed counts a failed TLS handshake and returns its code.
func (c *counters) handshakeFailed(err error) uint32 {
	code := handshakeCode(err)
	c.handshakeFailures.Add(1)
	if code == winerr.TimedOut {
		c.handshakeTimeouts.Add(1)
	}
	c.handshakeCodes.add(code)
	return code
}

// Server is a running IP-HTTPS server.
type Server struct {
	o      Options
	log    *slog.Logger
	router *router.Router
	dev    *tundev.Device
	ln     net.Listener
	ctl    net.Listener
	mln    net.Listener // metrics; nil when off
	relays []relay      // Teredo, 6to4: those configured
	since  time.Time
	c      counters

	// cur is o as reloads changed it (o itself never changes); each
	// connection takes one snapshot at its start.
	cur    atomic.Pointer[Options]
	reload sync.Mutex // one reload at a time
	admit  *admission
	logs   logLimiter

	writers  sync.Pool // *tundev.Writer, shared by the session readers
	buffers  sync.Pool // *[]byte send buffers, shared by the idle sessions' Outboxes
	corkBufs sync.Pool // *[]byte buffers gathering TLS records into one send
	readBufs sync.Pool // *[]byte receive buffers, lent to the sessions that are receiving

	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool // set by closeAll: no new sessions
	wg       sync.WaitGroup
}

// New checks what can be checked before touching the system, then takes the
// listening port, creates the TUN device and configures the host. On error
// nothing is left behind.
func New(o Options) (_ *Server, err error) {
	rt, err := router.New(o.Router)
	if err != nil {
		return nil, winerr.Errorf(winerr.InvalidParameter, "router: %v", err)
	}
	s := &Server{o: o, log: o.Log, router: rt, sessions: map[*session]struct{}{}, since: time.Now(), admit: newAdmission()}
	s.cur.Store(&o)
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if err := tundev.IPv6Usable(); err != nil {
		return nil, err
	}
	if s.ln, err = net.Listen("tcp", o.Listen); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, winerr.Errorf(winerr.AddrInUse, "cannot listen on %s: the port is already in use by another program (find it with `ss -ltnp 'sport = :%s'`) or another iphttps server", o.Listen, portOf(o.Listen))
		}
		return nil, winerr.Errorf(winerr.Classify(err), "cannot listen on %s: %v", o.Listen, err)
	}
	if o.MetricsListen != "" {
		if s.mln, err = net.Listen("tcp", o.MetricsListen); err != nil {
			return nil, winerr.Errorf(winerr.Classify(err), "cannot listen on %s for metrics (metrics_listen): %v", o.MetricsListen, err)
		}
	}
	if s.ctl, err = control.Listen(o.ControlSocket); err != nil {
		return nil, err
	}
	if s.dev, err = tundev.Create(o.Interface, LinkMTU, o.Offload); err != nil {
		return nil, err
	}
	if err := s.configureHost(); err != nil {
		return nil, winerr.New(winerr.InstallFailure, err)
	}
	s.writers.New = func() any { return tundev.NewWriter(s.dev, 128) }
	if err := s.startRelays(); err != nil {
		return nil, err
	}
	return s, nil
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// tunQueueLen is the server TUN device's txqueuelen (the kernel's default is
// 500 packets: 50 ms of 10,000 small packets per second).
const tunQueueLen = 4096

// configureHost gives the server's TUN its link-local and host addresses, routes
// the prefix to it, and turns on IPv6 forwarding.
func (s *Server) configureHost() error {
	name := s.o.Interface
	if err := netcfg.PrepareLink(name, LinkMTU); err != nil {
		return err
	}
	// One reader serves every client from this queue; a deep queue lets
	// it fall behind for a moment (a busy machine) without dropping the
	// small packets of many clients. Bulk transfers queue large GSO
	// packets here, bounded by their own congestion windows.
	if err := netcfg.SetTxQueueLen(name, tunQueueLen); err != nil {
		return err
	}
	ll := netip.PrefixFrom(s.o.Router.LinkLocal, 64)
	if err := netcfg.AddAddr(name, ll, 0, 0, true); err != nil {
		return err
	}
	for _, a := range s.o.Router.HostAddrs {
		if err := netcfg.AddAddr(name, netip.PrefixFrom(a, 128), 0, 0, false); err != nil {
			return err
		}
	}
	if err := netcfg.ReplaceRoute(name, s.o.Router.Prefix); err != nil {
		return err
	}
	if s.o.SetForwarding {
		if v, _ := netcfg.Sysctl("net.ipv6.conf.all.forwarding"); v != "1" {
			if err := netcfg.SetSysctl("net.ipv6.conf.all.forwarding", "1"); err != nil {
				return fmt.Errorf("enable IPv6 forwarding (the server routes between its clients and other networks): %w", err)
			}
			s.log.Info("enabled IPv6 forwarding (net.ipv6.conf.all.forwarding=1)")
		}
	} else if v, _ := netcfg.Sysctl("net.ipv6.conf.all.forwarding"); v != "1" {
		s.log.Warn("IPv6 forwarding is off: clients reach only this host (set net.ipv6.conf.all.forwarding=1)")
	}
	return nil
}

// Run serves until ctx ends, then disconnects every client and removes the
// TUN device and the control socket.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.log.Info("IP-HTTPS server listening", "url", s.o.URL, "listen", s.ln.Addr().String(),
		"prefix", s.o.Router.Prefix, "auth_mode", s.o.Router.Mode, "interface", s.o.Interface,
		"offload", s.dev.Offloaded(), "tls", s.o.TLS != nil)
	if s.o.TLS != nil && len(s.o.TLS.Certificates) > 0 && s.o.TLS.Certificates[0].Leaf != nil {
		leaf := s.o.TLS.Certificates[0].Leaf
		s.log.Info("server certificate", "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames, "not_after", leaf.NotAfter)
	}
	errc := make(chan error, 4+len(s.relays))
	for _, r := range s.relays {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); errc <- r.Run(ctx) }()
	}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); errc <- s.readHost(ctx) }()
	go func() { defer s.wg.Done(); errc <- s.accept(ctx) }()
	go func() { defer s.wg.Done(); errc <- control.Serve(ctx, s.ctl, s.Status) }()
	if s.mln != nil {
		s.log.Info("serving Prometheus metrics", "url", "http://"+s.mln.Addr().String()+"/metrics")
		s.wg.Add(1)
		go func() { defer s.wg.Done(); errc <- metrics.Serve(ctx, s.mln, "iphttps_server", s.counters) }()
	}
	// Advertise often enough that no advertised lifetime runs out between two.
	ticker := time.NewTicker(min(s.o.RAInterval, s.router.AdvertiseInterval()))
	defer ticker.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			s.router.AdvertiseAll()
		case err = <-errc:
			if err != nil {
				break loop
			}
		}
	}
	cancel()
	s.log.Info("shutting down: disconnecting clients", "clients", s.c.sessionsActive.Load())
	s.closeAll()
	s.wg.Wait()
	return err
}

// closeAll stops listening and ends every session: each client gets a TLS
// close_notify (within the shutdown timeout) so it knows to reconnect,
// then the TUN device goes.
func (s *Server) closeAll() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.mln != nil {
		s.mln.Close()
	}
	for _, r := range s.relays {
		r.Close()
	}
	if s.ctl != nil {
		s.ctl.Close()
		os.Remove(s.o.ControlSocket)
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.closeSessions(s.cur.Load().ShutdownTimeout)
	if s.dev != nil {
		s.dev.Close()
	}
}

// closeSessions closes every session at once and waits at most d for them.
func (s *Server) closeSessions(d time.Duration) int {
	s.mu.Lock()
	open := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, ss := range open {
		wg.Add(1)
		go func() { defer wg.Done(); ss.close() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		s.log.Warn("shutdown timeout: some clients were not told goodbye", "shutdown_timeout", d)
	}
	return len(open)
}

func (s *Server) accept(ctx context.Context) error {
	var delay time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(ctx, conn)
		}()
	}
}

// readHost moves packets the kernel routes to the link to their clients. It
// fails if the TUN device goes away while the server runs.
func (s *Server) readHost(ctx context.Context) error {
	batch := tundev.NewReadBatch(s.dev, LinkMTU)
	for {
		n, err := batch.Read(s.dev)
	packets:
		for i := 0; i < n; i++ {
			p := batch.Packet(i)
			for _, r := range s.relays {
				if r.FromHost(p) {
					continue packets
				}
			}
			s.router.FromHost(p)
		}
		for _, r := range s.relays {
			r.FlushHost()
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				if ctx.Err() != nil {
					return nil
				}
				return winerr.Errorf(winerr.InstallFailure, "the TUN device %s was removed while the server ran", s.o.Interface)
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				s.c.tunReadErrors.Add(1)
				continue
			}
			s.c.tunReadErrors.Add(1)
			s.log.Warn("TUN read failed", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Refusals that are not limits (not counted): the server is shutting
// down; the authentication mode changed since the connection began (its
// handshake followed the old mode's rules).
const (
	refusedClosing     = "closing"
	refusedModeChanged = "auth mode changed"
)

// addSession adds ss to the client table and attaches it to the router; it
// returns why it did not (the table or the source's share is full, the
// server is shutting down, the authentication mode is no longer the one
// of cur, the options the connection began with), "" when it did. A
// reload changing the mode stores the new options before it disconnects
// every session under s.mu, so a session either is refused here or is
// among those disconnected.
func (s *Server) addSession(ss *session, cur *Options) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return refusedClosing
	}
	if s.cur.Load().Router.Mode != cur.Router.Mode {
		return refusedModeChanged
	}
	if why := s.admit.addSession(ss.src, cur.Limits); why != "" {
		return why
	}
	ss.client = s.router.Attach(ss)
	s.sessions[ss] = struct{}{}
	return ""
}

func (s *Server) removeSession(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	s.admit.removeSession(ss.src)
	s.router.Detach(ss.client)
}

// Status reports the server's state for the control socket.
func (s *Server) Status() status.Interface {
	st := status.Interface{
		Name:            "IPHTTPSInterface",
		Source:          "Local",
		Device:          s.o.Interface,
		Role:            "server",
		URL:             s.cur.Load().URL,
		State:           "Listen",
		InterfaceStatus: winerr.StatusActive,
		Since:           s.since,
		Prefix:          s.o.Router.Prefix.String(),
		AuthMode:        s.router.Config().Mode.String(),
		PID:             os.Getpid(),
		Offload:         s.dev.Offloaded(),
		Counters:        s.counters(),
	}
	st.Addresses = []string{netip.PrefixFrom(s.o.Router.LinkLocal, 64).String()}
	for _, a := range s.o.Router.HostAddrs {
		st.Addresses = append(st.Addresses, netip.PrefixFrom(a, 128).String())
	}
	for _, r := range s.o.Router.Routes {
		st.Routes = append(st.Routes, r.String())
	}
	s.mu.Lock()
	for ss := range s.sessions {
		st.Clients = append(st.Clients, ss.info())
	}
	s.mu.Unlock()
	for _, r := range s.relays {
		st.Clients = append(st.Clients, r.Clients()...)
		r.describe(&st)
	}
	return st
}

func (s *Server) counters() map[string]uint64 {
	m := map[string]uint64{
		"sessions_total":        s.c.sessionsTotal.Load(),
		"sessions_active":       s.c.sessionsActive.Load(),
		"handshake_failures":    s.c.handshakeFailures.Load(),
		"refused_full":          s.c.refusedFull.Load(),
		refusedSource:           s.c.refusedSource.Load(),
		refusedPending:          s.c.refusedPending.Load(),
		refusedPendingSource:    s.c.refusedPendingSource.Load(),
		"handshake_timeouts":    s.c.handshakeTimeouts.Load(),
		"head_timeouts":         s.c.headTimeouts.Load(),
		"proxy_protocol_errors": s.c.proxyErrors.Load(),
		"health_checks":         s.c.healthChecks.Load(),
		"reloads":               s.c.reloads.Load(),
		"reload_failures":       s.c.reloadFailures.Load(),
		"auth_mode_drops":       s.c.authModeDrops.Load(),
		"http_400":              s.c.badRequest.Load(),
		"http_404":              s.c.notFound.Load(),
		"http_405":              s.c.badMethod.Load(),
		"drop_truncated":        s.c.dropTruncated.Load(),
		"tun_write_errors":      s.c.tunWriteErrors.Load(),
		"tun_read_errors":       s.c.tunReadErrors.Load(),
	}
	rs := s.router.Stats() // packet counts come from the router, which sees every packet
	m["packets_from_clients"], m["bytes_from_clients"] = rs.FromClient, rs.FromClientBytes
	m["packets_from_host"], m["packets_to_host"] = rs.FromHost, rs.ToHost
	m["packets_to_clients"], m["dad_conflicts"] = rs.Delivered, rs.DADConflicts
	for k, v := range s.router.Drops() {
		m[dropKey(k)] += v
	}
	s.c.handshakeCodes.each(func(code uint32, n uint64) { m[handshakeFailureKey(code)] = n })
	pending, _, sources := s.admit.counts()
	m["connections_pending"], m["client_sources"] = uint64(pending), uint64(sources)
	for _, r := range s.relays {
		for k, v := range r.Counters() {
			m[r.Name()+"/"+k] = v
		}
	}
	return m
}
