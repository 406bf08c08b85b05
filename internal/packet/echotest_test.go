package packet

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// replyTo is the answer a host sends to the echo request req, from the
// address from.
func replyTo(req []byte, from netip.Addr) []byte {
	r := append([]byte(nil), req...)
	f := from.As16()
	copy(r[24:40], r[8:24])
	copy(r[8:24], f[:])
	r[HeaderLen] = TypeEchoReply
	SetICMPv6Checksum(r)
	return r
}

func TestEchoTest(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:0:cb00:710a::1"), netip.MustParseAddr("2001:db8:c0::10")
	via := netip.MustParseAddrPort("203.0.113.10:3544")
	var e EchoTest
	// The first try is lost; the second's reply comes after a reply from
	// another source and one to the first try's nonce, both ignored.
	var reqs [][]byte
	r, err := e.Run(context.Background(), src, dst, 3, 100*time.Millisecond, func(req []byte) error {
		reqs = append(reqs, req)
		if len(reqs) == 2 {
			go func() {
				if e.Reply(replyTo(req, netip.MustParseAddr("2001:db8:c0::11")), via) {
					t.Error("a reply from another host was taken")
				}
				if e.Reply(replyTo(reqs[0], dst), via) {
					t.Error("a reply to the first try was taken during the second")
				}
				if !e.Reply(replyTo(req, dst), via) {
					t.Error("the reply was not recognised")
				}
			}()
		}
		return nil
	})
	if err != nil || r.Try != 2 || r.Via != via || r.RTT <= 0 || r.RTT > time.Second {
		t.Fatalf("Run: %+v, %v", r, err)
	}
	if Src(reqs[0]) != src || Dst(reqs[0]) != dst || HopLimit(reqs[0]) != EchoHopLimit || string(reqs[0][HeaderLen+8:]) == string(reqs[1][HeaderLen+8:]) {
		t.Errorf("requests %x, %x: want a fresh nonce each try", reqs[0], reqs[1])
	}
	if e.Reply(replyTo(reqs[1], dst), via) {
		t.Error("a reply taken after the test ended")
	}

	start := time.Now()
	if _, err := e.Run(context.Background(), src, dst, 2, 50*time.Millisecond, func([]byte) error { return nil }); !errors.Is(err, ErrNoEcho) {
		t.Errorf("no answer: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > time.Second {
		t.Errorf("no answer after %v, want 2 tries of 50ms", d)
	}
	sendErr := errors.New("no route")
	if _, err := e.Run(context.Background(), src, dst, 2, time.Second, func([]byte) error { return sendErr }); !errors.Is(err, sendErr) {
		t.Errorf("send error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Run(ctx, src, dst, 2, time.Second, func([]byte) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
