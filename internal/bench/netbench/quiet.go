package netbench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/iphttps/iphttps/internal/bench/procstat"
)

// Quiet is the outcome of WaitQuiet.
type Quiet struct {
	Quiet  bool          `json:"quiet"`  // the machine got below the threshold
	Busy   float64       `json:"busy"`   // last busy reading, % of one CPU
	Waited time.Duration `json:"waited"` // how long it took
}

// WaitQuiet waits until the machine's busy time over one second is below
// maxBusy percent of one CPU, or until timeout; it reports the last reading
// either way. Only ctx ending is an error.
func WaitQuiet(ctx context.Context, maxBusy float64, timeout time.Duration) (Quiet, error) {
	start := time.Now()
	ncpu := runtime.NumCPU()
	var q Quiet
	for {
		a, err := procstat.ReadMachine()
		if err != nil {
			return q, fmt.Errorf("machine busy time: %w", err)
		}
		select {
		case <-ctx.Done():
			return q, ctx.Err()
		case <-time.After(time.Second):
		}
		b, err := procstat.ReadMachine()
		if err != nil {
			return q, fmt.Errorf("machine busy time: %w", err)
		}
		q.Busy = procstat.BusyPercent(a, b, ncpu)
		q.Waited = time.Since(start)
		if q.Busy < maxBusy {
			q.Quiet = true
			return q, nil
		}
		if q.Waited >= timeout {
			return q, nil
		}
	}
}
