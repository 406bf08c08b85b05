package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// Slow and greedy clients: sessions that stop reading, floods of
// connections that never finish their handshake or head, and the
// per-source and global limits on sessions and pending connections.

// attackerSources are extra IPv4 addresses given to client namespace 3
// inside its /29 (198.51.100.24/29: .25 is the router, .26 its own), so
// that one namespace can be several sources.
var attackerSources = []string{"198.51.100.27", "198.51.100.28", "198.51.100.29", "198.51.100.30"}

// addSources adds addrs (as /32) to the Internet-facing link of ns.
func addSources(t *testing.T, l *lab.Lab, ns string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if out, err := l.Exec(ns, "ip", "addr", "add", a+"/32", "dev", "to-inet"); err != nil {
			t.Fatalf("ip addr add %s in %s: %v\n%s", a, ns, err, out)
		}
	}
}

// serverRSS is the server's resident set size in KiB.
func serverRSS(t *testing.T, l *lab.Lab) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", l.PID("server")))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// udpFlood sends datagrams of size bytes from namespace ns to the
// addresses round robin for d or count datagrams, whichever ends first,
// and returns how many it sent.
func udpFlood(t *testing.T, l *lab.Lab, ns string, dsts []netip.Addr, size int, d time.Duration, count int) int {
	t.Helper()
	var conn *net.UDPConn
	if err := l.Do(ns, func() (err error) {
		conn, err = net.ListenUDP("udp6", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, size)
	end := time.Now().Add(d)
	n := 0
	for n < count && time.Now().Before(end) {
		for _, dst := range dsts {
			if _, err := conn.WriteToUDPAddrPort(buf, netip.AddrPortFrom(dst, 9)); err == nil {
				n++
			}
		}
	}
	return n
}

// tunTxDropped is the tx_dropped count of the server's TUN device: packets
// the kernel could not queue for the server to read.
func tunTxDropped(t *testing.T, l *lab.Lab) int {
	t.Helper()
	out, err := l.Exec(l.NS(lab.RoleEdge), "cat", "/sys/class/net/"+lab.ServerDevice+"/statistics/tx_dropped")
	if err != nil {
		t.Fatalf("tx_dropped: %v %s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// timeToActive starts client i and returns how long it takes to be active.
func timeToActive(t *testing.T, l *lab.Lab, i int) time.Duration {
	t.Helper()
	start := time.Now()
	if err := l.StartClient(i); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitClientActive(context.Background(), i, upTimeout); err != nil {
		t.Fatalf("%s not active: %v", lab.ClientName(i), err)
	}
	return time.Since(start)
}

// TestGreedyNonReading opens 50 sessions that never read, and floods their
// addresses from the intranet host: the server must hold a bounded queue
// for each (counting drop_queue_full), keep its memory bounded, drop them
// after its write timeout, and keep serving an honest client.
func TestGreedyNonReading(t *testing.T) {
	const sessions = 50
	l := newLab(t, lab.Options{Prefix: "ipgr-", Clients: 2})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartClient(1); err != nil {
		t.Fatal(err)
	}
	waitActive(t, l, 1)
	roots := labRoots(t, l)
	attacker := l.ClientNS(2)
	rss0 := serverRSS(t, l)

	var addrs []netip.Addr
	var peers []*rawPeer
	intranet := netip.MustParseAddr(lab.IntranetHost)
	for i := range sessions {
		p := openRaw(t, l, roots, attacker, "")
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xf, 0, byte(i + 1)})
		p.send(udp6(a, intranet, 9, []byte("mine")))
		addrs = append(addrs, a)
		peers = append(peers, p)
	}
	// Every address learned (the router knows where to send the flood).
	if _, err := l.WaitStatus(context.Background(), "server", func(s status.Interface) bool {
		n := 0
		for _, c := range s.Clients {
			n += len(c.Addresses)
		}
		return s.Counters["sessions_active"] == sessions+1 && n >= sessions+1
	}); err != nil {
		t.Fatalf("%d raw sessions not all attached with an address: %v", sessions, err)
	}
	rss1 := serverRSS(t, l)

	pg := startPinger(l, l.ClientNS(1), lab.IntranetHost)
	qf0 := counter(t, l, "drop_queue_full")
	tunDrops0 := tunTxDropped(t, l)
	floodStart := time.Now()
	sent1 := udpFlood(t, l, l.NS(lab.RoleCorp), addrs, 1200, 4*time.Second, 200_000)
	rss2 := serverRSS(t, l)
	sent2 := udpFlood(t, l, l.NS(lab.RoleCorp), addrs, 1200, 4*time.Second, 200_000)
	floodTook := time.Since(floodStart)
	rss3 := serverRSS(t, l)
	qf := counter(t, l, "drop_queue_full") - qf0
	sentPings, recvPings, errs := pg.finish()
	srv, err := l.Status(context.Background(), "server")
	if err != nil {
		t.Fatal(err)
	}
	var queued uint64
	for _, c := range srv.Clients {
		if strings.HasPrefix(c.Remote, lab.ClientIPv4(2)+":") {
			queued = max(queued, c.BytesOut)
		}
	}
	t.Logf("server RSS: %d KiB idle, %d KiB with %d non-reading sessions, %d KiB after flood 1 (%d datagrams of 1200 B), %d KiB after flood 2 (%d datagrams)",
		rss0, rss1, sessions, rss2, sent1, rss3, sent2)
	t.Logf("flood of %d datagrams took %s; drop_queue_full +%d; server TUN tx_dropped +%d; most bytes written to one non-reading session: %d",
		sent1+sent2, floodTook.Round(time.Millisecond), qf, tunTxDropped(t, l)-tunDrops0, queued)
	t.Logf("honest cli1 during the flood: %d pings sent, %d received %v", sentPings, recvPings, errs)

	// Bounded: at most 1 MiB per non-reading session over the idle
	// server, and no growth from the first flood to the second.
	if grow := rss2 - rss0; grow > sessions*1024 {
		t.Errorf("server RSS grew by %d KiB with %d non-reading sessions; want under %d KiB", grow, sessions, sessions*1024)
	}
	if grow := rss3 - rss2; grow > 16*1024 {
		t.Errorf("server RSS grew by %d KiB more in a second flood; want it flat (bounded queues)", grow)
	}
	if qf == 0 {
		t.Error("drop_queue_full did not move: the flood was not dropped at the full queues")
	}
	if sentPings == 0 || recvPings < sentPings*9/10 {
		t.Errorf("the honest client lost more than 10%% of its pings during the flood: %d sent, %d received", sentPings, recvPings)
	}

	// The server gives up on the sessions that read nothing.
	s, err := l.WaitStatus(context.Background(), "server", func(s status.Interface) bool {
		return s.Counters["sessions_active"] == 1 || time.Since(floodStart) > 75*time.Second
	})
	if err != nil || s.Counters["sessions_active"] != 1 {
		t.Errorf("non-reading sessions still attached %s after the flood began: sessions_active %d, %v",
			time.Since(floodStart).Round(time.Second), s.Counters["sessions_active"], err)
	} else {
		t.Logf("all %d non-reading sessions dropped %s after the flood began; server RSS then %d KiB",
			sessions, time.Since(floodStart).Round(time.Second), serverRSS(t, l))
	}
	for _, p := range peers {
		p.conn.Close()
	}
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
	if cs, err := l.Status(context.Background(), lab.ClientName(1)); err != nil || cs.Counters["connects"] != 1 {
		t.Errorf("honest client: connects %d, %v; want 1", cs.Counters["connects"], err)
	}
}

// partialClientHello is the start of a TLS record announcing a 512-byte
// ClientHello, of which only the first bytes ever come.
var partialClientHello = []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}

// TestGreedyHalfOpen holds 1,000 connections in the TLS handshake, then
// 1,000 that completed TLS but never send the head, each from 20 sources
// (within the default per-source pending limit), and measures how long a
// new honest client takes to become active, against the same without
// them. The server must then cut them off at its timeouts, counting each.
func TestGreedyHalfOpen(t *testing.T) {
	const (
		flood   = 1000
		sources = 20
	)
	l := newLab(t, lab.Options{Prefix: "ipgr-", Clients: 2, ServerArgs: []string{"--handshake-timeout", "10s", "--head-timeout", "10s"}})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	attacker := l.ClientNS(2)
	// 20 sources routed to the attacker's namespace.
	var srcs []string
	for i := range sources {
		srcs = append(srcs, fmt.Sprintf("198.51.100.%d", 200+i))
	}
	addSources(t, l, attacker, srcs...)
	if out, err := l.Exec(l.NS(lab.RoleInet), "ip", "route", "add", "198.51.100.192/26", "via", lab.ClientIPv4(2)); err != nil {
		t.Fatalf("route to the extra sources: %v\n%s", err, out)
	}

	roots := labRoots(t, l)
	base := timeToActive(t, l, 1)
	if err := l.StopClient(1); err != nil {
		t.Fatal(err)
	}
	rawBase := timeTo200(t, l, roots, l.ClientNS(1))

	// 1,000 connections stuck in the handshake: half silent, half with a
	// partial ClientHello.
	hs0 := counter(t, l, "handshake_timeouts")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range flood {
		c, err := dialTCP(l, attacker, srcs[i%sources])
		if err != nil {
			t.Fatalf("half-open connection %d: %v", i, err)
		}
		if i%2 == 1 {
			c.Write(partialClientHello)
		}
		conns = append(conns, c)
	}
	opened := time.Now()
	rawHalfOpen := timeTo200(t, l, roots, l.ClientNS(1))
	withHalfOpen := timeToActive(t, l, 1)
	t.Logf("time to active: %s without, %s with %d half-open TLS connections from %d sources; TLS + head + 200: %s without, %s with",
		base.Round(time.Millisecond), withHalfOpen.Round(time.Millisecond), flood, sources,
		rawBase.Round(100*time.Microsecond), rawHalfOpen.Round(100*time.Microsecond))
	if withHalfOpen > base+3*time.Second || rawHalfOpen > rawBase+2*time.Second {
		t.Errorf("%d half-open connections delayed a new client from %s to %s (TLS + head %s to %s)", flood, base, withHalfOpen, rawBase, rawHalfOpen)
	}
	if got := counterReachesWithin(t, l, "handshake_timeouts", hs0+flood, 20*time.Second); got != hs0+flood {
		t.Errorf("handshake_timeouts went %d -> %d, want +%d", hs0, got, flood)
	} else {
		t.Logf("all %d cut off %s after they connected (handshake timeout 10 s)", flood, time.Since(opened).Round(time.Second))
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if err := l.StopClient(1); err != nil {
		t.Fatal(err)
	}

	// 1,000 connections that finish TLS and never send the head.
	hd0 := counter(t, l, "head_timeouts")
	tlsConns := make([]net.Conn, flood)
	var wg sync.WaitGroup
	errc := make(chan error, flood)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := completeTLS(l, roots, attacker, srcs[i%sources])
				if err != nil {
					errc <- fmt.Errorf("TLS connection %d: %w", i, err)
					continue
				}
				tlsConns[i] = c
			}
		}()
	}
	began := time.Now()
	for i := range flood {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	defer func() {
		for _, c := range tlsConns {
			if c != nil {
				c.Close()
			}
		}
	}()
	t.Logf("%d TLS connections completed in %s", flood, time.Since(began).Round(time.Millisecond))
	rawIdleTLS := timeTo200(t, l, roots, l.ClientNS(1))
	withIdleTLS := timeToActive(t, l, 1)
	t.Logf("time to active: %s with %d TLS connections that send no head; TLS + head + 200: %s",
		withIdleTLS.Round(time.Millisecond), flood, rawIdleTLS.Round(100*time.Microsecond))
	if withIdleTLS > base+3*time.Second || rawIdleTLS > rawBase+2*time.Second {
		t.Errorf("%d idle TLS connections delayed a new client from %s to %s (TLS + head %s to %s)", flood, base, withIdleTLS, rawBase, rawIdleTLS)
	}
	if got := counterReachesWithin(t, l, "head_timeouts", hd0+flood, 25*time.Second); got != hd0+flood {
		t.Errorf("head_timeouts went %d -> %d, want +%d", hd0, got, flood)
	}
	for i, c := range tlsConns {
		if c != nil {
			c.Close()
			tlsConns[i] = nil
		}
	}
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
	if err := l.StopClient(1); err != nil {
		t.Fatal(err)
	}

	// 1,000 from one source: beyond the default 64 pending per source
	// they are refused at once, and the client from another source is
	// not held up.
	const perSource = 64
	ps0, hs1 := counter(t, l, "refused_pending_source_limit"), counter(t, l, "handshake_timeouts")
	for range flood {
		c, err := dialTCP(l, attacker, "")
		if err != nil {
			t.Fatalf("connection from one source: %v", err)
		}
		conns = append(conns, c)
	}
	rawOneSource := timeTo200(t, l, roots, l.ClientNS(1))
	withOneSource := timeToActive(t, l, 1)
	t.Logf("time to active: %s with %d half-open connections from one source; TLS + head + 200: %s",
		withOneSource.Round(time.Millisecond), flood, rawOneSource.Round(100*time.Microsecond))
	if withOneSource > base+3*time.Second || rawOneSource > rawBase+2*time.Second {
		t.Errorf("%d half-open connections from one source delayed a new client from %s to %s (TLS + head %s to %s)", flood, base, withOneSource, rawBase, rawOneSource)
	}
	if got := counterReaches(t, l, "refused_pending_source_limit", ps0+flood-perSource); got != ps0+flood-perSource {
		t.Errorf("refused_pending_source_limit went %d -> %d, want +%d", ps0, got, flood-perSource)
	}
	if got := counterReachesWithin(t, l, "handshake_timeouts", hs1+perSource, 15*time.Second); got != hs1+perSource {
		t.Errorf("handshake_timeouts went %d -> %d, want +%d (the ones within the per-source limit)", hs1, got, perSource)
	}
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
}

// timeTo200 opens a raw IP-HTTPS session from ns and returns how long the
// TCP connect, TLS handshake, head and 200 took.
func timeTo200(t *testing.T, l *lab.Lab, roots *x509.CertPool, ns string) time.Duration {
	t.Helper()
	start := time.Now()
	p := openRaw(t, l, roots, ns, "")
	d := time.Since(start)
	p.conn.Close()
	return d
}

// completeTLS connects from ns and source src and finishes the TLS
// handshake.
func completeTLS(l *lab.Lab, roots *x509.CertPool, ns, src string) (net.Conn, error) {
	raw, err := dialTCP(l, ns, src)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, &tls.Config{ServerName: lab.ServerName, RootCAs: roots})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// counterReachesWithin is counterReaches with its own bound.
func counterReachesWithin(t *testing.T, l *lab.Lab, name string, want uint64, d time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := counter(t, l, name)
		if v >= want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refusedPromptly connects from ns and source src and reports whether the
// server closed the connection within a second (a refusal, not a timeout).
func refusedPromptly(t *testing.T, l *lab.Lab, ns, src string) bool {
	t.Helper()
	c, err := dialTCP(l, ns, src)
	if err != nil {
		return true // refused at connect is a refusal too
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestGreedyLimits checks each session and pending-connection limit: the
// connection over the limit is refused and counted, another source still
// gets in, and the sessions already there are unaffected.
func TestGreedyLimits(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipgr-", Clients: 3, ServerArgs: []string{
		"--max-clients", "6", "--max-clients-per-source", "2",
		"--max-pending", "16", "--max-pending-per-source", "4",
		"--handshake-timeout", "5s", "--head-timeout", "5s",
	}})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if err := l.StartClient(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 2; i++ {
		waitActive(t, l, i)
	}
	attacker := l.ClientNS(3)
	addSources(t, l, attacker, attackerSources...)
	a, b, c, d, e := lab.ClientIPv4(3), attackerSources[0], attackerSources[1], attackerSources[2], attackerSources[3]
	roots := labRoots(t, l)
	pg := []*pinger{startPinger(l, l.ClientNS(1), lab.IntranetHost), startPinger(l, l.ClientNS(2), lab.IntranetHost)}

	// Sessions per source: 2 from a, the third refused, b still gets in.
	pa1 := openRaw(t, l, roots, attacker, a)
	pa2 := openRaw(t, l, roots, attacker, a)
	before := counter(t, l, "refused_source_limit")
	if _, st, err := tryOpenRaw(t, l, roots, attacker, a); err == nil && st == 200 {
		t.Error("a third session from one source was accepted with --max-clients-per-source 2")
	}
	if got := counterReaches(t, l, "refused_source_limit", before+1); got != before+1 {
		t.Errorf("refused_source_limit went %d -> %d, want +1", before, got)
	}
	pb := openRaw(t, l, roots, attacker, b)
	if !pa1.alive() || !pa2.alive() {
		t.Error("the sessions within the per-source limit were disturbed by the refusal")
	}
	t.Log("max-clients-per-source 2: third session from one source refused (refused_source_limit +1), another source accepted")

	// Global: 2 honest + 3 raw + 1 = 6; the seventh is refused.
	pc := openRaw(t, l, roots, attacker, c)
	before = counter(t, l, "refused_full")
	if _, st, err := tryOpenRaw(t, l, roots, attacker, d); err == nil && st == 200 {
		t.Error("a seventh session was accepted with --max-clients 6")
	}
	if got := counterReaches(t, l, "refused_full", before+1); got != before+1 {
		t.Errorf("refused_full went %d -> %d, want +1", before, got)
	}
	if !pa1.alive() || !pb.alive() || !pc.alive() {
		t.Error("sessions were disturbed when the table was full")
	}
	pc.conn.Close()
	pd := openRaw(t, l, roots, attacker, d) // room again once one left
	t.Log("max-clients 6: seventh session refused (refused_full +1); accepted once one left")
	for _, p := range []*rawPeer{pa1, pa2, pb, pd} {
		p.conn.Close()
	}

	// Pending per source: 4 silent connections from a, the fifth refused
	// at once, b completes a session.
	var held []net.Conn
	hold := func(src string, n int) {
		for range n {
			conn, err := dialTCP(l, attacker, src)
			if err != nil {
				t.Fatalf("pending connection from %s: %v", src, err)
			}
			held = append(held, conn)
		}
	}
	release := func() {
		for _, c := range held {
			c.Close()
		}
		held = nil
	}
	defer release()
	hold(a, 4)
	time.Sleep(200 * time.Millisecond) // accepted and counted as pending
	before = counter(t, l, "refused_pending_source_limit")
	if !refusedPromptly(t, l, attacker, a) {
		t.Error("a fifth pending connection from one source was kept with --max-pending-per-source 4")
	}
	if got := counterReaches(t, l, "refused_pending_source_limit", before+1); got != before+1 {
		t.Errorf("refused_pending_source_limit went %d -> %d, want +1", before, got)
	}
	openRaw(t, l, roots, attacker, b).conn.Close()
	t.Log("max-pending-per-source 4: fifth pending connection from one source refused at once, another source completed a session")

	// Pending, global: 4 more from each of b, c, d (16 pending), e refused.
	hold(b, 4)
	hold(c, 4)
	hold(d, 4)
	time.Sleep(200 * time.Millisecond)
	before = counter(t, l, "refused_pending_limit")
	if !refusedPromptly(t, l, attacker, e) {
		t.Error("a seventeenth pending connection was kept with --max-pending 16")
	}
	if got := counterReaches(t, l, "refused_pending_limit", before+1); got != before+1 {
		t.Errorf("refused_pending_limit went %d -> %d, want +1", before, got)
	}
	release()
	time.Sleep(200 * time.Millisecond)
	openRaw(t, l, roots, attacker, e).conn.Close()
	t.Log("max-pending 16: seventeenth pending connection refused at once; accepted once they left")

	for i, p := range pg {
		sent, recv, errs := p.finish()
		t.Logf("%s: %d pings sent, %d received during the limit tests", lab.ClientName(i+1), sent, recv)
		if sent == 0 || recv != sent || len(errs) > 0 {
			t.Errorf("%s lost pings while limits refused others: %d sent, %d received %v", lab.ClientName(i+1), sent, recv, errs)
		}
		if s, err := l.Status(context.Background(), lab.ClientName(i+1)); err != nil || s.Counters["connects"] != 1 {
			t.Errorf("%s: connects %d, %v; want 1", lab.ClientName(i+1), s.Counters["connects"], err)
		}
	}
}
