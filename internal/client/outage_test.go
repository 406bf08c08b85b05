package client

import (
	"testing"
	"time"
)

// The first retry after an established session ended is spread over
// 0..Jitter×Initial: many clients losing their sessions at once (a server
// restart) must not come back within the same instant. Before, the wait
// was always 0.
func TestRetryAfterLostSessionIsSpread(t *testing.T) {
	b := Backoff{Initial: 30 * time.Second, Max: 15 * time.Minute, Jitter: 0.1}
	now := time.Unix(0, 0)
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for i := 0; i < 200; i++ {
		b.Next(now) // a running timer, as after earlier failures
		d := retryWait(&b, true, now)
		if d < 0 || d > 3*time.Second {
			t.Fatalf("first retry after a lost session in %v, want 0 to 3s", d)
		}
		lo, hi = min(lo, d), max(hi, d)
		// The loss restarted the timer: the next failure waits Initial±10 %.
		if n := retryWait(&b, false, now.Add(time.Minute)); n < 27*time.Second || n > 33*time.Second {
			t.Fatalf("after a lost session the next failure waits %v, want 30s±10%%", n)
		}
	}
	if hi-lo < 2*time.Second {
		t.Errorf("200 first retries spread over only %v (%v to %v), want most of 0 to 3s", hi-lo, lo, hi)
	}
	nj := Backoff{Initial: 30 * time.Second, Max: time.Minute}
	if d := retryWait(&nj, true, now); d != 0 {
		t.Errorf("without jitter the first retry waits %v, want 0", d)
	}
	if d := retryWait(&nj, false, now); d != 30*time.Second {
		t.Errorf("a failed attempt waits %v, want Initial", d)
	}
}
