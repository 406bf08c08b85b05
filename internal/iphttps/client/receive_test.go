package client

import (
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/wire"
)

// A data packet followed in the same read by a router advertisement must
// reach the TUN device at once, not wait for the next data packet.
func TestReceiveFlushesBeforeBlocking(t *testing.T) {
	ch := tuntest.NewChannelTUN()
	s := testSession(tunHost{dev: &tundev.Device{Device: ch.TUN()}})
	// An IPv6 packet with 8 bytes of payload and no next header.
	data := make([]byte, 48)
	data[0], data[5], data[6], data[7] = 0x60, 8, 59, 64
	src, dst := netip.MustParseAddr("2001:db8:c0::10").As16(), netip.MustParseAddr("2001:db8:1::2").As16()
	copy(data[8:], src[:])
	copy(data[24:], dst[:])
	ra, err := packet.BuildICMPv6(netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1"), 255, &ndp.RouterAdvertisement{CurrentHopLimit: 64})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	nd := make(chan ndp.Message, 4)
	go s.receive(wire.NewReader(pr, 0), nd)
	go pw.Write(append(append([]byte(nil), data...), ra...)) // then the stream stays open and silent

	select {
	case got := <-ch.Inbound:
		if string(got) != string(data) {
			t.Fatalf("TUN got % x, want the data packet", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the data packet was held back: receive did not flush before blocking")
	}
	select {
	case m := <-nd:
		if _, ok := m.(*ndp.RouterAdvertisement); !ok {
			t.Fatalf("link engine got %T", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the router advertisement did not reach the link engine")
	}
	select {
	case got := <-ch.Inbound:
		t.Fatalf("the router advertisement went to the TUN device too: % x", got)
	default:
	}
}

// tunHost is a Host over a test TUN device; addresses and routes go nowhere.
type tunHost struct {
	nullHost
	dev *tundev.Device
}

func (h tunHost) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return h.dev.Read(bufs, sizes, offset)
}
func (h tunHost) Write(bufs [][]byte, offset int) (int, error) { return h.dev.Write(bufs, offset) }
func (h tunHost) BatchSize() int                               { return h.dev.BatchSize() }
