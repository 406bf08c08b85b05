package loadgen

import (
	"net/netip"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/wire"
)

func TestEchoRequestAndReply(t *testing.T) {
	src := netip.MustParseAddr("2001:db8:6::abcd")
	req := buildEchoRequest(src, testTarget, 0x1234, 0, echoPayload(77, 56))
	if err := wire.CheckPacket(req); err != nil {
		t.Fatal(err)
	}
	if len(req) != 40+8+56 || !packet.VerifyICMPv6Checksum(req) || packet.HopLimit(req) != echoHopLimit {
		t.Fatalf("bad request: len %d, checksum ok %v", len(req), packet.VerifyICMPv6Checksum(req))
	}
	setEchoSeq(req, 513)
	if !packet.VerifyICMPv6Checksum(req) {
		t.Fatal("checksum wrong after setEchoSeq")
	}
	if _, ok := parseEchoReply(req); ok {
		t.Fatal("a request parsed as a reply")
	}

	reply := append([]byte(nil), req...)
	copy(reply[8:24], req[24:40])
	copy(reply[24:40], req[8:24])
	reply[40] = packet.TypeEchoReply
	packet.SetICMPv6Checksum(reply)
	r, ok := parseEchoReply(reply)
	if !ok || r.src != testTarget || r.dst != src || r.ident != 0x1234 || r.seq != 513 || r.session != 77 || !r.hasOurMagic || !r.checksumGood {
		t.Fatalf("parsed %+v, %v", r, ok)
	}
	reply[len(reply)-1] ^= 0xff
	if r, ok := parseEchoReply(reply); !ok || r.checksumGood {
		t.Fatal("corrupted reply passed the checksum")
	}

	// Someone else's ping: no magic.
	other := buildEchoRequest(testTarget, src, 1, 1, make([]byte, 56))
	other[40] = packet.TypeEchoReply
	packet.SetICMPv6Checksum(other)
	if r, ok := parseEchoReply(other); !ok || r.hasOurMagic {
		t.Fatalf("foreign reply: %+v %v", r, ok)
	}
	// Truncated and non-ICMP packets.
	if _, ok := parseEchoReply(reply[:44]); ok {
		t.Fatal("truncated packet parsed")
	}
	udp := append([]byte(nil), reply...)
	udp[6] = 17
	if _, ok := parseEchoReply(udp); ok {
		t.Fatal("UDP parsed as echo reply")
	}
	if p := echoPayload(1, 3); len(p) != minEchoPayload {
		t.Fatalf("payload of %d bytes, want the minimum %d", len(p), minEchoPayload)
	}
}

func TestEchoBook(t *testing.T) {
	b := newEchoBook(4)
	b.stamp(0)
	b.stamp(1)
	time.Sleep(2 * time.Millisecond)
	b.reply(0)
	b.reply(0) // duplicate
	b.reply(2) // not sent
	b.reply(9) // out of range
	b.reply(1)
	r := b.res
	if r.Received != 2 || r.Duplicates != 1 || r.Unmatched != 2 || len(r.RTTs) != 2 || r.RTTs[0] < 2*time.Millisecond {
		t.Fatalf("%+v", r)
	}
	if b.got.Load() != 2 {
		t.Fatalf("got %d", b.got.Load())
	}
}

func TestPace(t *testing.T) {
	var at []time.Time
	start := time.Now()
	n, err := pace(t.Context(), start, 10*time.Millisecond, 5, func(int) error {
		at = append(at, time.Now())
		return nil
	})
	if n != 5 || err != nil || len(at) != 5 {
		t.Fatalf("pace sent %d, %v", n, err)
	}
	if span := at[4].Sub(at[0]); span < 35*time.Millisecond || span > 2*time.Second {
		t.Fatalf("5 sends at 10ms took %v", span)
	}
	if at[0].Sub(start) > 20*time.Millisecond+time.Second {
		t.Fatalf("first send %v after start", at[0].Sub(start))
	}
}

func TestDist(t *testing.T) {
	if d := NewDist(nil); d.N != 0 || d.P99 != 0 {
		t.Fatalf("empty: %+v", d)
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := NewDist(ds)
	if d.N != 100 || d.P50 != 50 || d.P90 != 90 || d.P99 != 99 || d.Max != 100 || d.Mean != 50.5 {
		t.Fatalf("%+v", d)
	}
	one := []time.Duration{7 * time.Millisecond}
	if p := Percentile(one, 99); p != 7*time.Millisecond {
		t.Fatalf("p99 of one value: %v", p)
	}
	if p := Percentile([]time.Duration{1, 2}, 50); p != 1 {
		t.Fatalf("p50 of two: %v", p)
	}
}
