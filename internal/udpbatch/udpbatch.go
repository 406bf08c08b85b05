// Package udpbatch moves UDP datagrams (and raw IPv4 packets: 6to4's
// protocol 41) in batches: many datagrams per
// system call (sendmmsg, recvmmsg through golang.org/x/net/ipv4) and, where
// the kernel offers it, many datagrams per kernel packet: UDP segmentation
// offload on send (UDP_SEGMENT: consecutive datagrams of one size to one
// destination leave as one buffer the kernel or the device cuts) and UDP
// receive offload (UDP_GRO: the kernel hands such a train over whole, and
// Reader cuts it back into its datagrams). The Teredo client and relay and
// the 6to4 client and relay send and receive through it.
package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const (
	// maxSegments is the most datagrams one send may carry with
	// UDP_SEGMENT (the kernel's UDP_MAX_SEGMENTS).
	maxSegments = 64
	// maxSegmentedBytes is the most payload one segmented send may carry:
	// an IPv4 packet's 65,535 bytes less its IPv4 and UDP headers.
	maxSegmentedBytes = 65535 - 20 - 8
	// groBuffer holds the largest train the kernel hands over with UDP_GRO.
	groBuffer = 65535
)

// Offload turns on what the kernel offers for c: segmentation on send
// (gso: the kernel knows UDP_SEGMENT) and coalescing on receive (gro:
// UDP_GRO accepted). Both are best effort: without them datagrams go one
// by one, as before the kernel had them (4.18 and 5.0).
func Offload(c *net.UDPConn) (gso, gro bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, false
	}
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return gso, gro
}

// Batch is a list of datagrams to send. It keeps references to the packets
// added, which must stay valid until Send; it reuses its messages and the
// destination address of consecutive datagrams to the same peer, so adding
// does not allocate once the batch has grown. A Batch is used by one
// goroutine at a time.
type Batch struct {
	// GSO gathers consecutive datagrams of one size to one destination
	// into one message the kernel segments (set it from Offload). Send
	// clears it when the path refuses segmentation.
	GSO bool
	// RawIP makes the batch's destinations IP addresses (*net.IPAddr) for
	// a raw IP socket; the port of each destination is ignored.
	RawIP bool

	ms     []ipv4.Message
	meta   []meta // of each message
	n      int    // datagrams queued
	lastAP netip.AddrPort
	lastUA net.Addr
	single []ipv4.Message // one segmented message resent datagram by datagram
}

// Add queues p for to.
func (b *Batch) Add(p []byte, to netip.AddrPort) {
	b.n++
	if b.GSO && b.appendSegment(p, to) {
		return
	}
	i := len(b.ms)
	if i < cap(b.ms) {
		b.ms = b.ms[:i+1]
	} else {
		b.ms = append(b.ms, ipv4.Message{})
	}
	if i < cap(b.meta) {
		b.meta = b.meta[:i+1]
	} else {
		b.meta = append(b.meta, meta{})
	}
	mt := &b.meta[i]
	switch {
	case to == b.lastAP && b.lastUA != nil:
	case to == mt.to && mt.ua != nil:
		// This message went to the same peer in an earlier batch.
		b.lastAP, b.lastUA = to, mt.ua
	default:
		b.lastAP, b.lastUA = to, b.addr(to)
	}
	mt.to, mt.ua = to, b.lastUA
	m := &b.ms[i]
	if cap(m.Buffers) == 0 {
		// A message of the spare capacity that was never used.
		m.Buffers = make([][]byte, 1)
	}
	m.Buffers = m.Buffers[:1]
	m.Buffers[0], m.Addr, m.OOB = p, b.lastUA, nil
	mt.bytes = len(p)
}

// meta is what a Batch knows of a message besides what the kernel needs.
type meta struct {
	bytes int    // payload bytes
	oob   []byte // the control buffer (the segment size), kept for reuse
	// to and ua are its destination, kept so that a batch sending to the
	// same peers as the one before does not allocate their addresses.
	to netip.AddrPort
	ua net.Addr
}

// addr is to as the socket takes it.
func (b *Batch) addr(to netip.AddrPort) net.Addr {
	if b.RawIP {
		return &net.IPAddr{IP: to.Addr().AsSlice()}
	}
	return net.UDPAddrFromAddrPort(to)
}

// appendSegment adds p to the last message when the kernel can cut it off
// again: same destination, the message's datagrams all of p's size or
// larger than p and p the last one, and within the kernel's limits.
func (b *Batch) appendSegment(p []byte, to netip.AddrPort) bool {
	i := len(b.ms) - 1
	if i < 0 || to != b.lastAP {
		return false
	}
	m := &b.ms[i]
	k := len(m.Buffers)
	seg := len(m.Buffers[0])
	if k >= maxSegments || len(m.Buffers[k-1]) != seg || len(p) > seg || len(p) == 0 ||
		b.meta[i].bytes+len(p) > maxSegmentedBytes {
		return false
	}
	m.Buffers = append(m.Buffers, p)
	b.meta[i].bytes += len(p)
	return true
}

// Len is the number of datagrams queued.
func (b *Batch) Len() int { return b.n }

// Result is what Send did.
type Result struct {
	Sent, Bytes int // datagrams sent and their bytes
	Failed      int // datagrams the kernel refused
	Closed      int // datagrams not sent because the socket was closed
	// GSOOff is set when the path refused a segmented send: the batch
	// went on without segmentation (and Batch.GSO is now false).
	GSOOff bool
}

// Send writes the queued datagrams on pc, going on past a datagram the
// kernel refuses, and empties the batch.
func (b *Batch) Send(pc *ipv4.PacketConn) Result {
	var r Result
	for i := range b.ms {
		if len(b.ms[i].Buffers) > 1 {
			b.meta[i].oob = segmentSize(b.meta[i].oob, len(b.ms[i].Buffers[0]))
			b.ms[i].OOB = b.meta[i].oob
		}
	}
	for off := 0; off < len(b.ms); {
		n, err := pc.WriteBatch(b.ms[off:], 0)
		for j := off; j < off+n; j++ {
			r.Sent += len(b.ms[j].Buffers)
			r.Bytes += b.meta[j].bytes
		}
		off += n
		switch {
		case errors.Is(err, net.ErrClosed):
			for j := off; j < len(b.ms); j++ {
				r.Closed += len(b.ms[j].Buffers)
			}
			off = len(b.ms)
		case err != nil && len(b.ms[off].Buffers) > 1 && errors.Is(err, syscall.EIO):
			// The device cannot checksum segmented UDP (the kernel's
			// answer is EIO): no more segmentation on this batch's path.
			b.GSO, r.GSOOff = false, true
			b.sendOneByOne(pc, off, &r)
			off++
		case err != nil || n == 0:
			r.Failed += len(b.ms[off].Buffers) // this message failed; go on with the next
			off++
		}
	}
	b.reset()
	return r
}

// sendOneByOne sends the datagrams of segmented message i separately.
func (b *Batch) sendOneByOne(pc *ipv4.PacketConn, i int, r *Result) {
	m := &b.ms[i]
	b.single = b.single[:0]
	for _, p := range m.Buffers {
		b.single = append(b.single, ipv4.Message{Buffers: [][]byte{p}, Addr: m.Addr})
	}
	for off := 0; off < len(b.single); {
		n, err := pc.WriteBatch(b.single[off:], 0)
		for _, s := range b.single[off : off+n] {
			r.Sent++
			r.Bytes += len(s.Buffers[0])
		}
		off += n
		if errors.Is(err, net.ErrClosed) {
			r.Closed += len(b.single) - off
			break
		}
		if err != nil || n == 0 {
			r.Failed++
			off++
		}
	}
	clear(b.single)
}

// reset empties the batch, dropping its references to the packets.
func (b *Batch) reset() {
	for i := range b.ms {
		clear(b.ms[i].Buffers)
		b.ms[i].Buffers = b.ms[i].Buffers[:1]
		b.ms[i].Addr, b.ms[i].OOB = nil, nil
	}
	b.ms, b.meta = b.ms[:0], b.meta[:0]
	b.n = 0
}

// SocketBuffer is the receive and send buffer a bulk UDP socket wants: a
// few milliseconds of a multi-gigabit flow and room for a burst of several
// thousand datagrams, so that bulk traffic or a flood does not make the
// kernel drop honest datagrams before the reader gets to them. Measured on
// the Teredo relay: with 1 MiB, trains of coalesced datagrams overflowed it
// (hundreds of drops, tens of thousands of inner TCP retransmissions in
// 5 s at 3-4 Gbit/s); with 4 MiB, none.
const SocketBuffer = 4 << 20

// SetBuffers sizes c's receive and send buffers to size bytes each: past
// the administrator's net.core.{r,w}mem_max when the process may
// (CAP_NET_ADMIN: SO_RCVBUFFORCE), else as far as that limit allows.
func SetBuffers(c syscall.Conn, size int) {
	rc, err := c.SyscallConn()
	if err == nil {
		_ = rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
			}
		})
	}
}
