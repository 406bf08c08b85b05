package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"
)

// DefaultGrace is how long a trickle waits for replies after its last
// request when EchoOptions.Grace is zero.
const DefaultGrace = 2 * time.Second

// EchoOptions describe a steady trickle of ICMPv6 echo requests.
type EchoOptions struct {
	// Target is the address the requests go to.
	Target netip.Addr
	// Interval is the time between two requests of one sender.
	Interval time.Duration
	// Count is the number of requests per sender, at most 65536 (the
	// sequence number is 16 bits).
	Count int
	// Payload is the echo payload size in bytes; default
	// DefaultEchoPayload, at least 16.
	Payload int
	// Grace is how long to wait for replies after the last request;
	// default DefaultGrace.
	Grace time.Duration
}

func (o EchoOptions) check() (EchoOptions, error) {
	switch {
	case !o.Target.Is6() || o.Target.Is4In6():
		return o, fmt.Errorf("loadgen: echo target %v is not an IPv6 address", o.Target)
	case o.Interval <= 0:
		return o, fmt.Errorf("loadgen: echo interval %v must be positive", o.Interval)
	case o.Count <= 0 || o.Count > 1<<16:
		return o, fmt.Errorf("loadgen: echo count %d must be between 1 and 65536", o.Count)
	}
	if o.Payload == 0 {
		o.Payload = DefaultEchoPayload
	}
	o.Payload = max(o.Payload, minEchoPayload)
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	return o, nil
}

// EchoResult counts one sender's echo requests and replies.
type EchoResult struct {
	Sent       int
	Received   int             // distinct requests answered
	Duplicates int             // further replies to an answered request
	Unmatched  int             // echo replies for this sender that match no request sent
	RTTs       []time.Duration // round-trip times of the answered requests
	First      time.Duration   // round-trip time of the first request, 0 if unanswered
	// Err is why sending or receiving stopped before the end, if it did.
	Err error
}

// Lost is the number of requests sent but not answered.
func (r EchoResult) Lost() int { return r.Sent - r.Received }

// echoBook records the send times of one sender's requests and matches
// replies to them. Times are nanoseconds since base, 0 meaning not sent.
// The sender calls sent; one receiving goroutine calls reply.
type echoBook struct {
	base     time.Time
	sentAt   []atomic.Int64
	answered []bool
	got      atomic.Int64
	res      EchoResult // Received, Duplicates, Unmatched, RTTs: receiver only
}

func newEchoBook(count int) *echoBook {
	return &echoBook{
		base:     time.Now(),
		sentAt:   make([]atomic.Int64, count),
		answered: make([]bool, count),
		res:      EchoResult{RTTs: make([]time.Duration, 0, count)},
	}
}

// stamp records that request seq goes out now.
func (b *echoBook) stamp(seq int) {
	b.sentAt[seq].Store(max(int64(time.Since(b.base)), 1))
}

// reply matches a reply to request seq received now.
func (b *echoBook) reply(seq int) {
	now := int64(time.Since(b.base))
	if seq >= len(b.sentAt) {
		b.res.Unmatched++
		return
	}
	t := b.sentAt[seq].Load()
	switch {
	case t == 0:
		b.res.Unmatched++
	case b.answered[seq]:
		b.res.Duplicates++
	default:
		b.answered[seq] = true
		rtt := time.Duration(now - t)
		b.res.RTTs = append(b.res.RTTs, rtt)
		if seq == 0 {
			b.res.First = rtt
		}
		b.res.Received++
		b.got.Add(1)
	}
}

// waitReplies waits until every one of sent requests is answered, or grace
// passes, or ctx ends.
func (b *echoBook) waitReplies(ctx context.Context, sent int, grace time.Duration) {
	deadline := time.Now().Add(grace)
	for b.got.Load() < int64(sent) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// exchange runs one sender's requests and returns its result: o.Count
// requests paced from start (see pace), each made ready by prepare(seq),
// stamped in the book and sent by send; then, unless sending failed, the
// wait of up to o.Grace for the replies. Last it stops the receiving
// goroutine (stopReading) and takes its error from readErr. The result's
// Err is the sending error, else the receiving one.
func (b *echoBook) exchange(ctx context.Context, o EchoOptions, start time.Time,
	prepare func(seq int), send func() error, stopReading func(), readErr <-chan error) EchoResult {
	sent, err := pace(ctx, start, o.Interval, o.Count, func(seq int) error {
		prepare(seq)
		b.stamp(seq)
		if err := send(); err != nil {
			return fmt.Errorf("sending echo request %d: %w", seq, err)
		}
		return nil
	})
	if err == nil {
		b.waitReplies(ctx, sent, o.Grace)
	}
	stopReading()
	rerr := <-readErr
	res := b.res
	res.Sent = sent
	switch {
	case err != nil:
		res.Err = err
	case rerr != nil:
		res.Err = fmt.Errorf("reading replies: %w", rerr)
	}
	return res
}

// pace sends count requests through send, the first at start plus a random
// phase within one interval (so many senders spread out), then one each
// interval. It returns how many went out, and the error that stopped it.
func pace(ctx context.Context, start time.Time, interval time.Duration, count int, send func(seq int) error) (int, error) {
	first := time.NewTimer(time.Until(start) + rand.N(interval))
	defer first.Stop()
	select {
	case <-ctx.Done():
		return 0, nil
	case <-first.C:
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := 0; seq < count; seq++ {
		if seq > 0 {
			select {
			case <-ctx.Done():
				return seq, nil
			case <-tick.C:
			}
		}
		if err := send(seq); err != nil {
			return seq, err
		}
	}
	return count, nil
}

// Trickle sends o.Count echo requests from the session's address to
// o.Target, one every o.Interval starting at start plus a random phase
// within one interval, and matches the replies (identifier: the session
// number; sequence: the request number). It returns when every request is
// answered or o.Grace after the last one, or when ctx ends. Afterwards the
// session can only be closed.
func (s *Session) Trickle(ctx context.Context, o EchoOptions, start time.Time) EchoResult {
	o, err := o.check()
	if err != nil {
		return EchoResult{Err: err}
	}
	ident := uint16(s.ID)
	book := newEchoBook(o.Count)
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readErr := make(chan error, 1)
	go func() {
		readErr <- s.readUntil(rctx, func(pkt []byte) {
			r, ok := parseEchoReply(pkt)
			if !ok || r.dst != s.Addr || r.src != o.Target || r.ident != ident || !r.hasOurMagic || !r.checksumGood {
				return
			}
			book.reply(int(r.seq))
		})
	}()

	req := buildEchoRequest(s.Addr, o.Target, ident, 0, echoPayload(uint32(s.ID), o.Payload))
	res := book.exchange(ctx, o, start,
		func(seq int) { setEchoSeq(req, uint16(seq)) },
		func() error { return s.Send(req) },
		stopReading, readErr)
	if res.Err == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		res.Err = ctx.Err()
	}
	return res
}
