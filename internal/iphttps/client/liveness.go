package client

import (
	"time"
)

// The client watches the server's side of an established link: TCP alone
// notices a dead path late (TCP_USER_TIMEOUT needs unacknowledged data, and
// keepalive probes start only after 30 s of silence), and not at all when
// the server's kernel answers but the server does not. After probeIdle
// without a packet from the server the client sends a Neighbor Solicitation
// to the router (RFC 4861 neighbor unreachability detection: the server
// answers for its own addresses), every check while the silence lasts; after
// deadIdle it gives the connection up and reconnects.
const (
	livenessCheck = time.Second
	probeIdle     = 10 * time.Second
	deadIdle      = 20 * time.Second
)

// liveness follows the count of packets received from the server.
type liveness struct {
	probeIdle, deadIdle time.Duration
	count               uint64
	last                time.Time // when count last moved (or the watch began)
}

func newLiveness(now time.Time, count uint64) *liveness {
	return &liveness{probeIdle: probeIdle, deadIdle: deadIdle, count: count, last: now}
}

// check is called every livenessCheck with the received-packet count: probe
// asks for a solicitation to the router, dead (with how long the server has
// been silent) for the connection to be given up.
func (l *liveness) check(now time.Time, count uint64) (probe, dead bool, silent time.Duration) {
	if count != l.count {
		l.count, l.last = count, now
		return false, false, 0
	}
	silent = now.Sub(l.last)
	return silent >= l.probeIdle, silent >= l.deadIdle, silent
}
