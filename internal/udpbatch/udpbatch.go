// Package udpbatch gathers UDP datagrams for one sendmmsg system call
// (golang.org/x/net/ipv4's WriteBatch): the Teredo client's and the Teredo
// relay's way of sending the packets of one batch of their input.
package udpbatch

import (
	"errors"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// Batch is a list of datagrams to send. It keeps references to the packets
// added, which must stay valid until Send; it reuses its messages and the
// destination address of consecutive datagrams to the same peer, so adding
// does not allocate once the batch has grown. A Batch is used by one
// goroutine at a time.
type Batch struct {
	ms     []ipv4.Message
	lastAP netip.AddrPort
	lastUA *net.UDPAddr
}

// Add queues p for to.
func (b *Batch) Add(p []byte, to netip.AddrPort) {
	if to != b.lastAP || b.lastUA == nil {
		b.lastAP, b.lastUA = to, net.UDPAddrFromAddrPort(to)
	}
	i := len(b.ms)
	if i < cap(b.ms) {
		b.ms = b.ms[:i+1]
	} else {
		b.ms = append(b.ms, ipv4.Message{})
	}
	if len(b.ms[i].Buffers) == 0 {
		// A message of the spare capacity that was never used.
		b.ms[i].Buffers = make([][]byte, 1)
	}
	b.ms[i].Buffers[0], b.ms[i].Addr = p, b.lastUA
}

// Len is the number of datagrams queued.
func (b *Batch) Len() int { return len(b.ms) }

// Result is what Send did.
type Result struct {
	Sent, Bytes int // datagrams sent and their bytes
	Failed      int // datagrams the kernel refused
	Closed      int // datagrams not sent because the socket was closed
}

// Send writes the queued datagrams on pc, going on past a datagram the
// kernel refuses, and empties the batch.
func (b *Batch) Send(pc *ipv4.PacketConn) Result {
	var r Result
	for off := 0; off < len(b.ms); {
		n, err := pc.WriteBatch(b.ms[off:], 0)
		for _, m := range b.ms[off : off+n] {
			r.Sent++
			r.Bytes += len(m.Buffers[0])
		}
		off += n
		switch {
		case errors.Is(err, net.ErrClosed):
			r.Closed += len(b.ms) - off
			off = len(b.ms)
		case err != nil || n == 0:
			r.Failed++ // the message at off failed; go on with the next
			off++
		}
	}
	for i := range b.ms {
		b.ms[i].Buffers[0], b.ms[i].Addr = nil, nil
	}
	b.ms = b.ms[:0]
	return r
}
