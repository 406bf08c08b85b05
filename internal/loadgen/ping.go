package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
)

// pingSession is the session number in the payload of Ping's requests.
const pingSession = 1<<32 - 1

// Ping sends echo requests to o.Target like Trickle, but from a raw ICMPv6
// socket in the calling process's network namespace, outside any tunnel: the
// baseline that the tunnel's round-trip times are compared with, measured
// the same way (timestamps taken in this process). It needs CAP_NET_RAW.
func Ping(ctx context.Context, o EchoOptions, start time.Time) EchoResult {
	o, err := o.check()
	if err != nil {
		return EchoResult{Err: err}
	}
	pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return EchoResult{Err: fmt.Errorf("loadgen: raw ICMPv6 socket: %w", err)}
	}
	defer pc.Close()
	conn := pc.(*net.IPConn)
	ident := uint16(rand.Uint32())
	book := newEchoBook(o.Count)
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readErr := make(chan error, 1)
	go func() {
		stop := context.AfterFunc(rctx, func() { conn.SetReadDeadline(time.Now()) })
		defer stop()
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromIP(buf)
			if err != nil {
				if rctx.Err() != nil {
					err = nil
				}
				readErr <- err
				return
			}
			msg := buf[:n]
			// The kernel strips the IPv6 header and checks the checksum.
			if n < icmpEchoHeaderLen || msg[0] != packet.TypeEchoReply || msg[1] != 0 {
				continue
			}
			src, ok := addrFromIP(from)
			if !ok || src != o.Target {
				continue
			}
			id, seq, session, ours := parseEchoMessage(msg)
			if id == ident && ours && session == pingSession {
				book.reply(int(seq))
			}
		}
	}()

	dst := &net.IPAddr{IP: o.Target.AsSlice()}
	payload := echoPayload(pingSession, o.Payload)
	msg := make([]byte, 0, icmpEchoHeaderLen+len(payload))
	return book.exchange(ctx, o, start,
		func(seq int) { msg = appendEchoMessage(msg[:0], ident, uint16(seq), payload) }, // the kernel fills in the checksum
		func() error {
			_, err := conn.WriteToIP(msg, dst)
			return err
		},
		stopReading, readErr)
}

// addrFromIP converts a received source address.
func addrFromIP(a *net.IPAddr) (netip.Addr, bool) {
	if a == nil {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	return ip, ok
}
