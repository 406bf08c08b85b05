package client

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Every step of the reconnect timer is jittered, not only the first: the
// clients of a restarted server that failed together once would otherwise
// fail, and retry, together at every later step.
//
// For each retry of a series (1: the first retry after a lost session,
// Spread; 2..N: the timer's steps, Next) the test draws 1000 waits, each
// from a fresh timer fed the same failure times, so that the wait without
// jitter (the base) is the same for every draw and the draws differ by
// their jitter only. It requires, for every retry: every wait inside the
// jitter window; at least 990 distinct waits; the draws spanning at least
// 90 % of the window; and no tenth of the window holding fewer than 60 or
// more than 140 draws (100 expected: a uniform spread, not a few values).
//
// The draws come from a seeded source, so the test is deterministic: it
// cannot fail by chance. The bounds would hold for almost any seed: for
// uniform draws the chance of a tenth outside 60..140 is 2.7e-5 (binomial,
// 1000 draws, p = 0.1), 2.4e-3 for the 90 tenths checked; of a span under
// 90 % of the window 2e-44; of 10 equal waits among 1000 drawn over at
// least 2e9 ns, smaller still.
func TestBackoffJitterEveryRetry(t *testing.T) {
	const (
		draws   = 1000
		initial = 4 * time.Second
		maxWait = 30 * time.Second
		jitter  = 0.5
	)
	t0 := time.Unix(1000, 0)
	// When each attempt fails, from the loss of the session: the base of
	// retry k (k ≥ 2) is the time from the first failed attempt to the
	// k-th one, at least initial, at most maxWait.
	fails := []time.Duration{0, 1 * time.Second, 6 * time.Second, 15 * time.Second, 30 * time.Second, 70 * time.Second, 140 * time.Second}
	bases := []time.Duration{initial, 5 * time.Second, 14 * time.Second, 29 * time.Second, maxWait, maxWait} // retries 2..7
	src := rand.New(rand.NewPCG(17, 2))

	waits := make([][]time.Duration, len(fails)) // [retry-1][draw]
	for range draws {
		b := Backoff{Initial: initial, Max: maxWait, Jitter: jitter, Rand: src}
		b.Next(t0) // a running timer, as after earlier failures
		for k, at := range fails {
			// The first retry follows the lost session; each later one
			// follows a failed attempt.
			waits[k] = append(waits[k], retryWait(&b, k == 0, t0.Add(at)))
		}
	}

	check := func(retry int, got []time.Duration, lo, hi time.Duration) {
		t.Helper()
		name := fmt.Sprintf("retry %d (window %v to %v)", retry, lo, hi)
		seen := map[time.Duration]bool{}
		var tenths [10]int
		width := hi - lo
		for _, d := range got {
			if d < lo || d > hi {
				t.Errorf("%s: a wait of %v, outside the window", name, d)
				return
			}
			seen[d] = true
			tenths[min(int(int64(d-lo)*10/int64(width)), 9)]++
		}
		if len(seen) < 990 {
			t.Errorf("%s: only %d distinct waits in %d draws", name, len(seen), len(got))
		}
		if span := slices.Max(got) - slices.Min(got); span < width*9/10 {
			t.Errorf("%s: %d draws span only %v (%v to %v), want at least 90 %% of the window (%v)", name, len(got), span, slices.Min(got), slices.Max(got), width*9/10)
		}
		for k, n := range tenths {
			if n < 60 || n > 140 {
				t.Errorf("%s: %d draws per tenth of the window %v, want each 60 to 140 (uniform); tenth %d is off", name, len(got), tenths, k+1)
				break
			}
		}
	}
	check(1, waits[0], 0, time.Duration(jitter*float64(initial)))
	for k, base := range bases {
		j := time.Duration(jitter * float64(base))
		check(k+2, waits[k+1], base-j, base+j)
	}

	// The same from a series of failed attempts with no session before
	// (the client's first connection, or the interface's creation):
	// every step, the first included, is jittered.
	var first, third []time.Duration
	for range draws {
		b := Backoff{Initial: initial, Max: maxWait, Jitter: jitter, Rand: src}
		first = append(first, b.Next(t0))
		b.Next(t0.Add(3 * time.Second))
		third = append(third, b.Next(t0.Add(10*time.Second)))
	}
	j := time.Duration(jitter * float64(initial))
	check(1, first, initial-j, initial+j)
	j = time.Duration(jitter * float64(10*time.Second))
	check(3, third, 10*time.Second-j, 10*time.Second+j)
}
