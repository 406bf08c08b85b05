package client

import (
	"math/rand/v2"
	"time"
)

// Backoff is the reconnect timer of [MS-IPHTTPS] 3.1.2.1: the first failure
// starts it with Initial (30 s); after each later failure the wait is the time
// elapsed since the first failure, at most Max (15 min), so waits roughly
// double. A success resets it. Jitter spreads the reconnects of many clients
// (a fraction, e.g. 0.1 = ±10 %), at every step of the timer.
type Backoff struct {
	Initial, Max time.Duration
	Jitter       float64
	// Rand draws the jitter; nil is the global source. Tests set a seeded
	// one to get the same draws each run. Not safe for concurrent use, as
	// the Backoff itself.
	Rand *rand.Rand

	start   time.Time
	running bool
}

// Next returns how long to wait after a failure at now.
func (b *Backoff) Next(now time.Time) time.Duration {
	d := b.Initial
	if !b.running {
		b.running, b.start = true, now
	} else if e := now.Sub(b.start); e > d {
		d = e
	}
	if d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 {
		d += time.Duration((b.float()*2 - 1) * b.Jitter * float64(d))
	}
	return d
}

// Reset is called after a successful connection.
func (b *Backoff) Reset() { b.running = false }

// Spread is the wait before the first attempt after an established session
// ended: a random time from 0 to Jitter×Initial (0 to 3 s with the defaults).
// The sessions of every client of a server end at the same moment when the
// server restarts or its link fails; without this wait they would all
// reconnect within the same few milliseconds, and again together at each
// later step of the timer.
func (b *Backoff) Spread() time.Duration {
	if b.Jitter <= 0 {
		return 0
	}
	return time.Duration(b.float() * b.Jitter * float64(b.Initial))
}

// float draws a number in [0, 1) from b.Rand, or the global source.
func (b *Backoff) float() float64 {
	if b.Rand != nil {
		return b.Rand.Float64()
	}
	return rand.Float64()
}

// retryWait is how long the client waits after a connection attempt ended at
// now. lost tells that it ended an established session (a link that was up
// for a while): the timer restarts and the first retry comes after Spread.
// Otherwise the attempt failed and the timer goes on.
func retryWait(b *Backoff, lost bool, now time.Time) time.Duration {
	if lost {
		b.Reset()
		return b.Spread()
	}
	return b.Next(now)
}
