package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Reader receives datagrams in batches (recvmmsg) from a UDP socket or a
// raw IP socket (whose datagrams start with their IP header; From then has
// port 0) and, on a UDP socket with
// UDP_GRO on, cuts the trains the kernel coalesced back into datagrams. It
// is used by one goroutine.
type Reader struct {
	pc  *ipv4.PacketConn
	ms  []ipv4.Message
	max int
	// Coalesced counts the messages that carried more than one datagram.
	Coalesced uint64
}

// NewReader reads from pc up to batch messages per call. Datagrams longer
// than maxDatagram are reported truncated. With gro (Offload's answer), each
// message has room for a whole train.
func NewReader(pc *ipv4.PacketConn, batch, maxDatagram int, gro bool) *Reader {
	size := maxDatagram + 1 // a longer datagram sets MSG_TRUNC
	if gro {
		size = groBuffer
	}
	r := &Reader{pc: pc, ms: make([]ipv4.Message, batch), max: maxDatagram}
	for i := range r.ms {
		r.ms[i].Buffers = [][]byte{make([]byte, size)}
		if gro {
			r.ms[i].OOB = make([]byte, unix.CmsgSpace(4))
		}
	}
	return r
}

// Datagram is one received datagram; B is only valid until the next Read.
type Datagram struct {
	B    []byte
	From netip.AddrPort // IPv4 source (never IPv4-mapped)
	// Truncated is set for a datagram longer than the reader's maximum
	// (B then holds none of it).
	Truncated bool
	// At is when the receive call returned (one clock read per batch).
	At time.Time
}

// Read waits for datagrams and calls fn for each, in order. It returns the
// socket's error (net.ErrClosed once closed).
func (r *Reader) Read(fn func(Datagram)) error {
	n, err := r.pc.ReadBatch(r.ms, 0)
	if err != nil {
		return err
	}
	at := time.Now()
	for i := range n {
		m := &r.ms[i]
		var from netip.AddrPort
		switch a := m.Addr.(type) {
		case *net.UDPAddr:
			from = a.AddrPort()
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		case *net.IPAddr: // a raw IP socket: the datagram starts with the IP header
			ip, _ := netip.AddrFromSlice(a.IP)
			from = netip.AddrPortFrom(ip.Unmap(), 0)
		default:
			continue
		}
		b := m.Buffers[0][:m.N]
		if m.Flags&unix.MSG_TRUNC != 0 {
			fn(Datagram{From: from, Truncated: true, At: at})
			continue
		}
		seg := groSize(m.OOB[:m.NN])
		if seg <= 0 || seg >= len(b) {
			r.deliver(fn, b, from, at)
			continue
		}
		r.Coalesced++
		for len(b) > 0 {
			d := b[:min(seg, len(b))]
			b = b[len(d):]
			r.deliver(fn, d, from, at)
		}
	}
	return nil
}

func (r *Reader) deliver(fn func(Datagram), b []byte, from netip.AddrPort, at time.Time) {
	if len(b) > r.max {
		fn(Datagram{From: from, Truncated: true, At: at})
		return
	}
	fn(Datagram{B: b, From: from, At: at})
}

// Serve reads until the socket is closed: fn for each datagram, then
// batchDone after each receive call (where a reader writes what it
// gathered). It returns nil once the socket is closed, else the error.
func (r *Reader) Serve(fn func(Datagram), batchDone func()) error {
	for {
		if err := r.Read(fn); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		batchDone()
	}
}
