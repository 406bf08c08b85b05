// Package server is the Teredo server and relay of a DirectAccess server,
// in one process as RFC 4380 section 5.4.3 allows and as Windows runs them:
// the server qualifies clients on UDP 3544 of two consecutive IPv4
// addresses (router solicitation in, advertisement with the client's
// mapping out) and passes bubbles between Teredo peers; the relay moves
// IPv6 between Teredo clients and the host (the TUN device and, behind it,
// the intranet).
//
// Every datagram is checked in the order of RFC 4380 sections 5.3.1 and
// 5.4.2 before anything is kept or forwarded; what fails a check is
// counted by reason and dropped, never stored. docs/teredo.md describes
// the rules and the counters.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/teredo/peer"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/udpbatch"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Options configure a Teredo server and relay.
type Options struct {
	// Primary is the server's first IPv4 address: it is in every client's
	// Teredo address. Secondary is the second; invalid: Primary+1.
	Primary, Secondary netip.Addr
	// Lab lets documentation addresses (192.0.2.0/24, 198.51.100.0/24,
	// 203.0.113.0/24) count as global, for the lab and the tests.
	Lab bool
	// Serves are the destinations the relay forwards Teredo clients'
	// packets to (the intranet routes and the server's own prefixes);
	// anything else is dropped (egress filter).
	Serves []netip.Prefix
	// NewHostWriter makes, for each socket reader, the writer that takes
	// Teredo clients' packets to the host (the TUN device): Add copies a
	// packet into a batch, Flush writes the batch (after each batch of
	// datagrams, so the device can coalesce segments).
	NewHostWriter func() tundev.PacketWriter
	// MaxPeers bounds the relay's peer list (0: peer.DefaultMaxPeers).
	MaxPeers int
	Log      *slog.Logger
}

// hostBatch is a socket reader's writer to the host and whether it holds
// packets not yet written.
type hostBatch struct {
	w       tundev.PacketWriter
	pending bool
}

// readBatch is how many datagrams one receive call (recvmmsg) takes;
// datagramBuf is the buffer for each: a 1280-byte packet with its headers,
// with room to spare (a longer datagram is counted as truncated).
// With receive offload, a receive call takes groReadBatch messages of up
// to 64 KiB, each a datagram or a train of them.
const (
	readBatch    = 64
	groReadBatch = 32
	datagramBuf  = 2048
)

// Server is a running Teredo server and relay.
type Server struct {
	o        Options
	log      *slog.Logger
	conns    [2]*net.UDPConn // primary, secondary
	peers    *peer.List
	prefix   netip.Prefix // 2001:0:<primary>::/64
	linkLoc  netip.Addr
	since    time.Time
	c        counters
	clientMu sync.Mutex
	clients  map[netip.AddrPort]*qualified // by mapping
	pcs      [2]*ipv4.PacketConn           // the sockets, for batched I/O
	gro      [2]bool                       // UDP receive offload on each socket
	outMu    sync.Mutex
	out      udpbatch.Batch // FromHost's datagrams, sent by FlushHost
	// expired is when expireClients last scanned the table.
	expired time.Time
}

// qualified is a client that solicited this server.
type qualified struct {
	first, last time.Time
	cone        bool
	solicits    uint64
}

// maxQualified bounds the table of solicitations shown in `show clients`;
// entries older than qualifiedExpiry go first. The table is scanned for
// them at most once per expiryScanGap: a scan of a full table takes about
// a millisecond, so a flood of solicitations from new mappings against a
// full table must not cost one each.
const (
	maxQualified    = 65536
	qualifiedExpiry = 2 * time.Minute
	expiryScanGap   = time.Second
)

// New checks the addresses and binds UDP port 3544 on both. An address
// that is not global, or not on this host, or a port in use, fails with a
// one-line reason.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if !o.Primary.Is4() {
		return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: the server address %v is not an IPv4 address", o.Primary)
	}
	if !o.Secondary.IsValid() {
		o.Secondary = o.Primary.Next()
	}
	for _, a := range []netip.Addr{o.Primary, o.Secondary} {
		if !teredo.IsGlobalUnicast(a, o.Lab) {
			hint := ""
			if teredo.IsDocumentation(a) {
				hint = " (documentation addresses count as global only with --teredo-lab)"
			}
			return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: server address %v is not a global unicast IPv4 address%s: Teredo clients behind NATs could not reach it", a, hint)
		}
	}
	s := &Server{
		o: o, log: o.Log, peers: peer.New(o.MaxPeers, 0),
		prefix:  teredo.ServerPrefix(o.Primary),
		linkLoc: teredo.ServerLinkLocal(o.Primary),
		since:   time.Now(), clients: map[netip.AddrPort]*qualified{},
	}
	for i, a := range []netip.Addr{o.Primary, o.Secondary} {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, teredo.Port)))
		if err != nil {
			s.Close()
			which := "primary"
			if i == 1 {
				which = "secondary (the server needs two consecutive addresses; set it with --teredo-secondary)"
			}
			switch {
			case errors.Is(err, syscall.EADDRNOTAVAIL):
				return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: the %s address %v is not on this host: add it to the public interface", which, a)
			case errors.Is(err, syscall.EADDRINUSE):
				return nil, winerr.Errorf(winerr.AddrInUse, "teredo: UDP port %d on %v is in use by another program (find it with `ss -lunp 'sport = :%d'`; a Miredo server?)", teredo.Port, a, teredo.Port)
			}
			return nil, winerr.Errorf(winerr.Classify(err), "teredo: cannot listen on %v:%d: %v", a, teredo.Port, err)
		}
		s.conns[i] = c
		s.pcs[i] = ipv4.NewPacketConn(c)
		if i == 0 {
			// The relay's traffic uses the primary socket (the secondary
			// only answers the solicitations of the NAT test).
			s.out.GSO, s.gro[i] = udpbatch.Offload(c)
		}
		udpbatch.SetBuffers(c, udpbatch.SocketBuffer)
	}
	return s, nil
}

// Secondary is the server's second address.
func (s *Server) Secondary() netip.Addr { return s.o.Secondary }

// Prefix is the Teredo /64 of this server's clients, 2001:0:<primary>::/64.
func (s *Server) Prefix() netip.Prefix { return s.prefix }

// Close releases the sockets.
func (s *Server) Close() {
	for _, c := range s.conns {
		if c != nil {
			c.Close()
		}
	}
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("Teredo server and relay listening", "primary", s.o.Primary, "secondary", s.o.Secondary,
		"port", teredo.Port, "prefix", s.prefix, "serves", s.o.Serves)
	errc := make(chan error, 2)
	for i := range s.conns {
		go func() { errc <- s.read(i) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.Close()
	for range len(s.conns) - 1 {
		<-errc
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("teredo server: %w", err)
	}
	return nil
}

// read handles the datagrams of one socket, a batch per receive call (a
// train of datagrams coalesced by the kernel counts as its datagrams); the
// packets for the host leave in one write per batch.
func (s *Server) read(i int) error {
	batch := readBatch
	if s.gro[i] {
		batch = groReadBatch // each buffer holds a train
	}
	r := udpbatch.NewReader(s.pcs[i], batch, datagramBuf, s.gro[i])
	var w hostBatch
	if s.o.NewHostWriter != nil {
		w.w = s.o.NewHostWriter()
	}
	each := func(d udpbatch.Datagram) {
		if d.Truncated {
			s.c.drop(dropTruncated)
			return
		}
		s.handle(i, d.B, d.From, d.At, &w)
	}
	return r.Serve(each, func() {
		if w.pending {
			w.pending = false
			if err := w.w.Flush(); err != nil {
				s.c.drop(dropHostWrite)
			}
		}
	})
}

// Drop reasons (counter names are "drop_" + reason).
const (
	dropMalformed     = "malformed"
	dropSourceGlobal  = "source_not_global"
	dropLoop          = "loop"
	dropBadRS         = "bad_solicitation"
	dropLinkLocal     = "link_local_source"
	dropSpoofed       = "spoofed_source"
	dropDstNotGlobal  = "destination_not_global"
	dropNotRelayed    = "not_relayed"
	dropOversized     = "oversized_icmpv6"
	dropLongTrailers  = "oversized_trailers"
	dropEgress        = "egress_filter"
	dropNotForUs      = "not_for_this_server"
	dropQueueFull     = "queue_full"
	dropBubbleLimited = "bubble_rate_limited"
	dropSendFailed    = "send_failed"
	dropTruncated     = "truncated"
	dropHostWrite     = "host_write_failed"
)

// maxForwardedICMPv6 is the largest ICMPv6 payload the server passes
// between Teredo peers: enough for echo tests, too small to make the
// server an open relay (Miredo's rule, which Microsoft's servers share).
const maxForwardedICMPv6 = 88

// maxForwardedTrailers is the most trailer bytes a bubble passed between
// Teredo peers may carry: room for all of RFC 6081's trailers at once (the
// longest, the alternate addresses, takes 28), not for data.
const maxForwardedTrailers = 64

// handle applies the server and relay rules to one datagram that arrived
// on socket i from src at now.
func (s *Server) handle(i int, b []byte, src netip.AddrPort, now time.Time, w *hostBatch) {
	s.c.datagrams.Add(1)
	if !teredo.IsGlobalUnicast(src.Addr(), s.o.Lab) {
		s.c.drop(dropSourceGlobal)
		return
	}
	if src.Port() == teredo.Port && (src.Addr() == s.o.Primary || src.Addr() == s.o.Secondary) {
		s.c.drop(dropLoop)
		return
	}
	d, err := teredo.Parse(b)
	if err != nil {
		s.c.drop(dropMalformed)
		return
	}
	p := d.IPv6
	from, to := packet.Src(p), packet.Dst(p)
	if from.IsLinkLocalUnicast() {
		if to == packet.AllRouters() {
			s.solicited(i, d, src)
			return
		}
		// Miredo (and Windows, for hole punching) sends its bubbles from a
		// link-local address: a bubble carries no data, so its source needs
		// no mapping check. Anything else from a link-local source is
		// refused.
		if a, ok := teredo.ParseAddress(to); ok && teredo.IsBubble(p) {
			if trailers, ok := s.bubbleTrailers(d); ok {
				s.forward(a, p, trailers, src, a.Server == s.o.Primary)
			}
			return
		}
		s.c.drop(dropLinkLocal)
		return
	}
	if !teredo.IsTeredo(from) {
		// RFC 4380 section 5.3.1 rule 6: a native peer (a relay) may send
		// this server's clients bubbles through it.
		a, ok := teredo.ParseAddress(to)
		if !ok || a.Server != s.o.Primary || !teredo.IsBubble(p) {
			s.c.drop(dropNotForUs)
			return
		}
		s.forward(a, p, nil, src, true)
		return
	}
	fa, _ := teredo.ParseAddress(from)
	if fa.Mapped != src {
		s.c.drop(dropSpoofed)
		return
	}
	if a, ok := teredo.ParseAddress(to); ok {
		s.betweenClients(a, d, src)
		return
	}
	s.fromClient(from, p, src, now, w)
}

// solicited answers a router solicitation (RFC 4380 section 5.3.2): from
// the other address when the client asks for the cone test.
func (s *Server) solicited(i int, d teredo.Datagram, src netip.AddrPort) {
	m, err := packet.ParseND(d.IPv6)
	if err != nil || m.Type() != 133 {
		s.c.drop(dropBadRS)
		return
	}
	rsSrc := packet.Src(d.IPv6)
	cone := teredo.IsConeSolicitation(rsSrc)
	out := i
	if cone {
		out = 1 - i
	}
	ra, err := teredo.AppendRA(make([]byte, 0, 160), d.Nonce, src, rsSrc, s.o.Primary)
	if err != nil {
		s.c.drop(dropBadRS)
		return
	}
	if !d.HasAuth {
		// Answer an unauthenticated solicitation without the header, as
		// RFC 4380 section 5.3.2 does (the client then has no nonce to
		// check: Windows and Miredo always send one).
		ra = ra[teredo.AuthMinLen:]
	}
	s.c.solicitations.Add(1)
	s.send(out, ra, src)
	s.noteClient(src, cone)
}

// betweenClients passes a bubble or a small ICMPv6 message from one Teredo
// peer to another (RFC 4380 section 5.3.1), with an origin indication
// when the destination is this server's client. Data between Teredo peers
// goes directly, never through the server.
func (s *Server) betweenClients(to teredo.Address, d teredo.Datagram, src netip.AddrPort) {
	p := d.IPv6
	var trailers []byte
	if teredo.IsBubble(p) {
		var ok bool
		if trailers, ok = s.bubbleTrailers(d); !ok {
			return
		}
	} else {
		if packet.NextHeader(p) != packet.ProtoICMPv6 {
			s.c.drop(dropNotRelayed)
			return
		}
		if packet.PayloadLen(p) > maxForwardedICMPv6 {
			s.c.drop(dropOversized)
			return
		}
	}
	s.forward(to, p, trailers, src, to.Server == s.o.Primary)
}

// bubbleTrailers returns the trailers of the bubble d, which go with it
// intact (RFC 6081: the peer reads them, e.g. the alternate addresses of a
// client behind its own NAT); ok is false, and the bubble is counted and
// dropped, when they are longer than maxForwardedTrailers.
func (s *Server) bubbleTrailers(d teredo.Datagram) (trailers []byte, ok bool) {
	if len(d.Trailers) > maxForwardedTrailers {
		s.c.drop(dropLongTrailers)
		return nil, false
	}
	return d.Trailers, true
}

// forward sends p and trailers to the Teredo peer to from the primary
// address, with an origin indication naming src when withOrigin.
func (s *Server) forward(to teredo.Address, p, trailers []byte, src netip.AddrPort, withOrigin bool) {
	if !teredo.IsGlobalUnicast(to.Mapped.Addr(), s.o.Lab) {
		s.c.drop(dropDstNotGlobal)
		return
	}
	var buf [teredo.OriginLen + 1500]byte
	b := buf[:0]
	if withOrigin {
		b = teredo.AppendOrigin(b, src)
	}
	b = append(append(b, p...), trailers...)
	s.c.forwarded.Add(1)
	s.send(0, b, to.Mapped)
}

// fromClient relays a Teredo client's packet for a native destination to
// the host (RFC 4380 section 5.4.2): the mapping was checked, so the peer
// is trusted; the destination must be one the relay serves.
func (s *Server) fromClient(from netip.Addr, p []byte, src netip.AddrPort, now time.Time, w *hostBatch) {
	if !s.peers.Received(from, src, now) {
		for _, q := range s.peers.Heard(from, src, now) {
			s.send(0, q, src)
		}
	}
	if teredo.IsBubble(p) {
		s.c.bubblesIn.Add(1)
		return
	}
	to := packet.Dst(p)
	if !s.serves(to) {
		s.c.drop(dropEgress)
		return
	}
	s.c.toHost.Add(1)
	s.c.toHostBytes.Add(uint64(len(p)))
	if w.w != nil {
		if err := w.w.Add(p); err != nil {
			s.c.drop(dropHostWrite)
		}
		w.pending = true
	}
}

func (s *Server) serves(a netip.Addr) bool {
	for _, p := range s.o.Serves {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FromHost relays a packet the host routed to a Teredo address (RFC 4380
// section 5.4.1). It reports false when the destination is not a Teredo
// address (the packet is someone else's to handle). Packets for trusted
// peers are gathered and sent by FlushHost in one system call (sendmmsg):
// p must stay valid until then (the host's reader calls FlushHost at the
// end of each batch it read).
func (s *Server) FromHost(p []byte) bool {
	to := packet.Dst(p)
	a, ok := teredo.ParseAddress(to)
	if !ok {
		return false
	}
	s.c.fromHost.Add(1)
	if !teredo.IsGlobalUnicast(a.Mapped.Addr(), s.o.Lab) {
		s.c.drop(dropDstNotGlobal)
		return true
	}
	now := time.Now()
	if m, ok := s.peers.Route(to, now); ok {
		s.queueOut(p, m)
		return true
	}
	if a.Server == s.o.Primary {
		// This server's client refreshes its NAT mapping towards the
		// primary address every 30 s, so the mapping in its address
		// lets packets from here in.
		s.queueOut(p, a.Mapped)
		return true
	}
	// Another server's client: queue, and open its NAT with a bubble sent
	// through its server (RFC 4380 section 5.4.1 case 3).
	// A packet the queue budget cannot hold is dropped (counted by the
	// peer list), but the bubble still goes: it opens the way for the
	// packets that follow.
	s.peers.Queue(to, p, now)
	if !s.peers.Bubble(to, now) {
		s.c.drop(dropBubbleLimited)
		return true
	}
	var buf [teredo.BubbleLen]byte
	s.c.bubblesOut.Add(1)
	s.send(0, teredo.AppendBubble(buf[:0], packet.Src(p), to), netip.AddrPortFrom(a.Server, teredo.Port))
	return true
}

// queueOut adds p for to to FromHost's batch.
func (s *Server) queueOut(p []byte, to netip.AddrPort) {
	s.outMu.Lock()
	s.out.Add(p, to)
	s.outMu.Unlock()
}

// FlushHost sends the packets FromHost gathered.
func (s *Server) FlushHost() {
	s.outMu.Lock()
	r := s.out.Send(s.pcs[0])
	s.outMu.Unlock()
	if r.GSOOff {
		s.log.Info("teredo: the path refuses UDP segmentation offload; the relay sends datagram by datagram")
	}
	s.c.sent.Add(uint64(r.Sent))
	for range r.Failed + r.Closed {
		s.c.drop(dropSendFailed)
	}
}

func (s *Server) send(i int, b []byte, to netip.AddrPort) {
	if _, err := s.conns[i].WriteToUDPAddrPort(b, to); err != nil {
		s.c.drop(dropSendFailed)
		s.log.Debug("teredo: send failed", "to", to, "err", err)
		return
	}
	s.c.sent.Add(1)
}

// noteClient records a solicitation from the client at mapping.
func (s *Server) noteClient(mapping netip.AddrPort, cone bool) {
	now := time.Now()
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	q := s.clients[mapping]
	if q == nil {
		if len(s.clients) >= maxQualified {
			s.expireClients(now)
			if len(s.clients) >= maxQualified {
				s.c.drop("client_table_full")
				return
			}
		}
		q = &qualified{first: now}
		s.clients[mapping] = q
	}
	q.last, q.cone = now, q.cone || cone
	q.solicits++
}

// expireClients forgets clients that have not solicited for
// qualifiedExpiry, at most once per expiryScanGap. Called with clientMu
// held.
func (s *Server) expireClients(now time.Time) {
	if now.Sub(s.expired) < expiryScanGap {
		return
	}
	s.expired = now
	for m, q := range s.clients {
		if now.Sub(q.last) > qualifiedExpiry {
			delete(s.clients, m)
		}
	}
}

// Clients lists the Teredo clients seen recently: those that solicited
// this server (by mapping) and the peers the relay trusts.
func (s *Server) Clients() []status.Client {
	now := time.Now()
	var out []status.Client
	seen := map[netip.AddrPort]int{}
	s.peers.Each(func(p peer.Peer) {
		if !p.Trusted || now.Sub(p.LastRX) > peer.Validity {
			return
		}
		seen[p.Mapping] = len(out)
		out = append(out, status.Client{
			Transport: "teredo", Remote: p.Mapping.String(), Mapping: p.Mapping.String(),
			Addresses: []string{p.Addr.String()}, Since: p.LastRX,
		})
	})
	s.clientMu.Lock()
	s.expireClients(now)
	for m, q := range s.clients {
		if i, ok := seen[m]; ok {
			out[i].Since = q.first
			continue
		}
		out = append(out, status.Client{Transport: "teredo", Remote: m.String(), Mapping: m.String(), Since: q.first})
	}
	s.clientMu.Unlock()
	return out
}

// counters of the Teredo server and relay.
type counters struct {
	datagrams, solicitations, forwarded, sent atomic.Uint64
	toHost, toHostBytes, fromHost             atomic.Uint64
	bubblesIn, bubblesOut                     atomic.Uint64
	dropMu                                    sync.Mutex
	drops                                     map[string]uint64
}

func (c *counters) drop(reason string) {
	c.dropMu.Lock()
	if c.drops == nil {
		c.drops = map[string]uint64{}
	}
	c.drops[reason]++
	c.dropMu.Unlock()
}

// Counters returns the server's counters, named for `show statistics` and
// the metrics (the caller adds the transport label).
func (s *Server) Counters() map[string]uint64 {
	m := map[string]uint64{
		"datagrams":         s.c.datagrams.Load(),
		"solicitations":     s.c.solicitations.Load(),
		"forwarded":         s.c.forwarded.Load(),
		"datagrams_sent":    s.c.sent.Load(),
		"packets_to_host":   s.c.toHost.Load(),
		"bytes_to_host":     s.c.toHostBytes.Load(),
		"packets_from_host": s.c.fromHost.Load(),
		"bubbles_received":  s.c.bubblesIn.Load(),
		"bubbles_sent":      s.c.bubblesOut.Load(),
	}
	ps := s.peers.Stats()
	m["peers"], m["peers_evicted"] = ps.Peers, ps.Evicted
	m["drop_"+dropQueueFull] += ps.QueueDrops
	s.c.dropMu.Lock()
	for k, v := range s.c.drops {
		m["drop_"+k] += v
	}
	s.c.dropMu.Unlock()
	return m
}
