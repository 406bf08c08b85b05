package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	xipv6 "golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/loadgen"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/teredo/peer"
)

// Sizes of TestTeredoHostile's inputs. Every flood is bounded in count and
// in rate: the refused kinds go teredoBurst datagrams at a time with
// teredoPause between bursts; the floods go at the server's own pace, a
// bounded number of datagrams ahead of what it has handled, so that no
// kernel queue overflows and every count is exact.
const (
	teredoHostileN     = 100   // datagrams of each refused kind
	teredoBubbleFloodN = 1000  // bubbles through the server towards a client
	teredoRSFloodN     = 70000 // solicitations, each from a mapping of its own
	teredoPeerFloodN   = 70000 // distinct Teredo destinations of another server
	teredoAttackerPort = 40000 // the attacker's own UDP socket
	teredoBarrierPort  = 40002 // its socket for barriers
	teredoRSWindow     = 64    // RS flood: solicitations unanswered at most
	teredoBurst        = 50
	teredoPause        = 5 * time.Millisecond // 10,000 datagrams/s at most
	// teredoPeerChunk is how many packets corp sends to Teredo
	// destinations before waiting for the relay to have handled them: far
	// less than the server TUN device's queue (4,096 packets), so the
	// kernel drops none on the way.
	teredoPeerChunk = 400
	// teredoPeerPayload makes corp's packets 1,280 bytes, the Teredo MTU:
	// the relay queues each, so the peer flood costs the most memory a
	// packet can.
	teredoPeerPayload = teredo.MTU - packet.HeaderLen - 8
)

var (
	teredoPrimary   = netip.MustParseAddr(lab.TeredoServerIPv4)
	teredoSecondary = netip.MustParseAddr(lab.TeredoServerIPv4Secondary)
	attackerIPv4    = netip.MustParseAddr(lab.TeredoAttackerIPv4)
	// teredoOtherServer is another Teredo server, played by the attacker
	// (in lab.TeredoAttackerNet): its clients' NATs are opened with bubbles
	// sent to it.
	teredoOtherServer = netip.MustParseAddr("192.0.2.99")
	// teredoRSFloodSecond is the RS flood's second source address (in
	// lab.TeredoAttackerNet): one address has too few ports to fill the
	// client table.
	teredoRSFloodSecond = netip.MustParseAddr("192.0.2.1")
)

// teredoMaxQualified is the bound of the Teredo server's client table
// (maxQualified in internal/teredo/server).
const teredoMaxQualified = 65536

// TestTeredoHostile attacks the iphttps server's Teredo server and relay
// from a host on the Internet side of the Teredo lab, with datagrams of
// every kind the server must refuse (docs/teredo.md, "Server and relay"),
// each kind sent teredoHostileN times: each must move its drop counter by
// exactly that many, and no other drop counter at all. Then three floods:
// bubbles through the server towards an honest client (all forwarded), the
// intranet host sending to 70,000 Teredo destinations of another server
// (the peer list stays at its bound, forgetting the oldest, with the
// server's memory measured), and 70,000 router solicitations from as many
// mappings (each answered, the client table at its bound, no dearer once
// full). Meanwhile two Miredo clients behind their NATs ping the intranet
// host every 50 ms through the server and must lose nothing; honest
// traffic must move no drop counter; the kernel must drop nothing at the
// server's sockets; the server must still run at the end.
func TestTeredoHostile(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "ipth-", Clients: 2, Binary: requireLab(t)})
	ctx := context.Background()
	atkNS, err := tl.AddAttacker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv := startTeredoServer(t, tl)
	addrs := startMiredoClients(t, tl)
	if t.Failed() {
		return
	}
	host := netip.MustParseAddr(lab.TeredoIntranetHost)
	for i := 1; i <= tl.Clients(); i++ {
		// The first ping finds the relay (Miredo's direct connectivity
		// test); from then on every echo should be answered at once.
		teredoPing(t, tl, tl.ClientNS(i), host)
	}
	if t.Failed() {
		return
	}
	atk := newTeredoAttacker(t, atkNS)
	srvPID := tl.PID(lab.IPHTTPSServerName)
	start := srv.counters()
	sockDropsStart := teredoSocketDrops(t, tl)
	t.Logf("server before the attack: %v; UDP socket drops %v; %s", nonZero(start), sockDropsStart, memLine(t, srvPID))
	for k, v := range start {
		if strings.HasPrefix(k, "drop_") && v != 0 {
			t.Errorf("honest traffic was dropped before the attack: %s = %d", k, v)
		}
	}

	pingers := []*echoPinger{
		startEchoPinger(t, tl.ClientNS(1), host, 0x7e01),
		startEchoPinger(t, tl.ClientNS(2), host, 0x7e02),
	}
	expected := map[string]uint64{} // every drop the attack must cause

	// The attacker's own Teredo address: its mapping is its UDP socket, so
	// the server trusts it as it would any client.
	own := teredoAddr(teredoPrimary, atk.udpAddr)
	c1, c2 := addrs[1], addrs[2]
	otherClient := teredoAddr(teredoOtherServer, netip.MustParseAddrPort("192.0.2.100:5000"))
	native := netip.MustParseAddr("2001:db8:66::1")
	ll := netip.MustParseAddr("fe80::bad")
	unserved := netip.MustParseAddr("2001:db8:ff::1")
	small := func(i int) []byte { return []byte("hostile " + strconv.Itoa(i)) }
	ipv4Pkt := []byte{0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 66, 203, 0, 113, 10, 0x9c, 0x40, 0, 7, 0, 8, 0, 0}
	longIPv6 := ipv6(17, 64, own, host, make([]byte, 8))
	binary.BigEndian.PutUint16(longIPv6[4:], 100) // Payload Length 100, 8 bytes there
	originThenText := append(teredo.AppendOrigin(nil, atk.udpAddr), "not IPv6"...)

	// tsrv would drop a datagram with its own address as source as a
	// martian before the server saw it; the spoofed loop below needs it
	// delivered.
	tsrvNS := tl.NS(lab.TeredoRoleServer)
	for _, kv := range [][2]string{
		{"net.ipv4.conf.to-inet.accept_local", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"}, {"net.ipv4.conf.to-inet.rp_filter", "0"},
	} {
		if err := lab.SetSysctl(tsrvNS, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}

	kinds := []teredoKind{
		// The UDP source and the Teredo source disagree.
		{name: "source claims client 1", counter: "drop_spoofed_source",
			payload: func(i int) []byte { return udp6(c1, host, 9, small(i)) }},
		{name: "source claims another port", counter: "drop_spoofed_source",
			payload: func(i int) []byte {
				return udp6(teredoAddr(teredoPrimary, netip.AddrPortFrom(attackerIPv4, teredoAttackerPort+1)), host, 9, small(i))
			}},
		{name: "bubble as client 2 to client 1", counter: "drop_spoofed_source",
			payload: func(int) []byte { return teredo.AppendBubble(nil, c2, c1) }},
		// Not (authentication)(origin)IPv6.
		{name: "truncated authentication", counter: "drop_malformed",
			payload: func(int) []byte { return []byte{0, 1, 0, 0, 1, 2, 3, 4} }},
		{name: "authentication ID past the end", counter: "drop_malformed",
			payload: func(int) []byte { return append([]byte{0, 1, 200, 100}, make([]byte, 20)...) }},
		{name: "truncated origin", counter: "drop_malformed",
			payload: func(int) []byte { return []byte{0, 0, 0x12, 0x34, 5} }},
		{name: "origin, then not IPv6", counter: "drop_malformed",
			payload: func(int) []byte { return originThenText }},
		{name: "IPv4 packet", counter: "drop_malformed",
			payload: func(int) []byte { return ipv4Pkt }},
		{name: "IPv6 longer than datagram", counter: "drop_malformed",
			payload: func(int) []byte { return longIPv6 }},
		{name: "empty datagram", counter: "drop_malformed",
			payload: func(int) []byte { return nil }},
		// Link-local sources: only solicitations and bubbles.
		{name: "link-local echo to corp", counter: "drop_link_local_source",
			payload: func(i int) []byte { return echo6(ll, host, i, 8) }},
		{name: "link-local data to client 1", counter: "drop_link_local_source",
			payload: func(i int) []byte { return udp6(ll, c1, 9, small(i)) }},
		{name: "echo to ff02::2", counter: "drop_bad_solicitation",
			payload: func(i int) []byte { return echo6(ll, packet.AllRouters(), i, 8) }},
		// Between Teredo peers: bubbles and small ICMPv6 only.
		{name: "UDP to client 1", counter: "drop_not_relayed",
			payload: func(i int) []byte { return udp6(own, c1, 9, small(i)) }},
		{name: "200-byte echo to client 1", counter: "drop_oversized_icmpv6",
			payload: func(i int) []byte { return echo6(own, c1, i, 200-8) }},
		// The relay carries Teredo clients only to what it serves.
		{name: "data to an unserved prefix", counter: "drop_egress_filter",
			payload: func(i int) []byte { return udp6(own, unserved, 9, small(i)) }},
		{name: "data to the v6host", counter: "drop_egress_filter",
			payload: func(i int) []byte { return echo6(own, netip.MustParseAddr(lab.V6HostAddr), i, 8) }},
		// Native sources: bubbles to this server's clients only.
		{name: "native bubble, other server's client", counter: "drop_not_for_this_server",
			payload: func(int) []byte { return teredo.AppendBubble(nil, native, otherClient) }},
		{name: "native data to client 1", counter: "drop_not_for_this_server",
			payload: func(i int) []byte { return udp6(native, c1, 9, small(i)) }},
		// Never towards a mapping that is not global.
		{name: "bubble to a private mapping", counter: "drop_destination_not_global",
			payload: func(int) []byte {
				return teredo.AppendBubble(nil, own, teredoAddr(teredoPrimary, netip.MustParseAddrPort("10.1.0.2:4000")))
			}},
		// Loops: a bubble to a client whose mapping is the server itself
		// is forwarded once, and comes back as a loop; a spoofed source.
		{name: "bubble reflected to the server", counter: "drop_loop", also: map[string]uint64{"forwarded": teredoHostileN},
			payload: func(int) []byte {
				return teredo.AppendBubble(nil, own, teredoAddr(teredoPrimary, netip.AddrPortFrom(teredoPrimary, teredo.Port)))
			}},
		{name: "source = the secondary:3544", counter: "drop_loop", from: netip.AddrPortFrom(teredoSecondary, teredo.Port),
			payload: func(int) []byte { return teredo.AppendBubble(nil, own, c1) }},
		{name: "source 10.66.0.2 (not global)", counter: "drop_source_not_global", from: netip.MustParseAddrPort("10.66.0.2:40000"),
			payload: func(int) []byte { return teredo.AppendRS(nil, [8]byte{}, false) }},
	}
	for _, k := range kinds {
		k.n = teredoHostileN
		k.run(t, srv, atk)
		expected[k.counter] += uint64(k.n)
	}

	// A bubble flood through the server towards client 1, half from the
	// attacker's Teredo address, half from a link-local one (as Miredo
	// sends them): all forwarded, with an origin indication; nothing
	// dropped.
	flood := teredoKind{name: "bubble flood to client 1", n: teredoBubbleFloodN, window: 100, also: map[string]uint64{"forwarded": teredoBubbleFloodN},
		payload: func(i int) []byte {
			if i%2 == 0 {
				return teredo.AppendBubble(nil, own, c1)
			}
			return teredo.AppendBubble(nil, ll, c1)
		}}
	flood.run(t, srv, atk)

	expected["drop_queue_full"] += peerFlood(t, tl, srv, atk, srvPID)
	rssBefore := rssKiB(t, srvPID)
	expected["drop_client_table_full"] += rsFlood(t, srv, atk)
	t.Logf("RS flood: server RSS %d -> %d KiB", rssBefore, rssKiB(t, srvPID))

	// The honest clients noticed nothing.
	for i, pg := range pingers {
		r := pg.finish()
		t.Logf("%s pinged %s every 50 ms for %s: %v", lab.TeredoClientRole(i+1), host, r.took.Round(100*time.Millisecond), r)
		if r.sent == 0 || r.recv != r.sent || len(r.errs) > 0 {
			t.Errorf("%s lost pings during the attack: %v %v", lab.TeredoClientRole(i+1), r, r.errs)
		}
	}
	if !tl.Running(lab.IPHTTPSServerName) {
		t.Fatal("the iphttps server is not running after the attack")
	}
	end := srv.counters()
	for k := range union(start, end, expected) {
		if strings.HasPrefix(k, "drop_") && end[k]-start[k] != expected[k] {
			t.Errorf("%s moved by %d over the test; the attack accounts for %d (honest traffic must add nothing)", k, end[k]-start[k], expected[k])
		}
	}
	sockDrops := teredoSocketDrops(t, tl)
	for a, d := range sockDrops {
		if d != sockDropsStart[a] {
			t.Errorf("the kernel dropped %d datagrams at the server's socket %s during the attack", d-sockDropsStart[a], a)
		}
	}
	t.Logf("server after the attack: %v; %s", nonZero(end), memLine(t, srvPID))
}

// teredoKind is a kind of datagram the attacker sends to the server's
// primary address: n of them, payload(i) each, from its UDP socket or,
// when from is set, from a raw socket with that source. It must move
// counter (a drop counter, or none) by exactly n and the counters in also
// by exactly their values, and no other drop counter.
type teredoKind struct {
	name string
	n    int
	// window, if set, is how many datagrams may be sent before the
	// counters in also show them handled (a flood at the server's pace).
	window  int
	counter string
	also    map[string]uint64
	from    netip.AddrPort
	payload func(i int) []byte
}

func (k teredoKind) run(t *testing.T, srv relayServer, atk *teredoAttacker) {
	t.Helper()
	want := map[string]uint64{}
	maps.Copy(want, k.also)
	if k.counter != "" {
		want[k.counter] += uint64(k.n)
	}
	before := srv.counters()
	paced(k.n, func(i int) {
		if k.window > 0 && i > 0 && i%k.window == 0 {
			done := map[string]uint64{}
			for name, v := range k.also {
				done[name] = v * uint64(i) / uint64(k.n)
			}
			if !srv.waitCounters(before, done, 10*time.Second) {
				t.FailNow()
			}
		}
		if k.from.IsValid() {
			atk.sendRaw(k.from, k.payload(i))
		} else {
			atk.send(k.payload(i))
		}
	})
	srv.waitCounters(before, want, 5*time.Second)
	// The server reads a socket's datagrams in order: once the answer to a
	// solicitation sent after them is back, it has handled them all.
	atk.barrier()
	after := srv.counters()
	var moved []string
	ok := true
	for name := range union(before, after, want) {
		d := after[name] - before[name]
		if (strings.HasPrefix(name, "drop_") || want[name] != 0) && d != want[name] {
			t.Errorf("%s: %s moved by %d, want %d", k.name, name, d, want[name])
			ok = false
		}
		if want[name] != 0 {
			moved = append(moved, fmt.Sprintf("%s +%d", name, d))
		}
	}
	slices.Sort(moved)
	if ok {
		t.Logf("%-38s x%-5d -> %s; no other drop counter moved", k.name, k.n, strings.Join(moved, ", "))
	}
}

// peerFlood has the intranet host send one full-size packet to each of
// teredoPeerFloodN Teredo addresses of another server. The relay queues
// each and opens its NAT with one bubble through that server; its peer
// list must stay at its bound (peer.DefaultMaxPeers), forgetting the least
// recently used, and the server's memory is measured. It returns how many
// packets the queue budget refused.
func peerFlood(t *testing.T, tl *lab.TeredoLab, srv relayServer, atk *teredoAttacker, pid int) (queueFull uint64) {
	t.Helper()
	corp := tl.NS(lab.TeredoRoleCorp)
	var c *net.UDPConn
	err := lab.Do(corp, func() error {
		var err error
		c, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("["+lab.TeredoIntranetHost+"]:0")))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := srv.counters()
	rssBefore := rssKiB(t, pid)
	atk.resetOtherBubbles()
	payload := make([]byte, teredoPeerPayload)
	start := time.Now()
	for sent := 0; sent < teredoPeerFloodN; {
		for j := 0; j < teredoPeerChunk && sent < teredoPeerFloodN; j++ {
			dst := teredo.Address{Server: teredoOtherServer, Mapped: netip.AddrPortFrom(
				netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + sent>>16)}), uint16(sent))}.IPv6()
			if _, err := c.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dst, 9)); err != nil {
				t.Fatalf("corp: send to %s: %v", dst, err)
			}
			sent++
		}
		if !srv.waitCounters(before, map[string]uint64{"bubbles_sent": uint64(sent)}, 10*time.Second) {
			t.FailNow()
		}
	}
	took := time.Since(start)
	after := srv.counters()
	rssAfter := rssKiB(t, pid)
	// Each bubble went to the other server's port 3544, from the primary
	// address.
	if got := atk.waitOtherBubbles(teredoPeerFloodN, 5*time.Second); got != teredoPeerFloodN {
		t.Errorf("peer flood: the other server got %d bubbles, want %d", got, teredoPeerFloodN)
	}
	d := func(name string) uint64 { return after[name] - before[name] }

	if d("bubbles_sent") != teredoPeerFloodN {
		t.Errorf("peer flood: bubbles_sent moved by %d, want %d (one per new peer)", d("bubbles_sent"), teredoPeerFloodN)
	}
	if d("packets_from_host") < teredoPeerFloodN {
		t.Errorf("peer flood: packets_from_host moved by %d, want at least %d", d("packets_from_host"), teredoPeerFloodN)
	}
	if after["peers"] != peer.DefaultMaxPeers {
		t.Errorf("peer flood: %d peers, want the bound %d", after["peers"], peer.DefaultMaxPeers)
	}
	// Every new destination beyond the bound forgets one peer. The honest
	// clients' entries are among the forgotten; each comes back with the
	// client's next packet and may be forgotten again, which adds at most
	// one eviction per packet a Teredo client sent meanwhile.
	minEvicted := before["peers"] + teredoPeerFloodN - peer.DefaultMaxPeers
	slack := d("packets_to_host") + d("bubbles_received")
	if ev := d("peers_evicted"); ev < minEvicted || ev > minEvicted+slack {
		t.Errorf("peer flood: peers_evicted moved by %d, want %d to %d (%d peers before, %d destinations, bound %d, %d packets from clients meanwhile)",
			ev, minEvicted, minEvicted+slack, before["peers"], teredoPeerFloodN, peer.DefaultMaxPeers, slack)
	}
	// The peers together queue at most peer.DefaultTotalQueueBytes: the
	// packets beyond it are dropped (queue_full), their bubbles still go.
	// Evicted peers free their room, so a few more fit than the budget's
	// first fill.
	pktLen := uint64(packet.HeaderLen + 8 + teredoPeerPayload)
	fit := uint64(peer.DefaultTotalQueueBytes) / pktLen
	maxFull, minFull := uint64(teredoPeerFloodN)-fit, uint64(teredoPeerFloodN)-fit-d("peers_evicted")
	for name := range union(before, after) {
		if name == "drop_queue_full" {
			if n := d(name); n < minFull || n > maxFull {
				t.Errorf("peer flood: drop_queue_full moved by %d, want %d to %d (the %d-byte queue budget holds %d packets)",
					n, minFull, maxFull, peer.DefaultTotalQueueBytes, fit)
			}
			continue
		}
		if strings.HasPrefix(name, "drop_") && d(name) != 0 {
			t.Errorf("peer flood: %s moved by %d", name, d(name))
		}
	}
	// The entries and at most the queue budget: without the budget the
	// peers could hold 4 KiB each (peer.DefaultQueueBytes), 256 MiB; the
	// growth must stay well under twice what they hold (the Go heap's
	// headroom).
	held := (uint64(peer.DefaultMaxPeers)*512 + peer.DefaultTotalQueueBytes) / 1024
	grew := int64(rssAfter) - int64(rssBefore)
	if grew > int64(2*held) {
		t.Errorf("peer flood: the server's RSS grew by %d KiB, more than twice the %d KiB its %d peers hold", grew, held, peer.DefaultMaxPeers)
	}
	t.Logf("peer flood: %d destinations of %s in %s: bubbles_sent +%d, packets_from_host +%d, peers %d -> %d, peers_evicted +%d (%d to %d allowed), drop_queue_full +%d (budget %d packets), no other drops; other server got %d bubbles; server RSS %d -> %d KiB (%+d KiB, %.0f bytes per peer)",
		teredoPeerFloodN, teredoOtherServer, took.Round(time.Millisecond), d("bubbles_sent"), d("packets_from_host"),
		before["peers"], after["peers"], d("peers_evicted"), minEvicted, minEvicted+slack, d("drop_queue_full"), fit, atk.otherBubbleCount(),
		rssBefore, rssAfter, grew, float64(grew*1024)/float64(peer.DefaultMaxPeers))
	return d("drop_queue_full")
}

// rsFlood sends teredoRSFloodN router solicitations, each from a mapping
// of its own (random ports of the attacker's address, then of a second
// one): each is answered (the attacker counts the advertisements carrying
// its nonce and mapping); the client table fills up to its bound and
// counts every mapping beyond it as drop_client_table_full, which rsFlood
// returns.
func rsFlood(t *testing.T, srv relayServer, atk *teredoAttacker) uint64 {
	t.Helper()
	var flood []netip.AddrPort
	for _, src := range []netip.Addr{attackerIPv4, teredoRSFloodSecond} {
		n := 0
		for _, p := range rand.Perm(65536 - 1024) {
			if p += 1024; p == teredoAttackerPort || p == teredoBarrierPort {
				continue
			}
			flood = append(flood, netip.AddrPortFrom(src, uint16(p)))
			if n++; n == teredoRSFloodN/2 {
				break
			}
		}
	}
	atk.expectRAs(flood)
	st := srv.status()
	before := counterMap(st)
	// The client table holds a mapping per soliciting client: the Miredo
	// clients' and the attacker's own (its barriers) so far. Every peer the
	// relay trusts has solicited, so the distinct mappings show clients
	// lists are the table's.
	tableBefore := len(teredoMappings(st))
	// As fast as the server answers, with at most teredoRSWindow
	// solicitations unanswered: the server's socket buffer never
	// overflows, whatever else runs on the machine, so every datagram is
	// handled and the counts are exact. First the mappings that fill the
	// table, then those beyond its bound, each part timed: a full table
	// must not make a solicitation dearer (it cost a scan of the table
	// each, about 1.5 ms, 40 times the cost of the rest).
	fill := teredoMaxQualified - tableBefore
	start := time.Now()
	var rates [2]float64
	for part, r := range [][2]int{{0, fill}, {fill, len(flood)}} {
		partStart := time.Now()
		for i := r[0]; i < r[1]; i++ {
			if !atk.waitRAs(i-teredoRSWindow, 10*time.Second) {
				t.Fatalf("RS flood: after %d solicitations, fewer than %d answered within 10 s", i, i-teredoRSWindow)
			}
			atk.sendRaw(flood[i], teredo.AppendRS(nil, rsFloodNonce(i), false))
		}
		if !atk.waitRAs(r[1], 10*time.Second) {
			t.Fatalf("RS flood: fewer than %d of %d solicitations answered within 10 s", r[1], len(flood))
		}
		rates[part] = float64(r[1]-r[0]) / time.Since(partStart).Seconds()
	}
	took := time.Since(start)
	if rates[1] < rates[0]/4 {
		t.Errorf("RS flood: the server answered %.0f solicitations/s while its client table filled, but only %.0f/s once it was full", rates[0], rates[1])
	}
	srv.waitCounters(before, map[string]uint64{"solicitations": teredoRSFloodN}, 10*time.Second)
	atk.barrier()
	answered := atk.answeredCount()
	st = srv.status()
	after := counterMap(st)
	if answered != len(flood) {
		t.Errorf("RS flood: %d of %d solicitations answered with their nonce and mapping", answered, len(flood))
	}
	// Miredo clients solicit too, to refresh their mapping (every 30 s):
	// at most a few each while this runs.
	sol := after["solicitations"] - before["solicitations"]
	honestMax := uint64(2 * 2 * (time.Since(start)/(30*time.Second) + 1))
	if sol < teredoRSFloodN+1 || sol > teredoRSFloodN+1+honestMax {
		t.Errorf("RS flood: solicitations moved by %d, want %d (the flood and a barrier) plus at most %d from the Miredo clients", sol, teredoRSFloodN+1, honestMax)
	}
	full := uint64(tableBefore + teredoRSFloodN - teredoMaxQualified)
	for name := range union(before, after) {
		want := uint64(0)
		if name == "drop_client_table_full" {
			want = full
		}
		if strings.HasPrefix(name, "drop_") && after[name]-before[name] != want {
			t.Errorf("RS flood: %s moved by %d, want %d", name, after[name]-before[name], want)
		}
	}
	mappings := teredoMappings(st)
	listed := 0
	for _, m := range flood {
		if mappings[m] {
			listed++
		}
	}
	if listed != teredoMaxQualified-tableBefore || len(mappings) != teredoMaxQualified {
		t.Errorf("RS flood: show clients lists %d mappings, %d of the flood's; want the table's bound %d, %d of the flood's",
			len(mappings), listed, teredoMaxQualified, teredoMaxQualified-tableBefore)
	}
	t.Logf("RS flood: %d solicitations from %d mappings of %s and %s in %s (%.0f/s filling the table, %.0f/s beyond its bound): %d answered, solicitations +%d, client table %d -> %d mappings (%d of the flood's), drop_client_table_full +%d, no other drop",
		len(flood), len(flood), attackerIPv4, teredoRSFloodSecond, took.Round(time.Millisecond), rates[0], rates[1],
		answered, sol, tableBefore, len(mappings), listed, after["drop_client_table_full"]-before["drop_client_table_full"])
	return full
}

// teredoMappings is the set of Teredo mappings show clients lists.
func teredoMappings(st status.Interface) map[netip.AddrPort]bool {
	m := map[netip.AddrPort]bool{}
	for _, c := range st.Clients {
		if ap, err := netip.ParseAddrPort(c.Mapping); c.Transport == "teredo" && err == nil {
			m[ap] = true
		}
	}
	return m
}

func rsFloodNonce(i int) [8]byte {
	return [8]byte{'R', 'S', 'F', 'L', byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// paced calls send(i) for every i below n, teredoBurst at a time with
// teredoPause between bursts.
func paced(n int, send func(i int)) {
	for i := range n {
		send(i)
		if (i+1)%teredoBurst == 0 && i+1 < n {
			time.Sleep(teredoPause)
		}
	}
}

// relayServer reads the iphttps server's status over its control socket,
// and the counters of one of its relays (transport "teredo" or "6to4").
type relayServer struct {
	t         *testing.T
	sock      string
	transport string
}

// startTeredoServer starts the iphttps server with its Teredo server and
// relay in the lab's server namespace and waits until its status shows
// Teredo.
func startTeredoServer(t *testing.T, tl *lab.TeredoLab) relayServer {
	t.Helper()
	err := tl.StartIPHTTPSServer("--self-signed", lab.ServerName, "--prefix", lab.LinkPrefix,
		"--route", lab.IntranetPrefix, "--listen", lab.TeredoServerIPv4+":443")
	if err != nil {
		t.Fatal(err)
	}
	s := relayServer{t: t, sock: tl.SocketFile(lab.IPHTTPSServerName), transport: "teredo"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := control.Fetch(ctx, s.sock)
		cancel()
		if err == nil && st.Teredo != nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the iphttps server did not come up with Teredo: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s relayServer) status() status.Interface {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := control.Fetch(ctx, s.sock)
	if err != nil {
		s.t.Fatalf("server status: %v", err)
	}
	return st
}

// counters returns the relay's counters, without their "teredo/" or
// "6to4/" prefix.
func (s relayServer) counters() map[string]uint64 {
	s.t.Helper()
	return transportCounters(s.status(), s.transport)
}

// counterMap returns the Teredo counters of st, without their prefix.
func counterMap(st status.Interface) map[string]uint64 { return transportCounters(st, "teredo") }

// transportCounters returns the counters of st named transport+"/...",
// without that prefix.
func transportCounters(st status.Interface, transport string) map[string]uint64 {
	m := map[string]uint64{}
	for k, v := range st.Counters {
		if name, ok := strings.CutPrefix(k, transport+"/"); ok {
			m[name] = v
		}
	}
	return m
}

// waitCounters waits (up to timeout) until every counter in want has
// moved from before by at least its value. It reports whether they did,
// after failing t (not fatally) if not.
func (s relayServer) waitCounters(before, want map[string]uint64, timeout time.Duration) bool {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := s.counters()
		var short []string
		for name, w := range want {
			if c[name]-before[name] < w {
				short = append(short, fmt.Sprintf("%s +%d of +%d", name, c[name]-before[name], w))
			}
		}
		if len(short) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			s.t.Errorf("server counters did not move as expected within %s: %s", timeout, strings.Join(short, ", "))
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// teredoAttacker sends from the attacker's namespace: Teredo datagrams from
// its UDP socket (its own mapping), and any IPv4/UDP datagram with any
// source from a raw socket, which also sees every UDP datagram arriving
// there (the advertisements answering the RS flood, the bubbles sent to the
// other server).
type teredoAttacker struct {
	t       *testing.T
	udp     *net.UDPConn
	udpAddr netip.AddrPort
	// bar is the barriers' socket: nothing else arrives there to crowd
	// out their answers.
	bar   *net.UDPConn
	raw   *ipv4.RawConn
	nonce uint32
	done  chan struct{}

	mu           sync.Mutex
	rsFlood      map[netip.AddrPort]int  // RS flood mapping -> index (its nonce)
	answered     map[netip.AddrPort]bool // RS flood mappings answered
	otherBubbles int
}

func newTeredoAttacker(t *testing.T, ns string) *teredoAttacker {
	t.Helper()
	a := &teredoAttacker{t: t, udpAddr: netip.AddrPortFrom(attackerIPv4, teredoAttackerPort), done: make(chan struct{})}
	var pc net.PacketConn
	err := lab.Do(ns, func() error {
		var err error
		if a.udp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(a.udpAddr)); err != nil {
			return err
		}
		if a.bar, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(attackerIPv4, teredoBarrierPort))); err != nil {
			return err
		}
		pc, err = net.ListenPacket("ip4:17", "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatalf("attacker sockets: %v", err)
	}
	// A large receive buffer: the raw socket sees the floods' answers.
	if sc, err := pc.(*net.IPConn).SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20) })
	}
	if a.raw, err = ipv4.NewRawConn(pc); err != nil {
		t.Fatalf("attacker raw socket: %v", err)
	}
	go a.readRaw()
	t.Cleanup(func() {
		a.udp.Close()
		a.bar.Close()
		a.raw.Close()
		<-a.done
	})
	return a
}

// send sends b from the attacker's UDP socket to the primary address.
func (a *teredoAttacker) send(b []byte) {
	if _, err := a.udp.WriteToUDPAddrPort(b, netip.AddrPortFrom(teredoPrimary, teredo.Port)); err != nil {
		a.t.Fatalf("attacker: send: %v", err)
	}
}

// sendRaw sends b in a UDP datagram from src to the primary address.
func (a *teredoAttacker) sendRaw(src netip.AddrPort, b []byte) {
	dst := netip.AddrPortFrom(teredoPrimary, teredo.Port)
	u := udp4(src, dst, b)
	h := &ipv4.Header{Version: ipv4.Version, Len: ipv4.HeaderLen, TotalLen: ipv4.HeaderLen + len(u), TTL: 64,
		Protocol: 17, Src: src.Addr().AsSlice(), Dst: dst.Addr().AsSlice()}
	if err := a.raw.WriteTo(h, u, nil); err != nil {
		a.t.Fatalf("attacker: raw send from %v: %v", src, err)
	}
}

// barrier sends a solicitation from the barriers' socket and waits for
// its answer.
func (a *teredoAttacker) barrier() {
	a.t.Helper()
	a.nonce++
	nonce := [8]byte{'B', 'A', 'R', 'R', byte(a.nonce >> 24), byte(a.nonce >> 16), byte(a.nonce >> 8), byte(a.nonce)}
	if _, err := a.bar.WriteToUDPAddrPort(teredo.AppendRS(nil, nonce, false), netip.AddrPortFrom(teredoPrimary, teredo.Port)); err != nil {
		a.t.Fatalf("attacker: barrier: %v", err)
	}
	buf := make([]byte, 2048)
	_ = a.bar.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, from, err := a.bar.ReadFromUDPAddrPort(buf)
		if err != nil {
			a.t.Fatalf("attacker: no answer to the barrier solicitation: %v", err)
		}
		d, err := teredo.Parse(buf[:n])
		if err != nil || !d.HasAuth || d.Nonce != nonce {
			continue
		}
		if _, err := teredo.ParseRA(d, nonce, teredo.RSSourceNonCone); err != nil || from.Addr().Unmap() != teredoPrimary {
			a.t.Fatalf("attacker: barrier answer from %v: %v", from, err)
		}
		return
	}
}

// readRaw classifies the UDP datagrams reaching the attacker's namespace.
func (a *teredoAttacker) readRaw() {
	defer close(a.done)
	buf := make([]byte, 65536)
	for {
		h, p, _, err := a.raw.ReadFrom(buf)
		if err != nil {
			return
		}
		if len(p) < 8 {
			continue
		}
		src, _ := netip.AddrFromSlice(h.Src)
		dst, _ := netip.AddrFromSlice(h.Dst)
		sport, dport := binary.BigEndian.Uint16(p[0:]), binary.BigEndian.Uint16(p[2:])
		d, err := teredo.Parse(p[8:])
		if err != nil {
			continue
		}
		if src.Unmap() != teredoPrimary || sport != teredo.Port {
			continue
		}
		to := netip.AddrPortFrom(dst.Unmap(), dport)
		a.mu.Lock()
		if i, ok := a.rsFlood[to]; ok {
			adv, err := teredo.ParseRA(d, rsFloodNonce(i), teredo.RSSourceNonCone)
			if err == nil && adv.Mapping == to && adv.Server == teredoPrimary {
				a.answered[to] = true
			}
		} else if to == netip.AddrPortFrom(teredoOtherServer, teredo.Port) && teredo.IsBubble(d.IPv6) {
			a.otherBubbles++
		}
		a.mu.Unlock()
	}
}

func (a *teredoAttacker) expectRAs(flood []netip.AddrPort) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rsFlood, a.answered = map[netip.AddrPort]int{}, map[netip.AddrPort]bool{}
	for i, m := range flood {
		a.rsFlood[m] = i
	}
}

// waitRAs waits until at least n flood solicitations are answered; it
// reports false if that takes longer than timeout.
func (a *teredoAttacker) waitRAs(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for a.answeredCount() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

func (a *teredoAttacker) answeredCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.answered)
}

func (a *teredoAttacker) resetOtherBubbles() {
	a.mu.Lock()
	a.otherBubbles = 0
	a.mu.Unlock()
}

func (a *teredoAttacker) otherBubbleCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.otherBubbles
}

// waitOtherBubbles waits (up to timeout) until the other server has had n
// bubbles and returns how many it had.
func (a *teredoAttacker) waitOtherBubbles(n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for a.otherBubbleCount() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return a.otherBubbleCount()
}

// udp4 builds a UDP header and data with the checksum over the IPv4
// pseudo-header.
func udp4(src, dst netip.AddrPort, data []byte) []byte {
	u := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], data)
	s, d := src.Addr().As4(), dst.Addr().As4()
	pseudo := append(append(append([]byte(nil), s[:]...), d[:]...), 0, 17, byte(len(u)>>8), byte(len(u)))
	var sum uint32
	for _, b := range [][]byte{pseudo, u} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return u
}

// teredoAddr is the Teredo address of server's client at mapped.
func teredoAddr(server netip.Addr, mapped netip.AddrPort) netip.Addr {
	return teredo.Address{Server: server, Flags: teredo.RandomFlags(0x2a5c), Mapped: mapped}.IPv6()
}

// echo6 is an ICMPv6 echo request with size bytes of data.
func echo6(src, dst netip.Addr, seq, size int) []byte {
	b := ipv6(packet.ProtoICMPv6, 64, src, dst, append([]byte{packet.TypeEchoRequest, 0, 0, 0, 0x7e, 0x1d, byte(seq >> 8), byte(seq)}, make([]byte, size)...))
	packet.SetICMPv6Checksum(b)
	return b
}

// teredoSocketDrops reads the kernel's drop counts of the Teredo server's
// UDP sockets (the last column of /proc/net/udp in its namespace).
func teredoSocketDrops(t *testing.T, tl *lab.TeredoLab) map[netip.AddrPort]uint64 {
	t.Helper()
	drops := socketDrops(t, tl.NS(lab.TeredoRoleServer), "udp", teredo.Port)
	if len(drops) != 2 {
		t.Fatalf("want the server's two Teredo sockets in /proc/net/udp, found %v", drops)
	}
	return drops
}

// socketDrops reads the kernel's drop counts (the last column) of the
// sockets in /proc/net/<file> of namespace ns ("udp", "raw") whose local
// port is port (for a raw socket, its protocol), by local address.
func socketDrops(t *testing.T, ns, file string, port uint16) map[netip.AddrPort]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := lab.Command(ctx, ns, "cat", "/proc/net/"+file).CombinedOutput()
	if err != nil {
		t.Fatalf("/proc/net/%s in %s: %v: %s", file, ns, err, out)
	}
	drops := map[netip.AddrPort]uint64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 13 || f[0] == "sl" {
			continue
		}
		ap, err := parseProcNetAddr(f[1])
		if err != nil || ap.Port() != port {
			continue
		}
		n, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
		drops[ap] = n
	}
	return drops
}

// parseProcNetAddr parses /proc/net/udp's "0A7100CB:0DD8": the address as
// the kernel's 32-bit word in host byte order, the port in hex.
func parseProcNetAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, errors.New("no port")
	}
	hb, err := hex.DecodeString(h)
	if err != nil || len(hb) != 4 {
		return netip.AddrPort{}, fmt.Errorf("address %q", h)
	}
	var a [4]byte
	binary.NativeEndian.PutUint32(a[:], binary.BigEndian.Uint32(hb))
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(port)), nil
}

// rssKiB is the resident set of process pid.
func rssKiB(t *testing.T, pid int) uint64 {
	t.Helper()
	v, _, _ := strings.Cut(procStatus(t, pid)["VmRSS"], " ")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("VmRSS of %d: %v", pid, err)
	}
	return n
}

func memLine(t *testing.T, pid int) string {
	t.Helper()
	st := procStatus(t, pid)
	return fmt.Sprintf("server RSS %s (peak %s)", st["VmRSS"], st["VmHWM"])
}

// echoPinger sends an ICMPv6 echo request every 50 ms from a namespace,
// from a raw socket of its own, and matches the replies: a request
// answered within echoWait counts as received, whatever the other replies'
// times (ping(8) with a count waits only twice its largest round trip for
// the last replies, so one reply late by some tens of milliseconds would
// count as lost).
type echoPinger struct {
	c     *icmp.PacketConn
	dst   netip.Addr
	id    int
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	sent  map[int]time.Time     // by sequence number
	rtt   map[int]time.Duration // replies within echoWait
	late  int                   // replies after echoWait
	errs  []string
	start time.Time
}

// echoWait is how long an echo request may wait for its reply.
const echoWait = 2 * time.Second

func startEchoPinger(t *testing.T, ns string, dst netip.Addr, id int) *echoPinger {
	t.Helper()
	p := &echoPinger{dst: dst, id: id, stop: make(chan struct{}), done: make(chan struct{}),
		sent: map[int]time.Time{}, rtt: map[int]time.Duration{}, start: time.Now()}
	err := lab.Do(ns, func() error {
		var err error
		p.c, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	})
	if err != nil {
		t.Fatalf("pinger in %s: %v", ns, err)
	}
	go p.read()
	go func() {
		defer close(p.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			m := icmp.Message{Type: xipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: p.id, Seq: seq & 0xffff, Data: []byte("teredo hostile honest ping")}}
			b, _ := m.Marshal(nil) // the kernel fills in the ICMPv6 checksum
			p.mu.Lock()
			p.sent[seq&0xffff] = time.Now()
			p.mu.Unlock()
			if _, err := p.c.WriteTo(b, &net.IPAddr{IP: p.dst.AsSlice()}); err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, err.Error())
				p.mu.Unlock()
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *echoPinger) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.c.ReadFrom(buf)
		if err != nil {
			return
		}
		now := time.Now()
		m, err := icmp.ParseMessage(58, buf[:n])
		if err != nil || m.Type != xipv6.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if ip, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP); !ok || e.ID != p.id || ip != p.dst {
			continue
		}
		p.mu.Lock()
		if at, ok := p.sent[e.Seq]; ok {
			if d := now.Sub(at); d <= echoWait {
				p.rtt[e.Seq] = d
			} else {
				p.late++
			}
		}
		p.mu.Unlock()
	}
}

// finish stops sending, waits echoWait for the last replies and returns
// what the pinger saw.
func (p *echoPinger) finish() echoResult {
	close(p.stop)
	<-p.done
	time.Sleep(echoWait)
	p.c.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	r := echoResult{sent: len(p.sent), recv: len(p.rtt), late: p.late, errs: p.errs, took: time.Since(p.start)}
	for _, d := range p.rtt {
		r.rtts = append(r.rtts, d)
	}
	slices.Sort(r.rtts)
	return r
}

type echoResult struct {
	sent, recv, late int
	rtts             []time.Duration
	errs             []string
	took             time.Duration
}

func (r echoResult) String() string {
	s := fmt.Sprintf("%d sent, %d answered within %s, %d late", r.sent, r.recv, echoWait, r.late)
	if len(r.rtts) > 0 {
		s += fmt.Sprintf("; RTT p50 %s, p99 %s, max %s", loadgen.Percentile(r.rtts, 50).Round(10*time.Microsecond),
			loadgen.Percentile(r.rtts, 99).Round(10*time.Microsecond), r.rtts[len(r.rtts)-1].Round(10*time.Microsecond))
	}
	return s
}

// union is the set of keys of ms.
func union(ms ...map[string]uint64) map[string]bool {
	u := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			u[k] = true
		}
	}
	return u
}

// nonZero keeps the non-zero counters, for the log.
func nonZero(c map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range c {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestTeredoQualifyLoad: 1,000 Teredo clients of the load generator, each
// on a UDP socket of its own spread over 100 addresses of a host on the
// Internet side (no NAT), qualify against the iphttps server's Teredo
// server, 64 at a time, with no solicitation lost and each advertisement
// carrying the client's own mapping.
func TestTeredoQualifyLoad(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptl-", Clients: 1, Binary: requireLab(t)})
	ns, err := tl.AddAttacker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := startTeredoServer(t, tl)
	before := srv.counters()
	locals := make([]netip.Addr, 100)
	for i := range locals {
		locals[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(101 + i)}) // in lab.TeredoAttackerNet
	}
	const clients = 1000
	rep, err := loadgen.RunTeredo(context.Background(), loadgen.TeredoOptions{
		Server: teredoPrimary, Locals: locals, Clients: clients, Concurrency: 64, NoNAT: true, Lab: true,
		Listen: func(laddr netip.AddrPort) (c *net.UDPConn, err error) {
			err = lab.Do(ns, func() error {
				c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(laddr))
				return err
			})
			return c, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d clients, concurrency %d: %d qualified, %d failed, %d solicitations, %d lost, %d bad answers, in %.3f s (%.0f/s); time p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms",
		rep.Clients, rep.Concurrency, rep.Qualified, rep.Failed, rep.Solicitations, rep.Lost, rep.BadAnswers, rep.Seconds, rep.PerSecond,
		rep.Time.P50, rep.Time.P90, rep.Time.P99, rep.Time.Max)
	if rep.Qualified != clients || rep.Failed != 0 || rep.Lost != 0 || rep.BadAnswers != 0 || rep.Solicitations != clients {
		t.Errorf("qualification load: %+v", rep)
	}
	after := srv.counters()
	if d := after["solicitations"] - before["solicitations"]; d != clients {
		t.Errorf("server solicitations moved by %d, want %d", d, clients)
	}
	for name := range union(before, after) {
		if strings.HasPrefix(name, "drop_") && after[name] != before[name] {
			t.Errorf("%s moved by %d", name, after[name]-before[name])
		}
	}
}
