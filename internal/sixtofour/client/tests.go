package client

import (
	"context"
	"fmt"
	"time"

	"github.com/iphttps/iphttps/internal/sixtofour/probe"
)

// The tests themselves are package probe's (one copy, which `iphttps
// diagnose` runs too); the session records their outcome in the status
// and the counters.

// mappingTest runs the mapping test: a NAT fails the session; a server
// that does not answer leaves the test not run (the reachability test
// decides).
func (s *session) mappingTest(ctx context.Context) error {
	m, err := probe.Mapping(ctx, s.local, s.t.o.Relay)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		s.t.c.testsFailed.Add(1)
		return err
	case !m.Ran:
		s.testResult("mapping", fmt.Sprintf("not run (%s)", m.NotRun))
		return nil
	}
	s.t.c.testsPassed.Add(1)
	s.testResult("mapping", fmt.Sprintf("passed (the Teredo server at %v sees %v)", s.t.o.Relay, m.Seen.Addr()))
	return nil
}

// reachabilityTest runs the reachability test on the session's socket,
// whose reader passes the answers on (echoReply).
func (s *session) reachabilityTest(ctx context.Context) error {
	r, err := s.reach.Run(ctx, s.conn, s.local, s.t.o.Relay)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.t.c.testsFailed.Add(1)
		return err
	}
	s.t.c.testsPassed.Add(1)
	s.testResult("reachability", fmt.Sprintf("passed (echo from %v in %v, try %d)", r.From, r.RTT.Round(time.Microsecond), r.Try))
	return nil
}

// echoReply reports whether p answers the reachability test in flight.
func (s *session) echoReply(p []byte) bool { return s.reach.Reply(p) }
