package udpbatch

import (
	"bytes"
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
	batch.ms = batch.ms[:0]
	if n := testing.AllocsPerRun(100, func() {
		for range 64 {
			batch.Add(p, to)
		}
		batch.ms = batch.ms[:0]
	}); n != 0 {
		t.Fatalf("%v allocations per 64 datagrams", n)
	}
}
