package router

import "sync/atomic"

// Stats are the router's counters. Packet counts include clients that have
// since detached; packets handed to FromClient after their client detached
// are only counted as drops (DropDetached).
type Stats struct {
	Clients   int // attached clients
	Addresses int // addresses owned by attached clients

	FromClient      uint64 // packets handed to FromClient
	FromClientBytes uint64 // their bytes
	FromHost        uint64 // packets handed to FromHost
	ToHost          uint64 // packets FromClient returned as ToHost
	Delivered       uint64 // packets accepted by ports (unicast, flood copies, replies)
	Flooded         uint64 // multicast packets flooded to clients

	RouterAdvertisements   uint64 // RAs accepted by ports
	NeighborAdvertisements uint64 // NAs accepted by ports, forged DAD defences included
	DADConflicts           uint64 // DAD probes for an address another client owns
	Learned                uint64 // addresses clients claimed

	Dropped uint64 // all drops; see Drops for the split
}

// ClientStats are the counters of one client.
type ClientStats struct {
	Addrs int // addresses owned

	RxPackets uint64 // packets received from the client
	RxBytes   uint64
	ToHost    uint64 // of those, returned as ToHost
	Dropped   uint64 // of those, dropped; see Drops

	TxPackets uint64 // packets the client's port accepted
	TxBytes   uint64
	TxDropped uint64 // packets its port refused (queue full)

	// Drops splits Dropped by DropReason.String(); only non-zero reasons
	// appear.
	Drops map[string]uint64
}

// clientCounters are the per-client counters. Each client's reader
// goroutine writes its own, so the hot path touches no shared cache line.
type clientCounters struct {
	rxPackets, rxBytes, toHost    atomic.Uint64
	txPackets, txBytes, txDropped atomic.Uint64
	drops                         [numDropReasons]atomic.Uint64
}

// routerCounters are the router-wide counters of rarer events.
type routerCounters struct {
	fromHost, flooded, ras, nas, dadConflicts, learned atomic.Uint64
	drops                                              [numDropReasons]atomic.Uint64
}

// countersTotal is a plain sum of clientCounters.
type countersTotal struct {
	rxPackets, rxBytes, toHost, txPackets, txBytes, txDropped uint64
	drops                                                     [numDropReasons]uint64
}

func (t *countersTotal) add(c *clientCounters) {
	t.rxPackets += c.rxPackets.Load()
	t.rxBytes += c.rxBytes.Load()
	t.toHost += c.toHost.Load()
	t.txPackets += c.txPackets.Load()
	t.txBytes += c.txBytes.Load()
	t.txDropped += c.txDropped.Load()
	for i := range c.drops {
		t.drops[i] += c.drops[i].Load()
	}
}

// drop counts a drop router-wide and returns Dropped.
func (r *Router) drop(reason DropReason) Action {
	r.counters.drops[reason].Add(1)
	return Dropped
}

// dropFrom counts a drop of a packet from c and returns Dropped.
func (r *Router) dropFrom(c *Client, reason DropReason) Action {
	c.counters.drops[reason].Add(1)
	return r.drop(reason)
}

// RecordDrop counts a drop the caller decided itself, typically
// DropNotIPv6 found while deframing a client's stream. c may be nil.
func (r *Router) RecordDrop(c *Client, reason DropReason) {
	if reason >= numDropReasons {
		return
	}
	if c != nil {
		c.counters.drops[reason].Add(1)
	}
	r.drop(reason)
}

// Drops returns the number of dropped packets by DropReason.String(), every
// reason present.
func (r *Router) Drops() map[string]uint64 {
	m := make(map[string]uint64, numDropReasons)
	for i := range r.counters.drops {
		m[DropReason(i).String()] = r.counters.drops[i].Load()
	}
	return m
}

// Stats returns a snapshot of the router's counters.
func (r *Router) Stats() Stats {
	r.mu.RLock()
	total := r.retired
	s := Stats{Clients: len(r.clients), Addresses: len(r.owners)}
	for _, c := range r.clients {
		total.add(&c.counters)
	}
	r.mu.RUnlock()

	s.FromClient, s.FromClientBytes = total.rxPackets, total.rxBytes
	s.FromHost = r.counters.fromHost.Load()
	s.ToHost = total.toHost
	s.Delivered = total.txPackets
	s.Flooded = r.counters.flooded.Load()
	s.RouterAdvertisements = r.counters.ras.Load()
	s.NeighborAdvertisements = r.counters.nas.Load()
	s.DADConflicts = r.counters.dadConflicts.Load()
	s.Learned = r.counters.learned.Load()
	for i := range r.counters.drops {
		s.Dropped += r.counters.drops[i].Load()
	}
	return s
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() ClientStats {
	var t countersTotal
	t.add(&c.counters)
	s := ClientStats{
		Addrs:     len(*c.addrs.Load()),
		RxPackets: t.rxPackets,
		RxBytes:   t.rxBytes,
		ToHost:    t.toHost,
		TxPackets: t.txPackets,
		TxBytes:   t.txBytes,
		TxDropped: t.txDropped,
		Drops:     make(map[string]uint64),
	}
	for i, n := range t.drops {
		if n != 0 {
			s.Drops[DropReason(i).String()] = n
			s.Dropped += n
		}
	}
	return s
}
