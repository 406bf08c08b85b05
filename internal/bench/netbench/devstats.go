package netbench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// DevStats are the drop and error counters of a network device and of its
// root queueing discipline.
type DevStats struct {
	RxDropped  uint64 `json:"rx_dropped"`
	TxDropped  uint64 `json:"tx_dropped"`
	RxErrors   uint64 `json:"rx_errors"`
	TxErrors   uint64 `json:"tx_errors"`
	QdiscDrops uint64 `json:"qdisc_drops"`
}

// Map returns the counters by name ("rx_dropped", ...).
func (s DevStats) Map() map[string]uint64 {
	return map[string]uint64{
		"rx_dropped": s.RxDropped, "tx_dropped": s.TxDropped,
		"rx_errors": s.RxErrors, "tx_errors": s.TxErrors,
		"qdisc_drops": s.QdiscDrops,
	}
}

// ReadDevStats reads the counters of device dev in namespace ns with
// `ip -s -j link` and `tc -s -j qdisc`.
func ReadDevStats(ctx context.Context, ns, dev string) (DevStats, error) {
	link, err := Output(ctx, "", 5*time.Second, "ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev)
	if err != nil {
		return DevStats{}, err
	}
	qdisc, err := Output(ctx, "", 5*time.Second, "tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev)
	if err != nil {
		return DevStats{}, err
	}
	return parseDevStats(link, qdisc)
}

// parseDevStats parses `ip -s -j link show dev D` and `tc -s -j qdisc show
// dev D`; the drops of every qdisc listed are added up.
func parseDevStats(link, qdisc []byte) (DevStats, error) {
	var links []struct {
		Stats struct {
			Rx struct{ Errors, Dropped uint64 } `json:"rx"`
			Tx struct{ Errors, Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(link, &links); err != nil {
		return DevStats{}, fmt.Errorf("ip link statistics: %w", err)
	}
	if len(links) != 1 {
		return DevStats{}, fmt.Errorf("ip link statistics: %d devices", len(links))
	}
	var qds []struct {
		Drops uint64 `json:"drops"`
	}
	if err := json.Unmarshal(qdisc, &qds); err != nil {
		return DevStats{}, fmt.Errorf("tc qdisc statistics: %w", err)
	}
	s := DevStats{
		RxDropped: links[0].Stats.Rx.Dropped, TxDropped: links[0].Stats.Tx.Dropped,
		RxErrors: links[0].Stats.Rx.Errors, TxErrors: links[0].Stats.Tx.Errors,
	}
	for _, q := range qds {
		s.QdiscDrops += q.Drops
	}
	return s, nil
}
