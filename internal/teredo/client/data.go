package client

import (
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/teredo/peer"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/udpbatch"
)

// The data path: transmission (RFC 4380 section 5.2.4, with the direct
// connectivity test of section 5.2.9) and reception (section 5.2.3).

const (
	// readBatch datagrams are read with one system call and their packets
	// written to the host with one call.
	readBatch = 32
	// readBuf holds a datagram: the 1280-byte link MTU, the headers and
	// room for trailers; anything larger is dropped (oversized).
	readBuf = 2048
	// maxRepliesPerSecond bounds the direct bubbles sent in answer to
	// indirect bubbles.
	maxRepliesPerSecond = 50
	// echoHopLimit is the connectivity test's hop limit.
	echoHopLimit = 64
)

// sender carries the host's packets into the tunnel (client.Sender). Send
// is called by one goroutine at a time.
type sender struct {
	s     *session
	batch udpbatch.Batch
}

// Send sends each packet by its destination: to a trusted peer's mapping;
// for a Teredo destination, queued while bubbles open the way; for a
// native destination, queued while an echo test through the server finds
// the relay. sent counts the packets sent or queued.
func (x *sender) Send(pkts [][]byte) (sent, nbytes int) {
	s := x.s
	c := &s.t.c
	me := s.me.Load()
	peers := s.peers.Load()
	now := time.Now()
	for _, p := range pkts {
		if len(p) < packet.HeaderLen || packet.Version(p) != 6 || packet.HeaderLen+packet.PayloadLen(p) > len(p) {
			c.drop(dropBadPacket, 1)
			continue
		}
		p = p[:packet.HeaderLen+packet.PayloadLen(p)]
		src, dst := packet.Src(p), packet.Dst(p)
		if me == nil || src != me.addr {
			c.drop(dropSourceNotOurs, 1)
			continue
		}
		if dst.IsMulticast() || dst.IsLinkLocalUnicast() || dst.IsLoopback() || dst.IsUnspecified() {
			c.drop(dropNotRoutable, 1)
			continue
		}
		if m, ok := peers.Route(dst, now); ok {
			x.add(p, m)
			continue
		}
		if a, ok := teredo.ParseAddress(dst); ok {
			if !teredo.IsGlobalUnicast(a.Mapped.Addr(), s.lab) {
				c.drop(dropDstNotGlobal, 1)
				continue
			}
			if !peers.Queue(dst, p, now) {
				continue // counted by the peer list (queue_full)
			}
			c.add(&c.queued, 1)
			sent, nbytes = sent+1, nbytes+len(p)
			if peers.Bubble(dst, now) {
				s.bubbles(me.addr, dst, a)
			}
			continue
		}
		if !peers.Queue(dst, p, now) {
			continue
		}
		c.add(&c.queued, 1)
		sent, nbytes = sent+1, nbytes+len(p)
		if peers.Bubble(dst, now) {
			s.echoTest(peers, me.addr, dst, now)
		}
	}
	n, b := x.flush()
	return sent + n, nbytes + b
}

// add queues p for the batch write to m.
func (x *sender) add(p []byte, m netip.AddrPort) { x.batch.Add(p, m) }

// flush writes the batch (sendmmsg) and forgets the packets.
func (x *sender) flush() (sent, nbytes int) {
	c := &x.s.t.c
	r := x.batch.Send(x.s.pc)
	if r.GSOOff {
		x.s.log.Info("teredo: the path refuses UDP segmentation offload; sending datagram by datagram")
	}
	c.drop(dropSendFailed, r.Failed)
	c.drop(dropSessionClosed, r.Closed)
	c.add(&c.pktsUp, r.Sent)
	c.add(&c.bytesUp, r.Bytes)
	c.add(&c.datagramsOut, r.Sent)
	return r.Sent, r.Bytes
}

// write sends one datagram.
func (s *session) write(b []byte, to netip.AddrPort) bool {
	if _, err := s.conn.WriteToUDPAddrPort(b, to); err != nil {
		if errors.Is(err, net.ErrClosed) {
			s.t.c.drop(dropSessionClosed, 1)
		} else {
			s.t.c.drop(dropSendFailed, 1)
		}
		return false
	}
	s.t.c.add(&s.t.c.datagramsOut, 1)
	return true
}

// bubbles opens the way to the Teredo peer dst (RFC 4380 section 5.2.4
// case 5): a direct bubble to its mapping opens our NAT towards it, an
// indirect one through its server makes it answer.
func (s *session) bubbles(src, dst netip.Addr, a teredo.Address) {
	var buf [bubbleBuf]byte
	b := s.appendBubble(buf[:0], src, dst)
	if s.write(b, a.Mapped) {
		s.t.c.add(&s.t.c.bubblesOut, 1)
	}
	s.toAlternates(b, dst)
	if teredo.IsGlobalUnicast(a.Server, s.lab) && s.write(b, netip.AddrPortFrom(a.Server, teredo.Port)) {
		s.t.c.add(&s.t.c.bubblesOut, 1)
	}
}

// echoTest sends the direct connectivity test for the native destination
// dst (RFC 4380 section 5.2.9): an echo request carrying a random nonce,
// through our server; the relay that answers with the nonce becomes dst's
// mapping. A test in progress is repeated with its nonce.
func (s *session) echoTest(peers *peer.List, src, dst netip.Addr, now time.Time) {
	var nonce [8]byte
	rand.Read(nonce[:])
	if !peers.StartTest(dst, nonce, now) {
		e, _ := peers.Lookup(dst)
		nonce = e.Nonce
	}
	var buf [packet.HeaderLen + packet.NonceEchoLen]byte
	b := packet.AppendNonceEcho(buf[:0], src, dst, echoHopLimit, nonce)
	if s.write(b, s.primary) {
		s.t.c.add(&s.t.c.echoTests, 1)
	}
}

// replyLimiter bounds the answers to indirect bubbles per second; used by
// the reader goroutine only.
type replyLimiter struct {
	second int64
	n      int
}

func (r *replyLimiter) allow(now time.Time) bool {
	if sec := now.Unix(); sec != r.second {
		r.second, r.n = sec, 0
	}
	if r.n >= maxRepliesPerSecond {
		return false
	}
	r.n++
	return true
}

// read receives datagrams until the socket is closed, delivering packets
// to the host in batches.
func (s *session) read() error {
	c := &s.t.c
	r := udpbatch.NewReader(s.pc, readBatch, readBuf, s.gro)
	w := tundev.NewWriter(s.l.Host(), readBatch)
	pkts, nbytes := 0, 0
	// flush writes the packets gathered so far to the host.
	flush := func() {
		if pkts == 0 {
			return
		}
		if err := w.Flush(); err != nil {
			c.drop(dropHostWrite, pkts)
			s.log.Debug("teredo: cannot write to the host", "err", err)
		} else {
			c.add(&c.pktsDown, pkts)
			c.add(&c.bytesDown, nbytes)
			s.l.Received(pkts, nbytes)
		}
		pkts, nbytes = 0, 0
	}
	each := func(d udpbatch.Datagram) {
		c.add(&c.datagramsIn, 1)
		if d.Truncated {
			c.drop(dropOversized, 1)
			return
		}
		if p := s.handle(d.B, d.From, d.At); p != nil {
			if w.Pending() == readBatch {
				flush()
			}
			w.Add(p) // never full: flushed above
			pkts, nbytes = pkts+1, nbytes+len(p)
		}
	}
	return r.Serve(each, flush)
}

// handle applies the reception rules to a datagram from from; it returns
// the IPv6 packet to deliver to the host, or nil.
func (s *session) handle(b []byte, from netip.AddrPort, now time.Time) []byte {
	c := &s.t.c
	fromServer := from == s.primary || from == s.secondary
	// A private source may be a peer behind our NAT (hairpin.go).
	fromPrivate := !fromServer && teredo.IsAlternateAddress(from)
	if !fromServer && !fromPrivate && !teredo.IsGlobalUnicast(from.Addr(), s.lab) {
		c.drop(dropSourceNotGlobal, 1)
		return nil
	}
	d, err := teredo.Parse(b)
	if err != nil {
		c.drop(dropMalformed, 1)
		return nil
	}
	if fromServer && d.HasAuth {
		s.answer(b, from, now)
		return nil
	}
	me := s.me.Load()
	if me == nil {
		c.drop(dropNotQualified, 1)
		return nil
	}
	if fromServer {
		return s.fromServer(d, from, me, now)
	}
	if d.HasAuth || d.HasOrigin {
		c.drop(dropUnexpectedHdr, 1)
		return nil
	}
	p := d.IPv6
	src, dst := packet.Src(p), packet.Dst(p)
	if dst != me.addr {
		c.drop(dropWrongDst, 1)
		return nil
	}
	if fromPrivate {
		return s.fromAlternate(d, from, me, now)
	}
	bubble := teredo.IsBubble(p)
	if src.IsLinkLocalUnicast() {
		// Miredo's bubbles come from a link-local address: nothing to
		// deliver; anything else from one is refused (no injected ND).
		if bubble {
			c.add(&c.bubblesIn, 1)
			return nil
		}
		c.drop(dropLinkLocal, 1)
		return nil
	}
	peers := s.peers.Load()
	if a, ok := teredo.ParseAddress(src); ok {
		if a.Mapped != from {
			c.drop(dropMappingMismatch, 1)
			return nil
		}
		// The mapping in the address is the one the packet came from: the
		// peer is proved (section 5.2.3 case 3).
		s.flush(peers.Heard(src, from, now), from)
		return s.accept(p, bubble)
	}
	if s.echoReply(peers, p, src, from, now) {
		return nil
	}
	if peers.Received(src, from, now) {
		return s.accept(p, bubble)
	}
	c.drop(dropUntrusted, 1)
	return nil
}

// fromServer handles a datagram from a server address that is not an
// advertisement: an indirect bubble (with an origin indication) or a
// packet the server relayed for a native host (the server of a
// DirectAccess server is also its relay, and relays from its primary
// address).
func (s *session) fromServer(d teredo.Datagram, from netip.AddrPort, me *identity, now time.Time) []byte {
	c := &s.t.c
	if from != s.primary {
		c.drop(dropNotFromPrimary, 1)
		return nil
	}
	s.lastServer.Store(now.UnixNano())
	p := d.IPv6
	src, dst := packet.Src(p), packet.Dst(p)
	if dst != me.addr {
		c.drop(dropWrongDst, 1)
		return nil
	}
	bubble := teredo.IsBubble(p)
	if d.HasOrigin {
		// A peer's packet relayed by the server: answer with a direct
		// bubble to its origin, source and destination swapped, which opens
		// our NAT to it (and is what Miredo expects).
		if teredo.IsGlobalUnicast(d.Origin.Addr(), s.lab) {
			s.replyBubble(me.addr, src, d.Origin, now)
		} else {
			c.drop(dropSourceNotGlobal, 1)
		}
		if bubble {
			s.relayedAlternates(d, src, me, now)
			c.add(&c.bubblesIn, 1)
			return nil
		}
		// The server passes small ICMPv6 messages between Teredo peers,
		// having checked the source's mapping.
		if a, ok := teredo.ParseAddress(src); ok && a.Mapped == d.Origin && packet.NextHeader(p) == packet.ProtoICMPv6 {
			return p
		}
		c.drop(dropRelayed, 1)
		return nil
	}
	if src.IsLinkLocalUnicast() {
		c.drop(dropLinkLocal, 1)
		return nil
	}
	if a, ok := teredo.ParseAddress(src); ok {
		// A server that left out the origin: the mapping in the source
		// stands for it, for a bubble.
		if bubble && teredo.IsGlobalUnicast(a.Mapped.Addr(), s.lab) {
			s.replyBubble(me.addr, src, a.Mapped, now)
			c.add(&c.bubblesIn, 1)
			return nil
		}
		c.drop(dropTeredoViaServer, 1)
		return nil
	}
	// A native host's packet relayed by our server: the server is that
	// host's relay.
	peers := s.peers.Load()
	if s.echoReply(peers, p, src, from, now) {
		return nil
	}
	s.flush(peers.Heard(src, from, now), from)
	return s.accept(p, bubble)
}

// accept returns p for delivery, or nil for a bubble (counted).
func (s *session) accept(p []byte, bubble bool) []byte {
	if bubble {
		s.t.c.add(&s.t.c.bubblesIn, 1)
		return nil
	}
	return p
}

// replyBubble sends a direct bubble from src to dst at to.
func (s *session) replyBubble(src, dst netip.Addr, to netip.AddrPort, now time.Time) {
	if !s.replies.allow(now) {
		s.t.c.drop(dropReplyLimited, 1)
		return
	}
	var buf [bubbleBuf]byte
	if s.write(s.appendBubble(buf[:0], src, dst), to) {
		s.t.c.add(&s.t.c.bubbleReplies, 1)
	}
}

// echoReply reports whether p answers the connectivity test running for
// src (strictly: an echo reply of exactly the test's size, identifier,
// sequence and nonce, with a correct checksum); if so the UDP source
// becomes src's trusted mapping and the packets queued for src go to it.
func (s *session) echoReply(peers *peer.List, p []byte, src netip.Addr, from netip.AddrPort, now time.Time) bool {
	e, ok := peers.Lookup(src)
	if !ok || !e.Testing || !packet.IsNonceEchoReply(p, e.Nonce) {
		return false
	}
	s.t.c.add(&s.t.c.echoPassed, 1)
	s.flush(peers.Heard(src, from, now), from)
	return true
}

// flush sends the packets that waited for a peer's mapping.
func (s *session) flush(q [][]byte, to netip.AddrPort) {
	for _, p := range q {
		if s.write(p, to) {
			s.t.c.add(&s.t.c.pktsUp, 1)
			s.t.c.add(&s.t.c.bytesUp, len(p))
		}
	}
}
