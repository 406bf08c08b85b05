package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/winerr"
)

// mappingTest asks the relay's Teredo server (UDP 3544) which address it
// sees this host at: a Teredo router solicitation, whose advertisement
// carries the origin indication. Another address than the local one is a
// NAT, where 6to4 cannot work. A server that does not answer (not a Teredo
// server) leaves the test not run: the reachability test decides.
func (s *session) mappingTest(ctx context.Context) error {
	server := netip.AddrPortFrom(s.t.o.Relay, teredo.Port)
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.local, 0)), net.UDPAddrFromAddrPort(server))
	if err != nil {
		s.testResult("mapping", fmt.Sprintf("not run (%v)", err))
		return nil
	}
	defer c.Close()
	nonce := newNonce()
	if _, err := c.Write(teredo.AppendRS(nil, nonce, false)); err != nil {
		s.testResult("mapping", fmt.Sprintf("not run (%v)", err))
		return nil
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 2048)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.testResult("mapping", fmt.Sprintf("not run (no Teredo server answered at %v within %v)", server, testTimeout))
			return nil
		}
		d, err := teredo.Parse(buf[:n])
		if err != nil {
			continue
		}
		adv, err := teredo.ParseRA(d, nonce, teredo.RSSource(false))
		if err != nil {
			continue
		}
		if adv.Mapping.Addr() != s.local {
			s.t.c.testsFailed.Add(1)
			return winerr.Errorf(winerr.NetUnreach, "6to4: behind a NAT: the server %v sees this host as %v, but its address is %v (a public-looking address behind a NAT: protocol 41 cannot come back)",
				s.t.o.Relay, adv.Mapping.Addr(), s.local)
		}
		s.t.c.testsPassed.Add(1)
		s.testResult("mapping", fmt.Sprintf("passed (the Teredo server at %v sees %v)", s.t.o.Relay, adv.Mapping.Addr()))
		return nil
	}
}

// errNoEcho is the reachability test's failure.
var errNoEcho = errors.New("no answer")

// reachabilityTest sends an ICMPv6 echo from our 6to4 address to the
// relay's over protocol 41 and waits for the answer, testTries times.
func (s *session) reachabilityTest(ctx context.Context) error {
	for try := 1; try <= testTries; try++ {
		nonce := newNonce()
		s.pending.Store(&nonce)
		start := time.Now()
		echo := packet.AppendNonceEcho(nil, s.me, s.relay6, echoHopLimit, nonce)
		if _, err := s.conn.WriteToIP(echo, &net.IPAddr{IP: s.t.o.Relay.AsSlice()}); err != nil {
			s.pending.Store(nil)
			s.t.c.testsFailed.Add(1)
			return winerr.Errorf(winerr.Classify(err), "6to4: cannot send protocol 41 to %v: %w", s.t.o.Relay, err)
		}
		timer := time.NewTimer(testTimeout)
		select {
		case <-ctx.Done():
			timer.Stop()
			s.pending.Store(nil)
			return ctx.Err()
		case <-s.echoed:
			timer.Stop()
			rtt := time.Since(start)
			s.t.c.testsPassed.Add(1)
			s.testResult("reachability", fmt.Sprintf("passed (echo from %v in %v, try %d)", s.relay6, rtt.Round(time.Microsecond), try))
			return nil
		case <-timer.C:
			s.pending.Store(nil)
		}
	}
	s.t.c.testsFailed.Add(1)
	return winerr.Errorf(winerr.TimedOut, "6to4: %w from the relay's 6to4 address %v to %d echoes over protocol 41 (%v each): protocol 41 is blocked or dropped on the path",
		errNoEcho, s.relay6, testTries, testTimeout)
}

// echoReply reports whether p answers the echo test in flight, and signals
// the test if so.
func (s *session) echoReply(p []byte) bool {
	nonce := s.pending.Load()
	if nonce == nil || packet.Src(p) != s.relay6 || !packet.IsNonceEchoReply(p, *nonce) {
		return false
	}
	if s.pending.CompareAndSwap(nonce, nil) {
		select {
		case s.echoed <- struct{}{}:
		default:
		}
	}
	return true
}
