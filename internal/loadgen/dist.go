package loadgen

import (
	"slices"
	"time"
)

// Dist summarises a set of durations, in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// NewDist summarises ds (which it sorts). Percentiles use the nearest-rank
// method: P99 is the smallest value at least 99% of the values do not
// exceed.
func NewDist(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Dist{
		N:    len(ds),
		Mean: ms(sum / time.Duration(len(ds))),
		P50:  ms(Percentile(ds, 50)),
		P90:  ms(Percentile(ds, 90)),
		P99:  ms(Percentile(ds, 99)),
		Max:  ms(ds[len(ds)-1]),
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of the sorted
// durations by nearest rank; 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(p/100*float64(n) + 0.999999999) // ceil, robust to float error
	return sorted[min(max(rank, 1), n)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
