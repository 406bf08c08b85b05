package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Outage test settings. The reconnect timer is short so that the test is
// quick, and its jitter is the largest allowed, so that the spread of the
// clients' reconnects is wide enough to measure: the first retry after a lost
// session comes 0 to jitter×initial = 2 s after the loss.
const (
	outageClients   = 5
	outageInitial   = 4 * time.Second
	outageJitter    = 0.5
	outageMax       = 6 * time.Second
	outageConnect   = 3 * time.Second
	outagePoll      = 250 * time.Millisecond
	blackholeLength = 60 * time.Second // issue 6: the link drops everything for 60 s
	serverDownFor   = 4 * time.Second
	dnsDownFor      = 10 * time.Second
	// Bounds the clients must keep (the measured figures are logged).
	lossShownWithin     = 3 * time.Second  // a closed or reset connection
	deadLinkShownWithin = 26 * time.Second // a silent one: liveness gives up after 20 s
	recoverWithin       = 20 * time.Second // after the fault ends
	resumeWithin        = 30 * time.Second // a TCP stream through the tunnel, after recovery
	minSpread           = 200 * time.Millisecond
	upBeforeFault       = 11 * time.Second
)

// TestOutage puts clients of one lab through the faults of issue 6, item 3:
// the server killed and restarted under traffic, every session reset at
// once by the server (which stays up), TCP resets in the middle of a
// stream, the DNS failing while a client must reconnect, and the link
// between the clients and the server dropping every packet for 60 s. At each
// stage it checks what `show interfaces` says (the clients' status strings
// and Last Error Codes, polled every 250 ms, and the server's
// sessions_active), that every client comes back by itself within a bound,
// that traffic through the tunnel resumes, and that the clients' reconnects
// reach the server spread by the timer's jitter (the times the server
// accepted them, from its log).
func TestOutage(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipfo-", Clients: outageClients,
		ClientArgs: []string{
			"--reconnect-initial", outageInitial.String(), "--reconnect-max", outageMax.String(),
			"--reconnect-jitter", strconv.FormatFloat(outageJitter, 'f', -1, 64),
			"--connect-timeout", outageConnect.String(), "--ra-timeout", "5s",
		}})
	startLab(t, l)
	mon := startMonitor(l)
	t.Cleanup(mon.stop)
	fw := &firewall{l: l, dir: t.TempDir()}
	t.Cleanup(fw.clear)

	t.Run("ServerKilled", func(t *testing.T) { outageServerKilled(t, l, mon) })
	t.Run("AllReset", func(t *testing.T) { outageAllReset(t, l, mon) })
	t.Run("Connection", func(t *testing.T) {
		start := time.Now()
		t.Run("group", func(t *testing.T) {
			t.Run("TCPReset", func(t *testing.T) { t.Parallel(); outageTCPReset(t, l, mon, fw, 1) })
			t.Run("DNSFailure", func(t *testing.T) { t.Parallel(); outageDNS(t, l, mon, fw, 2) })
		})
		// No session of the reset connections is left behind at the server.
		sessionsReach(t, l, mon, l.Clients(), start, 15*time.Second)
	})
	t.Run("Blackhole", func(t *testing.T) { outageBlackhole(t, l, mon, fw) })
}

// outageServerKilled kills the server (SIGKILL) while every client pings the
// intranet host and streams TCP to it, keeps it down for serverDownFor, and
// starts it again.
func outageServerKilled(t *testing.T, l *lab.Lab, mon *monitor) {
	all := allClients(l)
	waitAllActive(t, l, all)
	pings := startPings(t, l, all)
	streams := startStreams(t, l, all)
	time.Sleep(2 * time.Second) // traffic flows before the fault

	killed := time.Now()
	if err := l.KillServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(serverDownFor)
	if _, err := l.Status(context.Background(), "server"); err == nil {
		t.Errorf("the killed server still answers on its control socket")
	}
	restarted := time.Now()
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	up := time.Since(restarted)
	t.Logf("server killed, down for %v, restarted (control socket answered after %v)", restarted.Sub(killed).Round(time.Millisecond), up.Round(time.Millisecond))
	recovered := waitRecovered(t, l, all, restarted)
	sessionsReach(t, l, mon, len(all), restarted, 15*time.Second)

	for _, i := range all {
		name := lab.ClientName(i)
		ph := mon.phases(name, killed, restarted)
		t.Logf("%s: %s", name, mon.timeline(name, killed))
		if ph.detect < 0 || ph.detect > lossShownWithin {
			t.Errorf("%s: the lost connection was shown %v after the kill, want within %v", name, fmtDur(ph.detect), lossShownWithin)
		}
		if ph.activeDuring > 0 {
			t.Errorf("%s: reported an active interface %d times while the server was dead", name, ph.activeDuring)
		}
		for _, c := range ph.codes {
			if c != winerr.ConnReset && c != winerr.ConnRefused {
				t.Errorf("%s: showed %s while the server was dead; want %s (connection lost) then %s (refused)", name, winerr.Hex(c), winerr.Hex(winerr.ConnReset), winerr.Hex(winerr.ConnRefused))
			}
		}
		// Windows keeps the code of the latest attempt: the server port is
		// closed, so the retries are refused; an attempt made while the
		// dying server's socket was still there is reset instead (0x2746,
		// but from a connection attempt, not the lost session).
		last := ph.lastDown.s
		attemptReset := last.LastErrorCode == winerr.ConnReset && !strings.Contains(last.LastError, " lost: ")
		if (last.LastErrorCode != winerr.ConnRefused && !attemptReset) || last.InterfaceStatus != winerr.StatusWaiting {
			t.Errorf("%s: just before the restart it showed %q %s (%s), want %q %s from a retry", name, last.InterfaceStatus, winerr.Hex(last.LastErrorCode), last.LastError, winerr.StatusWaiting, winerr.Hex(winerr.ConnRefused))
		}
	}
	checkStreams(t, streams, recovered)
	checkPings(t, pings, recovered)
	logAttempts(t, l, all, killed)
	// The restarted server must not get every client at the same moment.
	// The clients' first retries came while it was down; what spreads
	// their arrival is the jitter of the first retry and of the timer's
	// steps after it (AllReset checks the first retry's alone).
	checkAcceptSpread(t, l, all, restarted)
}

// outageAllReset destroys the server's end of every client's connection at
// once (SOCK_DESTROY: the server drops the sessions, the clients get
// resets) while the server stays up, so that the server accepts each
// client's first retry after a lost session: the times it accepts them
// show that retry's jitter, whatever the clients announce in their logs.
func outageAllReset(t *testing.T, l *lab.Lab, mon *monitor) {
	all := allClients(l)
	waitAllActive(t, l, all)
	reset := time.Now()
	out, err := l.Exec(l.NS(lab.RoleEdge), "ss", "-K", "-tn", "state", "established", "src", lab.ServerIPv4, "sport", "=", ":443")
	if err != nil {
		t.Fatalf("ss -K: %v\n%s", err, out)
	}
	recovered := waitRecovered(t, l, all, reset)
	sessionsReach(t, l, mon, len(all), reset, 15*time.Second)
	for k, i := range all {
		t.Logf("%s (active again +%.3fs): %s", lab.ClientName(i), recovered[k].Sub(reset).Seconds(), mon.timeline(lab.ClientName(i), reset))
	}
	logAttempts(t, l, all, reset)
	checkAcceptSpread(t, l, all, reset)
}

// outageTCPReset makes the Internet router answer client i's established
// connection to the server with TCP resets, in both directions, while the
// client streams through the tunnel.
func outageTCPReset(t *testing.T, l *lab.Lab, mon *monitor, fw *firewall, i int) {
	name := lab.ClientName(i)
	waitAllActive(t, l, []int{i})
	pings := startPings(t, l, []int{i})
	streams := startStreams(t, l, []int{i})
	time.Sleep(2 * time.Second)

	port := outerPort(t, l, i)
	table := "iphttps_fo_reset"
	fw.load(t, table, fmt.Sprintf(`chain forward {
		type filter hook forward priority filter - 10; policy accept;
		ip saddr %[1]s tcp sport %[2]d ip daddr %[3]s tcp dport 443 counter reject with tcp reset
		ip saddr %[3]s tcp sport 443 ip daddr %[1]s tcp dport %[2]d counter reject with tcp reset
	}`, lab.ClientIPv4(i), port, lab.ServerIPv4))
	reset := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := l.WaitStatus(ctx, name, func(s status.Interface) bool { return !lab.IsActive(s) })
	cancel()
	if err != nil {
		t.Fatalf("%s still active 10 s after its connection was reset: %v", name, err)
	}
	hits := fw.counter(t, table)
	fw.remove(t, table) // the new connection has another port; the rule is no longer needed
	if hits == 0 {
		t.Errorf("the reset rules matched no packet: the fault was not injected")
	}
	recovered := waitRecovered(t, l, []int{i}, reset)

	ph := mon.phases(name, reset, recovered[0])
	t.Logf("%s (outer port %d reset, %d packets rejected): %s", name, port, hits, mon.timeline(name, reset))
	if ph.detect < 0 || ph.detect > lossShownWithin {
		t.Errorf("%s: the reset was shown %v after it, want within %v", name, fmtDur(ph.detect), lossShownWithin)
	}
	if len(ph.codes) == 0 || ph.codes[0] != winerr.ConnReset {
		t.Errorf("%s: showed codes %s after the reset, want %s first", name, hexes(ph.codes), winerr.Hex(winerr.ConnReset))
	}
	checkStreams(t, streams, recovered)
	checkPings(t, pings, recovered)
}

// outageDNS makes the lab's DNS server unreachable from client i (its
// queries are dropped), then resets the client's connection so that it must
// reconnect, and brings the DNS back after dnsDownFor.
func outageDNS(t *testing.T, l *lab.Lab, mon *monitor, fw *firewall, i int) {
	name := lab.ClientName(i)
	waitAllActive(t, l, []int{i})
	pings := startPings(t, l, []int{i})
	time.Sleep(time.Second)

	port := outerPort(t, l, i)
	dnsTable := "iphttps_fo_dns"
	fw.load(t, dnsTable, fmt.Sprintf(`chain input {
		type filter hook input priority filter - 10; policy accept;
		ip saddr %[1]s ip daddr %[2]s udp dport 53 counter drop
		ip saddr %[1]s ip daddr %[2]s tcp dport 53 counter drop
	}`, lab.ClientIPv4(i), lab.DNSAddr))
	// The server's end of the connection is destroyed (SOCK_DESTROY): the
	// server drops the session and the client gets a reset, so that the
	// client must reconnect, and resolve the server's name again.
	down := time.Now()
	if out, err := l.Exec(l.NS(lab.RoleEdge), "ss", "-K", "-tn", "dst", lab.ClientIPv4(i), "dport", "=", ":"+strconv.Itoa(port)); err != nil {
		fw.remove(t, dnsTable)
		t.Fatalf("ss -K: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := l.WaitStatus(ctx, name, func(s status.Interface) bool { return !lab.IsActive(s) })
	cancel()
	if err != nil {
		fw.remove(t, dnsTable)
		t.Fatalf("%s still active 10 s after its connection was reset: %v", name, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), dnsDownFor)
	s, err := l.WaitStatus(ctx, name, func(s status.Interface) bool { return s.LastErrorCode == winerr.NoData })
	cancel()
	if err != nil {
		t.Errorf("%s: never showed %s while its DNS server was unreachable: %v", name, winerr.Hex(winerr.NoData), err)
	} else {
		t.Logf("%s during the DNS outage: %q %s: %s", name, s.InterfaceStatus, winerr.Hex(s.LastErrorCode), s.LastError)
		if s.InterfaceStatus != winerr.StatusWaiting {
			t.Errorf("%s: status %q during the DNS outage, want %q", name, s.InterfaceStatus, winerr.StatusWaiting)
		}
	}
	time.Sleep(time.Until(down.Add(dnsDownFor)))
	dropped := fw.counter(t, dnsTable)
	fw.remove(t, dnsTable)
	back := time.Now()
	recovered := waitRecovered(t, l, []int{i}, back)

	ph := mon.phases(name, down, back)
	t.Logf("%s (DNS down %v, %d queries dropped): %s", name, back.Sub(down).Round(time.Millisecond), dropped, mon.timeline(name, down))
	if dropped == 0 {
		t.Errorf("no DNS query was dropped: the client did not resolve the server's name while the DNS was down")
	}
	if ph.activeDuring > 0 {
		t.Errorf("%s: reported an active interface %d times while it could not resolve the server", name, ph.activeDuring)
	}
	for _, c := range ph.codes {
		if c != winerr.ConnReset && c != winerr.NoData {
			t.Errorf("%s: showed %s; want %s (reset) then %s (the name server does not answer)", name, winerr.Hex(c), winerr.Hex(winerr.ConnReset), winerr.Hex(winerr.NoData))
		}
	}
	if ph.lastDown.s.LastErrorCode != winerr.NoData {
		t.Errorf("%s: just before the DNS came back it showed %s, want %s", name, winerr.Hex(ph.lastDown.s.LastErrorCode), winerr.Hex(winerr.NoData))
	}
	checkPings(t, pings, recovered)
}

// outageBlackhole makes the Internet router drop every packet between the
// clients and the server for blackholeLength. Clients 1 to 3 ping through
// the tunnel; the others are idle, so that both ways of noticing a dead
// link are measured.
func outageBlackhole(t *testing.T, l *lab.Lab, mon *monitor, fw *firewall) {
	all := allClients(l)
	waitAllActive(t, l, all)
	busy := all[:3]
	pings := startPings(t, l, busy)
	time.Sleep(2 * time.Second)
	before := counter(t, l, "sessions_active")

	table := "iphttps_fo_blackhole"
	fw.load(t, table, fmt.Sprintf(`chain forward {
		type filter hook forward priority filter - 10; policy accept;
		ip saddr %[1]s ip daddr %[2]s counter drop
		ip saddr %[2]s ip daddr %[1]s counter drop
	}`, "198.51.100.0/24", lab.ServerIPv4))
	start := time.Now()
	time.Sleep(time.Until(start.Add(blackholeLength)))
	dropped := fw.counter(t, table)
	fw.remove(t, table)
	back := time.Now()
	t.Logf("blackhole for %v: %d packets dropped; server sessions_active %d before, %d at the end",
		back.Sub(start).Round(time.Millisecond), dropped, before, mon.lastSessions(back))
	recovered := waitRecovered(t, l, all, back)
	sessionsReach(t, l, mon, len(all), back, 45*time.Second)

	for _, i := range all {
		name := lab.ClientName(i)
		ph := mon.phases(name, start, back)
		kind := "idle"
		if slices.Contains(busy, i) {
			kind = "pinging"
		}
		t.Logf("%s (%s): %s", name, kind, mon.timeline(name, start))
		if ph.detect < 0 || ph.detect > deadLinkShownWithin {
			t.Errorf("%s (%s): the dead link was shown %v after it went dead, want within %v", name, kind, fmtDur(ph.detect), deadLinkShownWithin)
		}
		if ph.activeDuring > 0 {
			t.Errorf("%s: reported an active interface %d times after noticing the dead link, while it was still dead", name, ph.activeDuring)
		}
		for _, c := range ph.codes {
			if c != winerr.TimedOut {
				t.Errorf("%s: showed %s during the blackhole, want %s (timed out)", name, winerr.Hex(c), winerr.Hex(winerr.TimedOut))
			}
		}
	}
	checkPings(t, pings, recovered[:len(busy)])
	logAttempts(t, l, all, start)
}

// allClients is 1..l.Clients().
func allClients(l *lab.Lab) []int {
	var all []int
	for i := 1; i <= l.Clients(); i++ {
		all = append(all, i)
	}
	return all
}

// waitAllActive waits until the clients are active (a previous stage may
// still be recovering) and their links have been up for upBeforeFault: a
// client treats the end of a link that was up for less than 10 s as a
// failed attempt (the timer goes on), and of a longer one as a lost session
// (it reconnects at once, after the jitter), and the faults are about the
// latter, a long-lived session.
func waitAllActive(t *testing.T, l *lab.Lab, clients []int) {
	t.Helper()
	var since time.Time
	for _, i := range clients {
		s, err := l.WaitClientActive(context.Background(), i, upTimeout)
		if err != nil {
			t.Fatalf("%s is not active before the fault: %v", lab.ClientName(i), err)
		}
		if s.Since.After(since) {
			since = s.Since
		}
	}
	time.Sleep(time.Until(since.Add(upBeforeFault)))
}

// waitRecovered waits for each client to be active again (at most
// recoverWithin after since, plus slack for the others already waited for)
// and returns when each was seen active. Since the clients are polled one
// after the other, each time is taken from the monitor's samples when
// possible.
func waitRecovered(t *testing.T, l *lab.Lab, clients []int, since time.Time) []time.Time {
	t.Helper()
	out := make([]time.Time, len(clients))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for k, i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithDeadline(context.Background(), since.Add(recoverWithin))
			defer cancel()
			ok := func(s status.Interface) bool { return lab.IsActive(s) }
			_, err := l.WaitStatus(ctx, lab.ClientName(i), ok)
			mu.Lock()
			out[k], errs[k] = time.Now(), err
			mu.Unlock()
		}()
	}
	wg.Wait()
	var took []string
	for k, i := range clients {
		if errs[k] != nil {
			t.Errorf("%s did not recover within %v: %v", lab.ClientName(i), recoverWithin, errs[k])
			continue
		}
		took = append(took, fmt.Sprintf("%s %v", lab.ClientName(i), out[k].Sub(since).Round(100*time.Millisecond)))
	}
	t.Logf("active again after: %s", strings.Join(took, ", "))
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// sessionsReach waits until the server's sessions_active is want.
func sessionsReach(t *testing.T, l *lab.Lab, mon *monitor, want int, since time.Time, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	s, err := l.WaitStatus(ctx, "server", func(s status.Interface) bool { return s.Counters["sessions_active"] == uint64(want) })
	if err != nil {
		t.Errorf("server: sessions_active %d, want %d, %v after the fault ended: %v", s.Counters["sessions_active"], want, limit, err)
		return
	}
	t.Logf("server: sessions_active %d %v after the fault ended (seen: %s)", want, time.Since(since).Round(100*time.Millisecond), mon.sessionsTimeline(since))
}

// outerPort is client i's local port of its connection to the server.
func outerPort(t *testing.T, l *lab.Lab, i int) int {
	t.Helper()
	out, err := l.Exec(l.ClientNS(i), "ss", "-tnH", "state", "established", "dst", lab.ServerIPv4, "dport", "=", ":443")
	if err != nil {
		t.Fatalf("ss: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("%s: want one connection to the server, ss shows:\n%s", lab.ClientName(i), out)
	}
	for _, f := range strings.Fields(lines[0]) {
		if ap, err := netip.ParseAddrPort(f); err == nil && ap.Addr().String() == lab.ClientIPv4(i) {
			return int(ap.Port())
		}
	}
	t.Fatalf("%s: no local address in %q", lab.ClientName(i), lines[0])
	return 0
}

// firewall loads nftables tables into the Internet router.
type firewall struct {
	l      *lab.Lab
	dir    string
	mu     sync.Mutex
	tables []string
}

// load (re)creates table (family ip) with body.
func (f *firewall) load(t *testing.T, table, body string) {
	t.Helper()
	ruleset := fmt.Sprintf("table ip %[1]s\ndelete table ip %[1]s\ntable ip %[1]s {\n%[2]s\n}\n", table, body)
	if err := f.run(table, ruleset); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	if !slices.Contains(f.tables, table) {
		f.tables = append(f.tables, table)
	}
	f.mu.Unlock()
}

// remove deletes table.
func (f *firewall) remove(t *testing.T, table string) {
	t.Helper()
	if err := f.run(table, fmt.Sprintf("table ip %[1]s\ndelete table ip %[1]s\n", table)); err != nil {
		t.Error(err)
	}
}

// clear removes every table loaded (at the end of the test).
func (f *firewall) clear() {
	f.mu.Lock()
	tables := slices.Clone(f.tables)
	f.mu.Unlock()
	for _, table := range tables {
		_ = f.run(table, fmt.Sprintf("table ip %[1]s\ndelete table ip %[1]s\n", table))
	}
}

func (f *firewall) run(table, ruleset string) error {
	p := filepath.Join(f.dir, table+".nft")
	if err := os.WriteFile(p, []byte(ruleset), 0o644); err != nil {
		return err
	}
	if out, err := f.l.Exec(f.l.NS(lab.RoleInet), "nft", "-f", p); err != nil {
		return fmt.Errorf("nft -f %s: %w: %s", p, err, strings.TrimSpace(string(out)))
	}
	return nil
}

var nftCounterRE = regexp.MustCompile(`counter packets (\d+)`)

// counter sums the packet counters of table's rules.
func (f *firewall) counter(t *testing.T, table string) uint64 {
	t.Helper()
	out, err := f.l.Exec(f.l.NS(lab.RoleInet), "nft", "list", "table", "ip", table)
	if err != nil {
		t.Errorf("nft list table %s: %v: %s", table, err, out)
		return 0
	}
	var n uint64
	for _, m := range nftCounterRE.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseUint(string(m[1]), 10, 64)
		n += v
	}
	return n
}

// sample is one status read by the monitor.
type sample struct {
	at time.Time
	ok bool // the status was read
	s  status.Interface
}

// monitor polls every client's status and the server's every outagePoll
// for the whole test, as an administrator running `show interfaces` in a
// loop would.
type monitor struct {
	l       *lab.Lab
	mu      sync.Mutex
	samples map[string][]sample
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func startMonitor(l *lab.Lab) *monitor {
	m := &monitor{l: l, samples: map[string][]sample{}, quit: make(chan struct{}), done: make(chan struct{})}
	names := []string{"server"}
	for _, i := range allClients(l) {
		names = append(names, lab.ClientName(i))
	}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(outagePoll)
		defer tick.Stop()
		for {
			var wg sync.WaitGroup
			for _, n := range names {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					s, err := l.Status(ctx, n)
					cancel()
					m.mu.Lock()
					m.samples[n] = append(m.samples[n], sample{at: time.Now(), ok: err == nil, s: s})
					m.mu.Unlock()
				}()
			}
			wg.Wait()
			select {
			case <-m.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *monitor) stop() {
	m.once.Do(func() { close(m.quit) })
	<-m.done
}

func (m *monitor) get(name string) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.samples[name])
}

// phases are what a client showed from a fault (at from) until the fault
// ended (at to).
type phases struct {
	detect       time.Duration // from the fault to the first sample not active; -1 if none
	activeDuring int           // active samples after detect and before to
	codes        []uint32      // Last Error Codes shown in that time, in order, without repeats
	lastDown     sample        // the last sample before to
}

func (m *monitor) phases(name string, from, to time.Time) phases {
	p := phases{detect: -1}
	var detected bool
	for _, s := range m.get(name) {
		if s.at.Before(from) || !s.ok {
			continue
		}
		if !s.at.Before(to) {
			break
		}
		p.lastDown = s
		active := lab.IsActive(s.s)
		if !detected {
			if active {
				continue
			}
			detected, p.detect = true, s.at.Sub(from)
		}
		if active {
			p.activeDuring++
			continue
		}
		if n := len(p.codes); n == 0 || p.codes[n-1] != s.s.LastErrorCode {
			p.codes = append(p.codes, s.s.LastErrorCode)
		}
	}
	return p
}

// timeline renders the changes of what name showed after from, with their
// offsets from it.
func (m *monitor) timeline(name string, from time.Time) string {
	var b strings.Builder
	var last string
	for _, s := range m.get(name) {
		if s.at.Before(from) {
			continue
		}
		var cur string
		switch {
		case !s.ok:
			cur = "no status"
		case lab.IsActive(s.s):
			a, _ := lab.LinkAddr(s.s)
			cur = fmt.Sprintf("%q %s %s", s.s.InterfaceStatus, winerr.Hex(s.s.LastErrorCode), a)
		default:
			cur = fmt.Sprintf("%q %s (%s)", s.s.InterfaceStatus, winerr.Hex(s.s.LastErrorCode), s.s.State)
		}
		if cur != last {
			fmt.Fprintf(&b, "\n  +%6.2fs %s", s.at.Sub(from).Seconds(), cur)
			last = cur
		}
	}
	return b.String()
}

// sessionsTimeline renders the changes of the server's sessions_active after
// from.
func (m *monitor) sessionsTimeline(from time.Time) string {
	var parts []string
	last := ""
	for _, s := range m.get("server") {
		if s.at.Before(from) {
			continue
		}
		cur := "down"
		if s.ok {
			cur = strconv.FormatUint(s.s.Counters["sessions_active"], 10)
		}
		if cur != last {
			parts = append(parts, fmt.Sprintf("+%.1fs %s", s.at.Sub(from).Seconds(), cur))
			last = cur
		}
	}
	return strings.Join(parts, ", ")
}

// lastSessions is the server's sessions_active in the last sample before t.
func (m *monitor) lastSessions(t time.Time) uint64 {
	var v uint64
	for _, s := range m.get("server") {
		if s.at.After(t) {
			break
		}
		if s.ok {
			v = s.s.Counters["sessions_active"]
		}
	}
	return v
}

// outagePing is a real ping(8) at 5 packets a second from a client to the
// intranet host, with each reply's time (-D).
type outagePing struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
	once sync.Once
}

// startPings starts a ping per client; they are stopped by checkPings
// (or, if the test fails first, by the clean-up).
func startPings(t *testing.T, l *lab.Lab, clients []int) []*outagePing {
	t.Helper()
	var ps []*outagePing
	for _, i := range clients {
		p := &outagePing{name: lab.ClientName(i), done: make(chan error, 1)}
		// -w bounds it in case nothing stops it.
		p.cmd = exec.Command("ip", "netns", "exec", l.ClientNS(i), "ping", "-6", "-n", "-D", "-i", "0.2", "-W", "1", "-w", "300", lab.IntranetHost)
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("ping from %s: %v", p.name, err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		t.Cleanup(func() { p.stop() })
		ps = append(ps, p)
	}
	return ps
}

// stop interrupts ping (it then prints its summary) and waits for it.
func (p *outagePing) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

var (
	pingReplyRE = regexp.MustCompile(`(?m)^\[(\d+\.\d+)\] \d+ bytes from`)
	pingSumRE   = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
)

// pingResult is what one ping saw.
type pingResult struct {
	sent, received int
	replies        []time.Time
	longestGap     time.Duration // between two replies: how long traffic stopped
}

func (p *outagePing) result() (pingResult, error) {
	p.stop()
	var r pingResult
	out := p.out.String()
	m := pingSumRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("ping from %s: no summary in its output:\n%s", p.name, lastLines(out, 10))
	}
	r.sent, _ = strconv.Atoi(m[1])
	r.received, _ = strconv.Atoi(m[2])
	for _, m := range pingReplyRE.FindAllStringSubmatch(out, -1) {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		at := time.Unix(0, int64(f*1e9))
		if n := len(r.replies); n > 0 && at.Sub(r.replies[n-1]) > r.longestGap {
			r.longestGap = at.Sub(r.replies[n-1])
		}
		r.replies = append(r.replies, at)
	}
	return r, nil
}

// checkPings stops the pingers and checks that replies came again after the
// client recovered; it logs the packets lost and the longest gap.
func checkPings(t *testing.T, ps []*outagePing, recovered []time.Time) {
	t.Helper()
	// Give every ping a few seconds after its client came back.
	latest := slices.MaxFunc(recovered, func(a, b time.Time) int { return a.Compare(b) })
	time.Sleep(time.Until(latest.Add(3 * time.Second)))
	for k, p := range ps {
		r, err := p.result()
		if err != nil {
			t.Error(err)
			continue
		}
		t.Logf("ping from %s: %d sent, %d received, %d lost; traffic stopped for %v at most", p.name, r.sent, r.received, r.sent-r.received, r.longestGap.Round(10*time.Millisecond))
		if n := len(r.replies); n == 0 || !r.replies[n-1].After(recovered[k]) {
			t.Errorf("ping from %s: no reply after the client recovered\n%s", p.name, lastLines(p.out.String(), 10))
		}
	}
}

// stream is a TCP connection through the tunnel from a client to the
// intranet host, carrying about 1.6 MB/s of pseudo-random data, hashed at
// both ends.
type stream struct {
	name     string
	conn     net.Conn
	sent     atomic.Int64
	received atomic.Int64
	quit     chan struct{}
	sendDone chan streamEnd
	recvDone chan streamEnd
	mu       sync.Mutex
	reads    []time.Time // when the receiver got data
}

// progress returns the first read after t and the longest pause between
// two reads.
func (s *stream) progress(t time.Time) (first time.Time, longest time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.reads {
		if first.IsZero() && r.After(t) {
			first = r
		}
		if k > 0 && r.Sub(s.reads[k-1]) > longest {
			longest = r.Sub(s.reads[k-1])
		}
	}
	return first, longest
}

type streamEnd struct {
	n   int64
	sum []byte
	err error
}

func startStreams(t *testing.T, l *lab.Lab, clients []int) []*stream {
	t.Helper()
	var out []*stream
	for _, i := range clients {
		s, err := startStream(l, i)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.conn.Close() })
		out = append(out, s)
	}
	return out
}

func startStream(l *lab.Lab, i int) (*stream, error) {
	name := lab.ClientName(i)
	ln, err := lab.Listen(l.NS(lab.RoleCorp), "tcp6", net.JoinHostPort(lab.IntranetHost, "0"))
	if err != nil {
		return nil, fmt.Errorf("stream listener for %s: %w", name, err)
	}
	s := &stream{name: name, quit: make(chan struct{}), sendDone: make(chan streamEnd, 1), recvDone: make(chan streamEnd, 1)}
	go func() {
		defer ln.Close()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			s.recvDone <- streamEnd{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		h := sha256.New()
		buf := make([]byte, 64<<10)
		var n int64
		for {
			_ = c.SetReadDeadline(time.Now().Add(90 * time.Second))
			k, err := c.Read(buf)
			h.Write(buf[:k])
			n += int64(k)
			s.received.Store(n)
			if k > 0 {
				s.mu.Lock()
				s.reads = append(s.reads, time.Now())
				s.mu.Unlock()
			}
			if errors.Is(err, io.EOF) {
				s.recvDone <- streamEnd{n: n, sum: h.Sum(nil)}
				return
			}
			if err != nil {
				s.recvDone <- streamEnd{n: n, err: err}
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lab.Dialer(l.ClientNS(i))(ctx, "tcp6", ln.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("stream from %s: %w", name, err)
	}
	s.conn = c
	go func() {
		var seed [32]byte
		copy(seed[:], "iphttps outage stream "+name)
		src := rand.NewChaCha8(seed)
		h := sha256.New()
		buf := make([]byte, 32<<10)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var n int64
		for {
			select {
			case <-s.quit:
				err := c.(*net.TCPConn).CloseWrite()
				s.sendDone <- streamEnd{n: n, sum: h.Sum(nil), err: err}
				return
			case <-tick.C:
			}
			_, _ = src.Read(buf)
			_ = c.SetWriteDeadline(time.Now().Add(90 * time.Second))
			k, err := c.Write(buf)
			h.Write(buf[:k])
			n += int64(k)
			s.sent.Store(n)
			if err != nil {
				s.sendDone <- streamEnd{n: n, err: err}
				return
			}
		}
	}()
	return s, nil
}

// checkStreams checks that each stream moves again after its client
// recovered, then ends it and compares what both ends saw.
func checkStreams(t *testing.T, ss []*stream, recovered []time.Time) {
	t.Helper()
	for k, s := range ss {
		base := s.received.Load()
		deadline := recovered[k].Add(resumeWithin)
		for s.received.Load() < base+(1<<20) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := s.received.Load(); got < base+(1<<20) {
			t.Errorf("stream from %s: stuck at %d bytes %v after the client recovered", s.name, got, resumeWithin)
		} else {
			first, longest := s.progress(recovered[k])
			t.Logf("stream from %s: data again %v after the client recovered; the stream stood still for %v at most", s.name, first.Sub(recovered[k]).Round(10*time.Millisecond), longest.Round(10*time.Millisecond))
		}
	}
	for _, s := range ss {
		close(s.quit)
		var snd, rcv streamEnd
		select {
		case snd = <-s.sendDone:
		case <-time.After(resumeWithin):
			t.Errorf("stream from %s: the sender is stuck", s.name)
			continue
		}
		select {
		case rcv = <-s.recvDone:
		case <-time.After(resumeWithin):
			t.Errorf("stream from %s: the receiver did not see the end (%d of %d bytes)", s.name, s.received.Load(), snd.n)
			continue
		}
		switch {
		case snd.err != nil || rcv.err != nil:
			t.Errorf("stream from %s: sender %v, receiver %v", s.name, snd.err, rcv.err)
		case snd.n != rcv.n || !bytes.Equal(snd.sum, rcv.sum):
			t.Errorf("stream from %s: sent %d bytes (SHA-256 %x), received %d (%x)", s.name, snd.n, snd.sum, rcv.n, rcv.sum)
		default:
			t.Logf("stream from %s: %d bytes through the fault, SHA-256 match", s.name, snd.n)
		}
	}
}

// logTimeRE finds a text log line's time.
var logTimeRE = regexp.MustCompile(`^time=(\S+) `)

// timedLine is a text log line and its time.
type timedLine struct {
	at   time.Time
	line string
}

// logLinesSince returns the lines of the log at path that contain msg and
// were written at from or later.
func logLinesSince(path string, from time.Time, msg string) ([]timedLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []timedLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, msg) {
			continue
		}
		m := logTimeRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || at.Before(from) {
			continue
		}
		out = append(out, timedLine{at, line})
	}
	return out, sc.Err()
}

// reconnectAttempts reads the client's log: for each "reconnecting in=D"
// line after from, the time of the attempt it announces (line time + D).
func reconnectAttempts(path string, from time.Time) ([]time.Time, error) {
	lines, err := logLinesSince(path, from, "msg=reconnecting ")
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for _, l := range lines {
		_, rest, ok := strings.Cut(l.line, " in=")
		if !ok {
			continue
		}
		d, err := time.ParseDuration(strings.Fields(rest)[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, l.line, err)
		}
		out = append(out, l.at.Add(d))
	}
	return out, nil
}

// logAttempts logs when each client announced (in its log) its first
// reconnect attempt after from, and the spread of those times; a client
// with none fails. The spread is not asserted here: what a client says it
// will do is no proof of when its attempts reached the server
// (checkAcceptSpread).
func logAttempts(t *testing.T, l *lab.Lab, clients []int, from time.Time) {
	t.Helper()
	var firsts []time.Time
	var parts []string
	for _, i := range clients {
		at, err := reconnectAttempts(l.LogFile(lab.ClientName(i)), from)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(at) == 0 {
			t.Errorf("%s: no reconnect in its log after the fault", lab.ClientName(i))
			continue
		}
		firsts = append(firsts, at[0])
		parts = append(parts, fmt.Sprintf("%s +%.3fs (%d attempts)", lab.ClientName(i), at[0].Sub(from).Seconds(), len(at)))
	}
	t.Logf("first reconnect attempts after the fault, as the clients announced them: %s; spread %v", strings.Join(parts, ", "), timeSpread(firsts).Round(time.Millisecond))
}

// serverAccepts reads the server's log: for each client, the times of its
// "client connected" lines at from or later, in order.
func serverAccepts(l *lab.Lab, clients []int, from time.Time) (map[int][]time.Time, error) {
	lines, err := logLinesSince(l.LogFile("server"), from, `msg="client connected"`)
	if err != nil {
		return nil, err
	}
	byIP := map[string]int{}
	for _, i := range clients {
		byIP[lab.ClientIPv4(i)] = i
	}
	out := map[int][]time.Time{}
	for _, ln := range lines {
		_, rest, ok := strings.Cut(ln.line, " client=")
		if !ok {
			return nil, fmt.Errorf("server log: no client in %q", ln.line)
		}
		ap, err := netip.ParseAddrPort(strings.Fields(rest)[0])
		if err != nil {
			return nil, fmt.Errorf("server log: %q: %w", ln.line, err)
		}
		if i, ok := byIP[ap.Addr().String()]; ok {
			out[i] = append(out[i], ln.at)
		}
	}
	return out, nil
}

// checkAcceptSpread reads when the server accepted each client first after
// from (its "client connected" log lines) and fails if a client was not
// accepted or if those times are spread over less than minSpread: the
// clients lost their sessions at the same moment, and only the jitter of
// the reconnect timer can spread their arrivals at the server.
func checkAcceptSpread(t *testing.T, l *lab.Lab, clients []int, from time.Time) {
	t.Helper()
	acc, err := serverAccepts(l, clients, from)
	if err != nil {
		t.Error(err)
		return
	}
	var firsts []time.Time
	var parts []string
	for _, i := range clients {
		if len(acc[i]) == 0 {
			t.Errorf("the server log shows no session of %s after the fault", lab.ClientName(i))
			continue
		}
		firsts = append(firsts, acc[i][0])
		parts = append(parts, fmt.Sprintf("%s +%.3fs", lab.ClientName(i), acc[i][0].Sub(from).Seconds()))
	}
	window := time.Duration(outageJitter * float64(outageInitial))
	spread := timeSpread(firsts)
	t.Logf("the server accepted the clients again at: %s; spread %v (first-retry jitter window %v)", strings.Join(parts, ", "), spread.Round(time.Millisecond), window)
	if len(firsts) >= 2 && spread < minSpread {
		t.Errorf("the server accepted the clients' reconnects within %v only, want them spread over at least %v: the reconnects are not jittered", spread.Round(time.Millisecond), minSpread)
	}
}

// timeSpread is the time between the earliest and the latest of ts.
func timeSpread(ts []time.Time) time.Duration {
	if len(ts) == 0 {
		return 0
	}
	lo := slices.MinFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	hi := slices.MaxFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return hi.Sub(lo)
}

func hexes(codes []uint32) string {
	var s []string
	for _, c := range codes {
		s = append(s, winerr.Hex(c))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(10 * time.Millisecond).String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
