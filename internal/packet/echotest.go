package packet

import (
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"
)

// ErrNoEcho is EchoTest.Run's error when no try was answered.
var ErrNoEcho = errors.New("no answer")

// EchoHopLimit is the hop limit of an EchoTest's requests.
const EchoHopLimit = 64

// EchoTest runs a nonce echo test with retries: a nonce echo request from
// src to dst, a fresh nonce each try, until the reply comes back or the
// tries run out. The 6to4 client's reachability test and `iphttps
// diagnose`'s Teredo relay test run it. The caller sends the requests (Run's
// send) and reads the socket: its reader passes every IPv6 packet that may
// be the answer to Reply. The zero value is ready; one Run at a time.
type EchoTest struct {
	pending atomic.Pointer[echoPending]
}

// echoPending is the try in flight.
type echoPending struct {
	nonce [NonceLen]byte
	from  netip.Addr // the reply's source: the request's destination
	start time.Time
	try   int
	done  chan EchoResult
}

// EchoResult is a passed echo test.
type EchoResult struct {
	// Try is the try that was answered (1 for the first), RTT its round
	// trip.
	Try int
	RTT time.Duration
	// Via is where the reader got the reply from (Reply's via): the UDP
	// source of a Teredo datagram, the outer IPv4 source of protocol 41.
	Via netip.AddrPort
}

// Run sends up to tries nonce echo requests from src to dst with send, each
// waiting timeout for its reply. It returns the answered try, ErrNoEcho
// when none was answered, send's error when a request could not be sent,
// or ctx's error.
func (e *EchoTest) Run(ctx context.Context, src, dst netip.Addr, tries int, timeout time.Duration, send func(req []byte) error) (EchoResult, error) {
	done := make(chan EchoResult, 1)
	defer e.pending.Store(nil)
	for try := 1; try <= tries; try++ {
		p := &echoPending{from: dst, try: try, done: done}
		rand.Read(p.nonce[:])
		req := AppendNonceEcho(make([]byte, 0, HeaderLen+NonceEchoLen), src, dst, EchoHopLimit, p.nonce)
		p.start = time.Now()
		e.pending.Store(p)
		if err := send(req); err != nil {
			return EchoResult{}, err
		}
		timer := time.NewTimer(timeout)
		select {
		case <-ctx.Done():
			timer.Stop()
			return EchoResult{}, ctx.Err()
		case r := <-done:
			timer.Stop()
			return r, nil
		case <-timer.C:
		}
	}
	return EchoResult{}, ErrNoEcho
}

// Reply reports whether p, received from via, answers the try in flight
// (from the request's destination, with its nonce: IsNonceEchoReply), and
// if so ends that try. Safe to call from another goroutine than Run's.
func (e *EchoTest) Reply(p []byte, via netip.AddrPort) bool {
	t := e.pending.Load()
	if t == nil || len(p) < HeaderLen || Src(p) != t.from || !IsNonceEchoReply(p, t.nonce) {
		return false
	}
	if e.pending.CompareAndSwap(t, nil) {
		select {
		case t.done <- EchoResult{Try: t.try, RTT: time.Since(t.start), Via: via}:
		default: // Run has an answer already, or has returned
		}
	}
	return true
}
