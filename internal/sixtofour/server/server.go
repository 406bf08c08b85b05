// Package server is the DirectAccess server's 6to4 side: it takes IPv6 in
// IPv4 protocol 41 from 6to4 clients on a raw socket bound to the server's
// public IPv4 address, checks each packet as Linux's sit device would
// (package sixtofour), hands it to the host (the server's TUN device, on to
// the intranet), and encapsulates the host's packets for 2002::/16
// destinations back to the IPv4 address they embed. The server's own 6to4
// address, which clients ping to test the path, is the host's: the kernel
// answers.
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
	"github.com/iphttps/iphttps/internal/sixtofour"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/udpbatch"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Options configure the 6to4 side.
type Options struct {
	// Address is the server's public IPv4 address: 6to4 clients send to
	// it, and its 6to4 address is the server's.
	Address netip.Addr
	// Lab lets documentation addresses (192.0.2.0/24, ...) count as public.
	Lab bool
	// Serves are the destinations 6to4 clients may reach through the
	// server (its prefix, its routes, its own addresses).
	Serves []netip.Prefix
	// NewHostWriter makes the reader's writer to the host.
	NewHostWriter func() tundev.PacketWriter
	// MaxPeers bounds the table of clients shown by show clients
	// (DefaultMaxPeers when 0); PeerIdle is how long a client stays in it
	// after its last packet (DefaultPeerIdle when 0).
	MaxPeers int
	PeerIdle time.Duration
	Log      *slog.Logger
}

// Defaults of the client table.
const (
	DefaultMaxPeers = 65536
	DefaultPeerIdle = 2 * time.Minute
	// expiryScanGap: a full table is scanned for idle clients at most
	// this often, so a flood from new sources does not cost a scan each.
	expiryScanGap = time.Second
)

// readBatch packets are read per system call; readBuf holds one with its
// IPv4 header (a longer one is counted as oversized).
const (
	readBatch = 64
	readBuf   = 20 + 60 + sixtofour.MTU + 64
)

// Server is a running 6to4 relay.
type Server struct {
	o      Options
	log    *slog.Logger
	conn   *net.IPConn
	pc     *ipv4.PacketConn
	self   netip.Addr // the server's 6to4 address
	drops  [sixtofour.NumDrops]atomic.Uint64
	c      counters
	outMu  sync.Mutex
	out    udpbatch.Batch
	peerMu sync.Mutex
	peers  map[netip.Addr]*peerInfo
	swept  time.Time
}

type counters struct {
	received, toHost, toHostBytes   atomic.Uint64
	fromHost, sent, sentBytes       atomic.Uint64
	oversized, sendFailed, hostFail atomic.Uint64
	tableFull                       atomic.Uint64
}

// peerInfo is a 6to4 client the server heard from.
type peerInfo struct {
	first, last       time.Time
	pktsIn, bytesIn   uint64
	pktsOut, bytesOut uint64
}

// New checks the address and opens the raw socket. An address that is not
// public, not on this host, or a missing privilege, fails with a one-line
// reason.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = DefaultMaxPeers
	}
	if o.PeerIdle <= 0 {
		o.PeerIdle = DefaultPeerIdle
	}
	if err := sixtofour.CheckPublic(o.Address, o.Lab); err != nil {
		return nil, winerr.Errorf(winerr.InvalidParameter, "6to4: %v: 6to4 clients could not reach the server at it", err)
	}
	c, err := net.ListenIP("ip4:41", &net.IPAddr{IP: o.Address.AsSlice()})
	if err != nil {
		switch {
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			return nil, winerr.Errorf(winerr.InvalidParameter, "6to4: the address %v is not on this host: add it to the public interface", o.Address)
		case errors.Is(err, syscall.EPERM):
			return nil, winerr.Errorf(winerr.Classify(err), "6to4: a raw socket for protocol 41 needs CAP_NET_RAW: %v", err)
		}
		return nil, winerr.Errorf(winerr.Classify(err), "6to4: cannot open a raw socket for protocol 41 on %v: %v", o.Address, err)
	}
	udpbatch.SetBuffers(c, udpbatch.SocketBuffer)
	s := &Server{
		o: o, log: o.Log, conn: c, pc: ipv4.NewPacketConn(c),
		self: sixtofour.Address(o.Address), peers: map[netip.Addr]*peerInfo{},
		out: udpbatch.Batch{RawIP: true},
	}
	return s, nil
}

// Self is the server's 6to4 address (the host must hold it, so that the
// kernel answers the clients' path test).
func (s *Server) Self() netip.Addr { return s.self }

// Close stops the reader.
func (s *Server) Close() { s.conn.Close() }

// Run reads from 6to4 clients until ctx ends or the socket fails.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("6to4 relay listening", "address", s.o.Address, "6to4_address", s.self, "serves", s.o.Serves)
	errc := make(chan error, 1)
	go func() { errc <- s.read() }()
	select {
	case <-ctx.Done():
		s.Close()
		<-errc
		return nil
	case err := <-errc:
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("6to4 relay: %w", err)
		}
		return nil
	}
}

// read handles the packets of the raw socket, a batch per receive call;
// the packets for the host leave in one write per batch.
func (s *Server) read() error {
	r := udpbatch.NewReader(s.pc, readBatch, readBuf, false)
	var w tundev.PacketWriter
	if s.o.NewHostWriter != nil {
		w = s.o.NewHostWriter()
	}
	pending := false
	each := func(d udpbatch.Datagram) {
		s.c.received.Add(1)
		if d.Truncated {
			s.c.oversized.Add(1)
			return
		}
		p, ok := s.inbound(d.B)
		if !ok {
			return
		}
		s.heard(d.From.Addr(), len(p), d.At)
		s.c.toHost.Add(1)
		s.c.toHostBytes.Add(uint64(len(p)))
		if w != nil {
			if err := w.Add(p); err != nil {
				s.c.hostFail.Add(1)
			}
			pending = true
		}
	}
	return r.Serve(each, func() {
		if pending {
			pending = false
			if err := w.Flush(); err != nil {
				s.c.hostFail.Add(1)
			}
		}
	})
}

// inbound checks a datagram from a client; it returns the IPv6 packet to
// hand to the host.
func (s *Server) inbound(b []byte) ([]byte, bool) {
	o, p, d := sixtofour.Decapsulate(b)
	if d == sixtofour.Accept {
		// No relay: a native source has no business arriving in
		// protocol 41 at a DirectAccess server.
		d = sixtofour.Inbound(o, p, netip.Addr{})
	}
	if d == sixtofour.Accept && !s.serves(packet.Dst(p)) {
		d = sixtofour.DropDestinationNotOurs
	}
	if d != sixtofour.Accept {
		s.drops[d].Add(1)
		return nil, false
	}
	return p, true
}

func (s *Server) serves(a netip.Addr) bool {
	if a == s.self {
		return true
	}
	for _, p := range s.o.Serves {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FromHost encapsulates a packet the host routed to a 6to4 address. It
// reports false when the destination is not a 6to4 address (the packet is
// someone else's to handle). Packets are gathered and sent by FlushHost in
// one system call: p must stay valid until then.
func (s *Server) FromHost(p []byte) bool {
	dst := packet.Dst(p)
	if !sixtofour.Is6to4(dst) {
		return false
	}
	s.c.fromHost.Add(1)
	v4, d := sixtofour.NextHop(dst, netip.Addr{}, s.o.Lab)
	if d != sixtofour.Accept {
		s.drops[d].Add(1)
		return true
	}
	if v4 == s.o.Address {
		// The host routed its own 6to4 address here: never loop it out.
		s.drops[sixtofour.DropDestinationNotPublic].Add(1)
		return true
	}
	s.sentTo(v4, len(p))
	s.outMu.Lock()
	s.out.Add(p, netip.AddrPortFrom(v4, 0))
	s.outMu.Unlock()
	return true
}

// FlushHost sends the packets FromHost gathered.
func (s *Server) FlushHost() {
	s.outMu.Lock()
	r := s.out.Send(s.pc)
	s.outMu.Unlock()
	s.c.sent.Add(uint64(r.Sent))
	s.c.sentBytes.Add(uint64(r.Bytes))
	s.c.sendFailed.Add(uint64(r.Failed + r.Closed))
}

// heard records a packet from the client at v4.
func (s *Server) heard(v4 netip.Addr, n int, now time.Time) {
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	pi := s.peers[v4]
	if pi == nil {
		if len(s.peers) >= s.o.MaxPeers {
			s.sweep(now)
			if len(s.peers) >= s.o.MaxPeers {
				s.c.tableFull.Add(1)
				return
			}
		}
		pi = &peerInfo{first: now}
		s.peers[v4] = pi
	}
	pi.last = now
	pi.pktsIn++
	pi.bytesIn += uint64(n)
}

// sentTo counts a packet to a known client.
func (s *Server) sentTo(v4 netip.Addr, n int) {
	s.peerMu.Lock()
	if pi := s.peers[v4]; pi != nil {
		pi.pktsOut++
		pi.bytesOut += uint64(n)
	}
	s.peerMu.Unlock()
}

// sweep forgets clients idle for PeerIdle, at most once per
// expiryScanGap. Called with peerMu held.
func (s *Server) sweep(now time.Time) {
	if now.Sub(s.swept) < expiryScanGap {
		return
	}
	s.swept = now
	for a, pi := range s.peers {
		if now.Sub(pi.last) > s.o.PeerIdle {
			delete(s.peers, a)
		}
	}
}

// Clients lists the 6to4 clients heard from within PeerIdle.
func (s *Server) Clients() []status.Client {
	now := time.Now()
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	var out []status.Client
	for a, pi := range s.peers {
		if now.Sub(pi.last) > s.o.PeerIdle {
			continue
		}
		out = append(out, status.Client{
			Transport: "6to4", Remote: a.String(), Addresses: []string{sixtofour.Address(a).String()},
			Since: pi.first, BytesIn: pi.bytesIn, BytesOut: pi.bytesOut, PktsIn: pi.pktsIn, PktsOut: pi.pktsOut,
		})
	}
	return out
}

// Counters returns the relay's counters, named for show statistics and the
// metrics (the caller adds the transport label).
func (s *Server) Counters() map[string]uint64 {
	m := map[string]uint64{
		"packets_received":       s.c.received.Load(),
		"packets_to_host":        s.c.toHost.Load(),
		"bytes_to_host":          s.c.toHostBytes.Load(),
		"packets_from_host":      s.c.fromHost.Load(),
		"packets_sent":           s.c.sent.Load(),
		"bytes_sent":             s.c.sentBytes.Load(),
		"drop_oversized":         s.c.oversized.Load(),
		"drop_send_failed":       s.c.sendFailed.Load(),
		"drop_host_write":        s.c.hostFail.Load(),
		"drop_client_table_full": s.c.tableFull.Load(),
	}
	for _, d := range sixtofour.Drops() {
		m["drop_"+d.String()] = s.drops[d].Load()
	}
	return m
}
