package client

import (
	"sync"
	"sync/atomic"

	"github.com/iphttps/iphttps/internal/teredo/peer"
)

// Drop reasons (counter names are "drop_" + reason); docs/teredo.md lists
// them with their meaning.
const (
	// Received datagrams.
	dropMalformed       = "malformed"                // not (authentication)(origin)IPv6 with a consistent length
	dropOversized       = "oversized"                // larger than the receive buffer
	dropSourceNotGlobal = "source_not_global"        // UDP source not a global IPv4 address
	dropNotQualified    = "not_qualified"            // data before the client is qualified
	dropUnexpectedRA    = "unexpected_advertisement" // no solicitation of ours has that nonce
	dropBadRA           = "bad_advertisement"        // the nonce matches, the advertisement is invalid
	dropRAWrongSource   = "advertisement_wrong_source"
	dropRAQueueFull     = "advertisement_queue_full"
	dropNotFromPrimary  = "not_from_primary"         // data from the secondary address
	dropWrongDst        = "wrong_destination"        // not for our Teredo address
	dropLinkLocal       = "link_local_source"        // data from a link-local source
	dropMappingMismatch = "mapping_mismatch"         // Teredo source whose mapping is not the UDP source
	dropUntrusted       = "untrusted_source"         // native source not proved by an echo test
	dropUnexpectedHdr   = "unexpected_header"        // authentication or origin from a non-server
	dropTeredoViaServer = "teredo_source_via_server" // server packet with a Teredo source and no origin
	dropRelayed         = "relayed_not_accepted"     // server packet with an origin: not a bubble nor a peer's ICMPv6
	dropReplyLimited    = "bubble_reply_rate_limited"
	dropBadTrailer      = "bad_trailer"       // a bubble's trailers are malformed (ignored; the bubble is handled)
	dropAltRefused      = "alternate_refused" // an announced alternate address that is not private, or is ours
	dropUnknownAlt      = "unknown_alternate" // from a same-NAT peer, at an address it did not announce
	dropHostWrite       = "host_write_failed"
	// Packets from the host.
	dropBadPacket     = "bad_packet"      // not an IPv6 packet
	dropSourceNotOurs = "source_not_ours" // source is not our Teredo address
	dropNotRoutable   = "not_routable"    // multicast or link-local destination
	dropDstNotGlobal  = "destination_not_global"
	dropSendFailed    = "send_failed"
	dropSessionClosed = "session_closed"
)

// counters of a Transport, kept across sessions.
type counters struct {
	sessions, qualifications, solicitations, advertisements     atomic.Uint64
	refreshes, mappingChanges                                   atomic.Uint64
	datagramsIn, datagramsOut                                   atomic.Uint64
	pktsUp, bytesUp, pktsDown, bytesDown, queued                atomic.Uint64
	bubblesOut, bubblesIn, bubbleReplies, echoTests, echoPassed atomic.Uint64
	hairpinBubbles, hairpinPeers                                atomic.Uint64

	mu    sync.Mutex
	drops map[string]uint64
	base  peer.Stats // of the peer lists retired
}

func (c *counters) add(v *atomic.Uint64, n int) { v.Add(uint64(n)) }

func (c *counters) drop(reason string, n int) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	if c.drops == nil {
		c.drops = map[string]uint64{}
	}
	c.drops[reason] += uint64(n)
	c.mu.Unlock()
}

// retire adds a peer list's counters to the base when it is replaced.
func (c *counters) retire(l *peer.List) {
	if l == nil {
		return
	}
	st := l.Stats()
	c.mu.Lock()
	c.base.Evicted += st.Evicted
	c.base.QueueDrops += st.QueueDrops
	c.base.BubblesRefused += st.BubblesRefused
	c.mu.Unlock()
}

func (c *counters) snapshot(cur *peer.List) map[string]uint64 {
	m := map[string]uint64{
		"sessions":                c.sessions.Load(),
		"qualifications":          c.qualifications.Load(),
		"solicitations_sent":      c.solicitations.Load(),
		"advertisements_accepted": c.advertisements.Load(),
		"refreshes":               c.refreshes.Load(),
		"mapping_changes":         c.mappingChanges.Load(),
		"datagrams_received":      c.datagramsIn.Load(),
		"datagrams_sent":          c.datagramsOut.Load(),
		"packets_up":              c.pktsUp.Load(),
		"bytes_up":                c.bytesUp.Load(),
		"packets_down":            c.pktsDown.Load(),
		"bytes_down":              c.bytesDown.Load(),
		"packets_queued":          c.queued.Load(),
		"bubbles_sent":            c.bubblesOut.Load(),
		"bubbles_received":        c.bubblesIn.Load(),
		"bubble_replies":          c.bubbleReplies.Load(),
		"echo_tests_sent":         c.echoTests.Load(),
		"echo_tests_passed":       c.echoPassed.Load(),
		"hairpin_bubbles_sent":    c.hairpinBubbles.Load(),
		"hairpin_peers_trusted":   c.hairpinPeers.Load(),
	}
	var st peer.Stats
	if cur != nil {
		st = cur.Stats()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m["peers"] = st.Peers
	m["peers_evicted"] = c.base.Evicted + st.Evicted
	m["bubbles_refused"] = c.base.BubblesRefused + st.BubblesRefused
	m["drop_queue_full"] = c.base.QueueDrops + st.QueueDrops
	for k, v := range c.drops {
		m["drop_"+k] += v
	}
	return m
}
