// Package probe holds the 6to4 client's tests (docs/6to4.md, "The
// client") as functions that need no host: the client runs them before it
// configures anything and again while the tunnel is up, and `iphttps
// diagnose` runs them to tell why 6to4 would not carry traffic. One copy
// of each:
//
//   - Local and sixtofour.CheckPublic: the range test;
//   - Mapping: the mapping test, a Teredo router solicitation to the
//     relay's UDP port 3544;
//   - Reachability (and Reach, which reads the socket itself): the
//     reachability test, a nonce echo over protocol 41.
package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/sixtofour"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/winerr"
)

// The tests' budgets: each exchange waits Timeout; the reachability test
// tries Tries times (as Teredo's tests do).
const (
	Timeout = 2 * time.Second
	Tries   = 3
)

// Errors of the tests, each wrapped with detail and a Windows code; tell
// them apart with errors.Is.
var (
	// ErrBehindNAT: the mapping test's Teredo server sees another address
	// than the local one.
	ErrBehindNAT = errors.New("behind a NAT")
	// ErrNoEcho: no echo came back over protocol 41.
	ErrNoEcho = packet.ErrNoEcho
	// ErrRawSocket: the raw protocol-41 socket cannot be opened; with
	// syscall.EPERM too when CAP_NET_RAW is missing.
	ErrRawSocket = errors.New("cannot open a raw socket for protocol 41")
)

// Local is the IPv4 address the kernel uses towards relay: the address
// the range test checks and the 6to4 address is made from. No packet is
// sent.
func Local(relay netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay, 9)))
	if err != nil {
		return netip.Addr{}, winerr.Errorf(winerr.Classify(err), "6to4: no route to the relay %v: %w", relay, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// MappingResult is what the mapping test found.
type MappingResult struct {
	// Server is the Teredo server asked: the relay's UDP port 3544.
	Server netip.AddrPort
	// Ran is true when a Teredo server answered; Seen is then the address
	// and port it saw this host at (the origin indication), RTT the
	// exchange's round trip.
	Ran  bool
	Seen netip.AddrPort
	RTT  time.Duration
	// NotRun says why the test did not run (no Teredo server answered,
	// or the socket failed): the reachability test decides alone.
	NotRun string
}

// Mapping is the mapping test: it asks the relay's Teredo server (UDP
// 3544; a DirectAccess server is both) which address it sees this host at,
// with a Teredo router solicitation whose advertisement carries the origin
// indication. Another address than local is a NAT, where 6to4 cannot work:
// the error wraps ErrBehindNAT, code 0x2743. A server that does not answer
// within Timeout leaves the test not run (nil error, Ran false). ctx's end
// returns ctx's error.
func Mapping(ctx context.Context, local, relay netip.Addr) (MappingResult, error) {
	m := MappingResult{Server: netip.AddrPortFrom(relay, teredo.Port)}
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(m.Server))
	if err != nil {
		m.NotRun = err.Error()
		return m, nil
	}
	defer c.Close()
	var nonce [teredo.NonceLen]byte
	rand.Read(nonce[:])
	start := time.Now()
	if _, err := c.Write(teredo.AppendRS(nil, nonce, false)); err != nil {
		m.NotRun = err.Error()
		return m, nil
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	c.SetReadDeadline(start.Add(Timeout))
	buf := make([]byte, 2048)
	for {
		n, err := c.Read(buf)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return m, ctx.Err()
			case errors.Is(err, os.ErrDeadlineExceeded):
				m.NotRun = fmt.Sprintf("no Teredo server answered at %v within %v", m.Server, Timeout)
			default: // refused: nothing listens there
				m.NotRun = fmt.Sprintf("no Teredo server at %v (%v)", m.Server, err)
			}
			return m, nil
		}
		d, err := teredo.Parse(buf[:n])
		if err != nil {
			continue
		}
		adv, err := teredo.ParseRA(d, nonce, teredo.RSSource(false))
		if err != nil {
			continue
		}
		m.Ran, m.Seen, m.RTT = true, adv.Mapping, time.Since(start)
		if adv.Mapping.Addr() != local {
			return m, winerr.Errorf(winerr.NetUnreach, "6to4: %w: the server %v sees this host as %v, but its address is %v (a public-looking address behind a NAT: protocol 41 cannot come back)",
				ErrBehindNAT, relay, adv.Mapping.Addr(), local)
		}
		return m, nil
	}
}

// Listen opens the raw protocol-41 socket bound to local: it then receives
// only what is addressed to this host's 6to4 side. It needs CAP_NET_RAW;
// the error wraps ErrRawSocket (and syscall.EPERM without the capability).
func Listen(local netip.Addr) (*net.IPConn, error) {
	c, err := net.ListenIP("ip4:41", &net.IPAddr{IP: local.AsSlice()})
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			return nil, winerr.Errorf(winerr.Classify(err), "6to4: %w: it needs CAP_NET_RAW: %w", ErrRawSocket, err)
		}
		return nil, winerr.Errorf(winerr.Classify(err), "6to4: %w on %v: %w", ErrRawSocket, local, err)
	}
	return c, nil
}

// Reachability is the reachability test: an ICMPv6 echo with a random
// nonce from our 6to4 address to the relay's, over protocol 41, answered
// within Timeout, up to Tries times. The socket's reader passes what may
// be the answer to Reply. The zero value is ready.
type Reachability struct {
	echo packet.EchoTest
}

// Reached is a passed reachability test.
type Reached struct {
	// From is the relay's 6to4 address, which answered.
	From netip.Addr
	Try  int
	RTT  time.Duration
}

// Run runs the test on conn (the raw protocol-41 socket) from local's 6to4
// address to relay's. The error wraps ErrNoEcho (0x274c) when nothing came
// back, or the send's error; ctx's end returns ctx's error.
func (r *Reachability) Run(ctx context.Context, conn *net.IPConn, local, relay netip.Addr) (Reached, error) {
	relay6 := sixtofour.Address(relay)
	to := &net.IPAddr{IP: relay.AsSlice()}
	res, err := r.echo.Run(ctx, sixtofour.Address(local), relay6, Tries, Timeout, func(req []byte) error {
		_, err := conn.WriteToIP(req, to)
		return err
	})
	switch {
	case err == nil:
		return Reached{From: relay6, Try: res.Try, RTT: res.RTT}, nil
	case ctx.Err() != nil:
		return Reached{}, ctx.Err()
	case errors.Is(err, ErrNoEcho):
		return Reached{}, winerr.Errorf(winerr.TimedOut, "6to4: %w from the relay's 6to4 address %v to %d echoes over protocol 41 (%v each): protocol 41 is blocked or dropped on the path",
			err, relay6, Tries, Timeout)
	}
	return Reached{}, winerr.Errorf(winerr.Classify(err), "6to4: cannot send protocol 41 to %v: %w", relay, err)
}

// Reply reports whether p, an IPv6 packet that came in protocol 41 from
// the relay and passed sixtofour.Inbound, answers the test in flight (and
// ends it if so).
func (r *Reachability) Reply(p []byte) bool { return r.echo.Reply(p, netip.AddrPort{}) }

// Reach runs the reachability test on conn, a socket nobody else reads: it
// reads the answers itself, checked as the client checks what it
// receives (sixtofour.Decapsulate, sixtofour.Inbound, addressed to our
// 6to4 address).
func Reach(ctx context.Context, conn *net.IPConn, local, relay netip.Addr) (Reached, error) {
	var r Reachability
	me := sixtofour.Address(local)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			// ReadMsgIP keeps the IPv4 header, which Decapsulate checks.
			n, _, _, _, err := conn.ReadMsgIP(buf, nil)
			if err != nil {
				return // the deadline below, or a dead socket: no answer then
			}
			o, p, drop := sixtofour.Decapsulate(buf[:n])
			if drop == sixtofour.Accept && sixtofour.Inbound(o, p, relay) == sixtofour.Accept && packet.Dst(p) == me {
				r.Reply(p)
			}
		}
	}()
	res, err := r.Run(ctx, conn, local, relay)
	conn.SetReadDeadline(time.Now()) // ends the reader
	<-done
	conn.SetReadDeadline(time.Time{})
	return res, err
}
