// Package client is the IP-HTTPS client transport, which the client's host
// side (internal/client, imported as hostside) runs as its Transport. Each
// session runs the phases of package iphttps (Dial, Handshake, Open), then
// the link over the connection: duplicate address detection, router
// solicitation, SLAAC from the advertised prefix, routes, the liveness
// watch, and the packet pumps between the connection and the host.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/wire"
)

const (
	outboxLimit = 256 << 10
	// sendWait is how long the host's reader waits for room in a full send
	// queue before dropping: waiting passes the tunnel's pace back to the
	// senders (the kernel queues, TCP slows down) instead of losing packets.
	sendWait = 500 * time.Millisecond
)

// Options configure the IP-HTTPS transport.
type Options struct {
	Target iphttps.Target
	TLS    *tls.Config // iphttps.TLSConfig; nil for plain HTTP
	Proxy  proxy.Config
	// ConnectTimeout bounds the connection through each proxy route, the
	// TLS handshake and the server's answer.
	ConnectTimeout time.Duration
	// RATimeout bounds the wait for a router advertisement with a prefix
	// once connected.
	RATimeout time.Duration
	// AcceptDefaultRoute installs a default route when the server
	// advertises itself as a default router.
	AcceptDefaultRoute bool
}

// Transport is the IP-HTTPS transport (hostside.Transport).
type Transport struct {
	o  Options
	st *state
}

// state is what outlives one connection, and one configuration: the
// link's addresses and routes (so that sockets survive a reconnect and a
// reload) and the counters.
type state struct {
	lk       link
	c        counters
	routerLL atomic.Pointer[netip.Addr] // source of the last router advertisement: the liveness probes' target
}

type counters struct {
	connects, dropLinkDown, dropOutboxFull atomic.Uint64
	dropBadFrame, dropNotIPv6              atomic.Uint64
	tunWriteErrors                         atomic.Uint64
}

// New returns the transport o describes; nothing happens until Connect.
func New(o Options) *Transport {
	t := &Transport{o: o, st: &state{}}
	t.st.lk.init()
	return t
}

// Name is the transport's name in logs.
func (t *Transport) Name() string { return "IP-HTTPS" }

// InitStatus names the interface as Windows names it.
func (t *Transport) InitStatus(s *status.Interface) { s.Name = "IPHTTPSInterface" }

// TakeOver keeps the link (its addresses and routes) and the counters of
// the transport this one replaces on a reload.
func (t *Transport) TakeOver(prev hostside.Transport) {
	if p, ok := prev.(*Transport); ok {
		t.st = p.st
	}
}

// UpFor is how long the last connection's link was up.
func (t *Transport) UpFor() time.Duration { return t.st.lk.upFor() }

// InterfaceCounters are counted under the interface's own names in the
// status.
func (t *Transport) InterfaceCounters() map[string]uint64 {
	c := &t.st.c
	return map[string]uint64{
		"connects": c.connects.Load(), "drop_link_down": c.dropLinkDown.Load(),
		"drop_outbox_full": c.dropOutboxFull.Load(), "drop_bad_frame": c.dropBadFrame.Load(),
		"drop_not_ipv6": c.dropNotIPv6.Load(), "tun_write_errors": c.tunWriteErrors.Load(),
	}
}

// session is one connection.
type session struct {
	t   *Transport
	l   hostside.Link
	log *slog.Logger
	// received counts the packets from the server, for the liveness watch.
	received atomic.Uint64
}

// Connect makes one connection and runs it until it ends (hostside.Transport).
// up tells whether the link came all the way up (an address was
// configured).
func (t *Transport) Connect(ctx context.Context, l hostside.Link) (up bool, err error) {
	s := &session{t: t, l: l, log: l.Log()}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s.run(ctx)
}

func (s *session) run(ctx context.Context) (bool, error) {
	s.l.Update(func(st *status.Interface) { st.State, st.NextRetry = "LinkDown", time.Time{} })
	tr := &iphttps.Trace{RouteStart: func(rt proxy.Route) { s.l.Update(func(st *status.Interface) { st.Proxy = rt.Proxy.String() }) }}
	conn, r, err := s.t.open(ctx, s.log, tr)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	s.t.st.c.connects.Add(1)
	s.l.Update(func(st *status.Interface) { st.State, st.Server = "Established", conn.RemoteAddr().String() })
	return s.carry(ctx, conn, r)
}

// open runs the phases up to the server's 200: Dial (through the proxy
// routes), Handshake, Open. The proxy that worked is remembered.
func (t *Transport) open(ctx context.Context, log *slog.Logger, tr *iphttps.Trace) (net.Conn, *wire.Reader, error) {
	o := t.o
	raw, via, err := iphttps.Dial(ctx, iphttps.DialOptions{Target: o.Target, Proxy: o.Proxy, Timeout: o.ConnectTimeout, Log: log}, tr)
	if err != nil {
		return nil, nil, err
	}
	conn := raw
	if o.TLS != nil {
		hctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
		tc, err := iphttps.Handshake(hctx, raw, o.TLS, tr)
		cancel()
		if err != nil {
			return nil, nil, err // raw is closed
		}
		conn = tc
	}
	octx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	r, err := iphttps.Open(octx, conn, o.Target, iphttps.ReaderSize, tr)
	cancel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if via.Proxy.URL != nil && o.Proxy.Cache != nil {
		// This proxy works: try it first next time.
		if err := o.Proxy.Cache.Store(o.Target.Addr(), via.Proxy.String()); err != nil {
			log.Warn("cannot remember the proxy", "err", err)
		}
	}
	return conn, r, nil
}

// Probe tells whether an IP-HTTPS connection would open now (the server
// answers the POST with 200), without bringing the link up: how path
// selection learns why IP-HTTPS would fail while another method carries
// the traffic. The error carries the Windows code.
func (t *Transport) Probe(ctx context.Context, log *slog.Logger) error {
	conn, _, err := t.open(ctx, log, nil)
	if err != nil {
		return err
	}
	return conn.Close()
}

// carry runs the link on an open connection: packets flow both ways, the
// link engine brings up the addresses.
func (s *session) carry(ctx context.Context, conn net.Conn, r *wire.Reader) (bool, error) {
	ob := wire.NewOutbox(outboxLimit)
	sctx, cancel := context.WithCancel(ctx)
	nd := make(chan ndp.Message, 16)
	pumps := make(chan error, 2)
	go func() { pumps <- s.receive(r, nd) }()
	// The sending side runs a goroutine only while it has a batch to send;
	// a small packet goes out from the goroutine that queued it.
	ob.Go(iphttps.PacketWriter(conn), func(err error) { pumps <- err })
	s.l.Attach(outboxSender{ob: ob, c: &s.t.st.c})
	engine := make(chan error, 1)
	go func() { engine <- s.t.st.lk.run(sctx, s, ob, nd, serverIsIPv6(conn)) }()

	pending := 2
	var err error
	select {
	case err = <-engine:
		// The link engine gave up (no prefix published), or ctx ended.
		engine = nil
	case err = <-pumps:
		pending--
		if err == nil {
			err = errors.New("the server closed the connection")
		}
		err = fmt.Errorf("IP-HTTPS connection to %s lost: %w", conn.RemoteAddr(), err)
	}
	s.l.Detach()
	cancel()
	ob.Close()
	conn.Close()
	for ; pending > 0; pending-- {
		<-pumps
	}
	if engine != nil {
		<-engine
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return s.t.st.lk.wasUp(), err
}

// outboxSender queues the host's packets on the connection's send queue
// (hostside.Sender).
type outboxSender struct {
	ob *wire.Outbox
	c  *counters
}

// Send queues pkts, taking the queue's lock once for the batch; a packet
// that is refused is counted and skipped.
func (o outboxSender) Send(pkts [][]byte) (sent, bytes int) {
	for len(pkts) > 0 {
		n, err := o.ob.AppendBatchWait(pkts, sendWait)
		for _, p := range pkts[:n] {
			bytes += len(p)
		}
		sent += n
		if err == nil {
			return sent, bytes
		}
		switch {
		case errors.Is(err, wire.ErrFull):
			o.c.dropOutboxFull.Add(1)
		case errors.Is(err, wire.ErrClosed):
			o.c.dropLinkDown.Add(uint64(len(pkts) - n))
			return sent, bytes
		default:
			o.c.dropBadFrame.Add(1)
		}
		pkts = pkts[n+1:]
	}
	return sent, bytes
}

// receive moves the server's packets to the host in batches, handing the
// router and neighbor advertisements to the link engine.
func (s *session) receive(r *wire.Reader, nd chan<- ndp.Message) error {
	c := &s.t.st.c
	w := tundev.NewWriter(s.l.Host(), 128)
	flush := func() {
		if err := w.Flush(); err != nil {
			c.tunWriteErrors.Add(1)
		}
	}
	defer flush()
	for {
		pkt, err := r.Next()
		if err != nil {
			if errors.Is(err, wire.ErrNotIPv6) || errors.Is(err, wire.ErrJumbogram) {
				c.dropNotIPv6.Add(1)
			}
			return err
		}
		s.received.Add(1)
		s.l.Received(1, len(pkt))
		if typ, ok := packet.ICMPv6Type(pkt); ok && (typ == packet.TypeRouterAdvertisement || typ == packet.TypeNeighborAdvertisement) {
			if m, err := packet.ParseND(pkt); err == nil {
				if typ == packet.TypeRouterAdvertisement {
					if src := packet.Src(pkt); src.IsLinkLocalUnicast() {
						s.t.st.routerLL.Store(&src)
					}
				}
				select {
				case nd <- m:
				default:
				}
			}
		} else if err := w.Add(pkt); err != nil {
			c.tunWriteErrors.Add(1)
		}
		// Flush only when the next read would wait (see server.receive).
		if w.Pending() > 0 && !r.HasPacket() && !r.TryFill() {
			flush()
		}
	}
}

// serverIsIPv6 reports whether the outer connection runs over IPv6, in which
// case a default route through the tunnel would capture it.
func serverIsIPv6(conn net.Conn) bool {
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	return err == nil && ap.Addr().Unmap().Is6()
}
