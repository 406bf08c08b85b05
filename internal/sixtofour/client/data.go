package client

import (
	"net/netip"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/sixtofour"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/udpbatch"
)

// readBatch packets are read per system call; readBuf holds one with its
// IPv4 header (a longer one is counted as oversized).
const (
	readBatch = 64
	readBuf   = 60 + sixtofour.MTU + 64
)

// sender carries the host's packets into the tunnel (hostside.Sender).
type sender struct {
	s     *session
	batch udpbatch.Batch
}

// Send encapsulates each packet for the IPv4 address its destination
// embeds, or for the relay (a native destination), in one system call.
func (x *sender) Send(pkts [][]byte) (sent, nbytes int) {
	s := x.s
	c := &s.t.c
	for _, p := range pkts {
		if !packet.WellFormed(p) {
			c.notRoutable.Add(1)
			continue
		}
		if packet.Src(p) != s.me {
			c.notOurs.Add(1)
			continue
		}
		dst := packet.Dst(p)
		if dst.IsMulticast() || dst.IsLinkLocalUnicast() || dst.IsLoopback() || dst.IsUnspecified() {
			c.notRoutable.Add(1)
			continue
		}
		v4, d := sixtofour.NextHop(dst, s.t.o.Relay, s.t.o.Lab)
		if d != sixtofour.Accept {
			c.drops[d].Add(1)
			continue
		}
		x.batch.Add(p, netip.AddrPortFrom(v4, 0))
	}
	r := x.batch.Send(s.pc)
	c.sendFailed.Add(uint64(r.Failed + r.Closed))
	c.pktsUp.Add(uint64(r.Sent))
	c.bytesUp.Add(uint64(r.Bytes))
	return r.Sent, r.Bytes
}

// read receives protocol 41 until the socket is closed: the answers to the
// echo test, and while the tunnel is up, packets for the host, checked as
// sit checks them and addressed to our 6to4 address.
func (s *session) read() error {
	c := &s.t.c
	r := udpbatch.NewReader(s.pc, readBatch, readBuf, false)
	w := tundev.NewWriter(s.l.Host(), readBatch)
	pkts, nbytes := 0, 0
	each := func(d udpbatch.Datagram) {
		c.received.Add(1)
		if d.Truncated {
			c.oversized.Add(1)
			return
		}
		o, p, drop := sixtofour.Decapsulate(d.B)
		if drop == sixtofour.Accept {
			drop = sixtofour.Inbound(o, p, s.t.o.Relay)
		}
		if drop != sixtofour.Accept {
			c.drops[drop].Add(1)
			return
		}
		if packet.Dst(p) != s.me {
			c.drops[sixtofour.DropDestinationNotOurs].Add(1)
			return
		}
		if s.echoReply(p) {
			return
		}
		if !s.up.Load() {
			c.notUp.Add(1)
			return
		}
		w.Add(p) // never full: flushed after each batch of readBatch
		pkts, nbytes = pkts+1, nbytes+len(p)
	}
	return r.Serve(each, func() {
		if pkts == 0 {
			return
		}
		if err := w.Flush(); err != nil {
			c.host.Add(uint64(pkts))
		} else {
			c.pktsDown.Add(uint64(pkts))
			c.bytesDown.Add(uint64(nbytes))
			s.l.Received(pkts, nbytes)
		}
		pkts, nbytes = 0, 0
	})
}
