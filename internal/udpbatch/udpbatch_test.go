package udpbatch

import (
	"encoding/binary"
	"unsafe"

	"bytes"
	"golang.org/x/sys/unix"

	"github.com/iphttps/iphttps/internal/testenv"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// TestSend sends batches of growing size to two receivers on loopback and
// checks every datagram arrives at its destination with its bytes: the
// batch's spare capacity, never used when it grew, is reused correctly
// (it once crashed the Teredo client under bulk traffic).
func TestSend(t *testing.T) {
	from, a, b := listen(t), listen(t), listen(t)
	pc := ipv4.NewPacketConn(from)
	var batch Batch
	for round, n := range []int{5, 12, 3, 30} {
		for i := range n {
			to := a
			if i%3 == 0 {
				to = b
			}
			batch.Add([]byte{byte(round), byte(i)}, addrOf(to))
		}
		if batch.Len() != n {
			t.Fatalf("round %d: %d queued, want %d", round, batch.Len(), n)
		}
		r := batch.Send(pc)
		if r.Sent != n || r.Bytes != 2*n || r.Failed != 0 || r.Closed != 0 || batch.Len() != 0 {
			t.Fatalf("round %d: %+v, %d left", round, r, batch.Len())
		}
		for i := range n {
			to := a
			if i%3 == 0 {
				to = b
			}
			buf := make([]byte, 16)
			to.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, src, err := to.ReadFromUDPAddrPort(buf)
			if err != nil || !bytes.Equal(buf[:m], []byte{byte(round), byte(i)}) || src != addrOf(from) {
				t.Fatalf("round %d datagram %d: %x from %v, %v", round, i, buf[:m], src, err)
			}
		}
	}
}

func TestSendClosed(t *testing.T) {
	from, to := listen(t), listen(t)
	pc := ipv4.NewPacketConn(from)
	var batch Batch
	batch.Add([]byte{1}, addrOf(to))
	batch.Add([]byte{2}, addrOf(to))
	from.Close()
	if r := batch.Send(pc); r.Sent != 0 || r.Closed != 2 || batch.Len() != 0 {
		t.Fatalf("closed socket: %+v", r)
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	var batch Batch
	to := netip.MustParseAddrPort("198.51.100.2:40000")
	p := make([]byte, 1280)
	for range 64 {
		batch.Add(p, to)
	}
	batch.reset()
	if n := testing.AllocsPerRun(100, func() {
		for range 64 {
			batch.Add(p, to)
		}
		batch.reset()
	}); n != 0 {
		t.Fatalf("%v allocations per 64 datagrams", n)
	}
}

func TestAddSegmentedDoesNotAllocate(t *testing.T) {
	batch := Batch{GSO: true}
	a := netip.MustParseAddrPort("198.51.100.2:40000")
	b := netip.MustParseAddrPort("198.51.100.3:40000")
	p := make([]byte, 1280)
	fill := func() {
		for i := range 200 {
			to := a
			if i%50 == 49 {
				to = b
			}
			batch.Add(p, to)
		}
	}
	fill()
	if got := len(batch.ms); got >= 20 {
		t.Fatalf("200 datagrams of one size to 2 peers made %d messages, want them gathered", got)
	}
	batch.reset()
	if n := testing.AllocsPerRun(100, func() { fill(); batch.reset() }); n != 0 {
		t.Fatalf("%v allocations per 200 datagrams", n)
	}
}

// payload is datagram i of a test: its index in the first two bytes, then
// a pattern, n bytes in all.
func payload(i, n int) []byte {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i*7 + j)
	}
	p[0], p[1] = byte(i>>8), byte(i)
	return p
}

// TestSendSegmented sends trains of equal datagrams (each ending with a
// shorter one) with segmentation on, interleaved between two receivers
// that have no receive offload: every datagram arrives on its own, whole,
// in order, and the batch used fewer messages than datagrams.
func TestSendSegmented(t *testing.T) {
	from, a, b := listen(t), listen(t), listen(t)
	gso, _ := Offload(from)
	if !gso {
		t.Fatal("the kernel has no UDP_SEGMENT (Linux 4.18 and later have it)")
	}
	pc := ipv4.NewPacketConn(from)
	batch := Batch{GSO: true}
	var want [2][][]byte
	i := 0
	for _, train := range []struct {
		to        int
		n, size   int
		lastShort bool
	}{{0, 10, 1280, true}, {1, 3, 1000, false}, {0, 70, 1200, false}, {1, 1, 90, false}, {0, 5, 1280, true}} {
		for k := range train.n {
			size := train.size
			if train.lastShort && k == train.n-1 {
				size = 333
			}
			p := payload(i, size)
			i++
			to := []*net.UDPConn{a, b}[train.to]
			batch.Add(p, addrOf(to))
			want[train.to] = append(want[train.to], p)
		}
	}
	msgs := len(batch.ms)
	if msgs >= i/4 {
		t.Fatalf("%d datagrams in %d messages: not gathered", i, msgs)
	}
	total := 0
	for _, w := range want {
		for _, p := range w {
			total += len(p)
		}
	}
	if r := batch.Send(pc); r.Sent != i || r.Bytes != total || r.Failed != 0 || r.GSOOff {
		t.Fatalf("sent %+v, want %d datagrams, %d bytes", r, i, total)
	}
	for k, to := range []*net.UDPConn{a, b} {
		buf := make([]byte, 2048)
		for j, p := range want[k] {
			to.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, _, err := to.ReadFromUDPAddrPort(buf)
			if err != nil || !bytes.Equal(buf[:m], p) {
				t.Fatalf("receiver %d datagram %d: %d bytes (%x...), want %d (%x...), %v", k, j, m, buf[:min(m, 4)], len(p), p[:4], err)
			}
		}
	}
}

// TestReaderCoalesced sends a train with segmentation to a socket with
// receive offload: the kernel hands it over in few messages and the
// Reader gives back every datagram, whole and in order.
func TestReaderCoalesced(t *testing.T) {
	from, to := listen(t), listen(t)
	if gso, _ := Offload(from); !gso {
		t.Fatal("no UDP_SEGMENT")
	}
	_, gro := Offload(to)
	if !gro {
		t.Fatal("no UDP_GRO (Linux 5.0 and later have it)")
	}
	batch := Batch{GSO: true}
	var want [][]byte
	for i := range 40 {
		size := 1000
		if i == 39 {
			size = 10
		}
		p := payload(i, size)
		want = append(want, p)
		batch.Add(p, addrOf(to))
	}
	if r := batch.Send(ipv4.NewPacketConn(from)); r.Sent != 40 {
		t.Fatalf("sent %+v", r)
	}
	rd := NewReader(ipv4.NewPacketConn(to), 8, 2048, true)
	var got [][]byte
	for len(got) < len(want) {
		to.SetReadDeadline(time.Now().Add(2 * time.Second))
		if err := rd.Read(func(d Datagram) {
			if d.Truncated || d.From != addrOf(from) || d.At.IsZero() || time.Since(d.At) > 5*time.Second {
				t.Errorf("datagram %d: %+v", len(got), d)
			}
			got = append(got, bytes.Clone(d.B))
		}); err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("datagram %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
		}
	}
	if rd.Coalesced == 0 {
		t.Fatal("40 datagrams arrived one by one: the kernel did not coalesce them")
	}
}

// TestReaderTruncated: a datagram over the reader's maximum is reported
// truncated, with and without receive offload; the next one is whole.
func TestReaderTruncated(t *testing.T) {
	for _, gro := range []bool{false, true} {
		from, to := listen(t), listen(t)
		if gro {
			if _, ok := Offload(to); !ok {
				t.Fatal("no UDP_GRO")
			}
		}
		rd := NewReader(ipv4.NewPacketConn(to), 4, 100, gro)
		for _, n := range []int{150, 100} {
			if _, err := from.WriteToUDPAddrPort(payload(n, n), addrOf(to)); err != nil {
				t.Fatal(err)
			}
		}
		var got []Datagram
		for len(got) < 2 {
			to.SetReadDeadline(time.Now().Add(2 * time.Second))
			if err := rd.Read(func(d Datagram) { got = append(got, Datagram{B: bytes.Clone(d.B), Truncated: d.Truncated}) }); err != nil {
				t.Fatal(err)
			}
		}
		if !got[0].Truncated || got[0].B != nil || got[1].Truncated || !bytes.Equal(got[1].B, payload(100, 100)) {
			t.Fatalf("gro=%v: got %+v", gro, got)
		}
	}
}

func TestGROSize(t *testing.T) {
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], 1280)
	if got := groSize(oob); got != 1280 {
		t.Fatalf("groSize = %d, want 1280", got)
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"short":       oob[:4],
		"long length": func() []byte { c := bytes.Clone(oob); (*unix.Cmsghdr)(unsafe.Pointer(&c[0])).SetLen(200); return c }(),
		"zero length": func() []byte { c := bytes.Clone(oob); (*unix.Cmsghdr)(unsafe.Pointer(&c[0])).SetLen(0); return c }(),
		"other type": func() []byte {
			c := bytes.Clone(oob)
			(*unix.Cmsghdr)(unsafe.Pointer(&c[0])).Type = unix.UDP_SEGMENT
			return c
		}(),
	} {
		if got := groSize(b); got != 0 {
			t.Errorf("%s: groSize = %d, want 0", name, got)
		}
	}
	seg := segmentSize(nil, 1280)
	if sh := (*unix.Cmsghdr)(unsafe.Pointer(&seg[0])); sh.Level != unix.IPPROTO_UDP || sh.Type != unix.UDP_SEGMENT ||
		binary.NativeEndian.Uint16(seg[unix.CmsgLen(0):]) != 1280 {
		t.Fatalf("segmentSize: %x", seg)
	}
}

// TestRawIP sends protocol-41 packets through a raw IPv4 socket in one
// batch and reads them back with a Reader: each arrives with its IPv4
// header (protocol 41, the payload after it) from the sending address.
func TestRawIP(t *testing.T) {
	testenv.RequireRoot(t, "raw IP sockets")
	c, err := net.ListenIP("ip4:41", &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc := ipv4.NewPacketConn(c)
	batch := Batch{RawIP: true}
	to := netip.MustParseAddrPort("127.0.0.1:0")
	var want [][]byte
	for i := range 5 {
		p := payload(i, 100+i)
		want = append(want, p)
		batch.Add(p, to)
	}
	if r := batch.Send(pc); r.Sent != 5 || r.Failed != 0 {
		t.Fatalf("sent %+v", r)
	}
	rd := NewReader(pc, 8, 2048, false)
	var got [][]byte
	for len(got) < len(want) {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if err := rd.Read(func(d Datagram) {
			if d.From != to || len(d.B) < 20 || d.B[9] != 41 {
				t.Errorf("datagram %+v", d)
				return
			}
			got = append(got, bytes.Clone(d.B[20:]))
		}); err != nil {
			t.Fatalf("after %d: %v", len(got), err)
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("packet %d: %x, want %x", i, got[i], want[i])
		}
	}
}
