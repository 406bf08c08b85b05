package client

import (
	"testing"
	"time"
)

func TestBackoffFollowsSpec(t *testing.T) {
	b := Backoff{Initial: 30 * time.Second, Max: 15 * time.Minute}
	t0 := time.Unix(0, 0)
	now := t0
	var got []time.Duration
	for i := 0; i < 8; i++ {
		d := b.Next(now)
		got = append(got, d)
		now = now.Add(d + time.Second) // each attempt takes 1 s to fail
	}
	want := []time.Duration{30 * time.Second, 31 * time.Second, 63 * time.Second, 127 * time.Second, 255 * time.Second, 511 * time.Second, 15 * time.Minute, 15 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("wait %d = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
	b.Reset()
	if d := b.Next(now); d != 30*time.Second {
		t.Fatalf("after reset: %v", d)
	}
	j := Backoff{Initial: 10 * time.Second, Max: time.Minute, Jitter: 0.1}
	for i := 0; i < 100; i++ {
		j.Reset()
		if d := j.Next(now); d < 9*time.Second || d > 11*time.Second {
			t.Fatalf("jitter out of bounds: %v", d)
		}
	}
}
