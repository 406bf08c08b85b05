package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/wire"
)

// scaleServers and scaleClients size the scale-out test.
const (
	scaleServers = 2
	scaleClients = 4
)

// TestScaleOut runs two iphttps servers with distinct prefixes behind a
// real HAProxy in TCP mode that opens every backend connection with a PROXY
// protocol v2 header, and four real clients that connect to HAProxy's
// public address by name. It checks that the clients are spread across
// both servers, that each server sees, logs and limits the clients' real
// addresses (not HAProxy's), that a connection without the header, or with
// one from a peer that may not send it, is refused and counted, and that
// when a server is killed its clients come back through HAProxy on the
// other server, with that server's prefix, and reach the intranet again,
// while the clients already on that server keep their sessions.
func TestScaleOut(t *testing.T) {
	if err := lab.CheckHAProxy(); err != nil {
		t.Fatalf("the scale-out test runs a real HAProxy: %v", err)
	}
	l := newLab(t, lab.Options{Prefix: "ipsc-", Clients: scaleClients,
		ClientArgs: []string{"--reconnect-initial", "1s", "--reconnect-max", "2s"}})
	// Registered after newLab's clean-up, so it runs first: HAProxy and
	// the servers are stopped, and their exits checked, before Down
	// deletes the namespaces.
	t.Cleanup(func() {
		if err := l.StopScaleOut(); err != nil {
			t.Errorf("scale-out stop: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var serverArgs []string
	if scaleProxyProtocol {
		serverArgs = append(serverArgs, "--max-clients-per-source", "1", "--proxy-protocol", "--proxy-protocol-from", "192.0.2.128/25")
	}
	if err := l.StartScaleOut(ctx, lab.ScaleOutOptions{Servers: scaleServers, ProxyProtocol: scaleProxyProtocol, ServerArgs: serverArgs}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(l.HAProxyConfig()); err == nil {
		t.Logf("haproxy.cfg:\n%s", b)
	}

	// Four clients, all to https://da.example.test/IPHTTPS: HAProxy.
	for i := 1; i <= scaleClients; i++ {
		if err := l.StartClient(i); err != nil {
			t.Fatal(err)
		}
	}
	addrs := make([]netip.Addr, scaleClients+1) // index: client
	for i := 1; i <= scaleClients; i++ {
		s, err := l.WaitStatus(ctx, lab.ClientName(i), func(s status.Interface) bool { return scaleServerOf(s) > 0 })
		if err != nil {
			t.Fatalf("%s not active through HAProxy: %v", lab.ClientName(i), err)
		}
		addrs[i], _ = scaleAddr(s)
		t.Logf("%s active with %s (server %s)", lab.ClientName(i), addrs[i], lab.ScaleServerName(scaleServerOf(s)))
	}

	// The spread, and the real addresses in `show clients`.
	home := scaleCheckClients(t, l, addrs, []int{1, 2})
	for s := 1; s <= scaleServers; s++ {
		var on []string
		for i := 1; i <= scaleClients; i++ {
			if home[i] == s {
				on = append(on, lab.ClientName(i))
			}
		}
		t.Logf("FIGURE: %s has %d clients: %v", lab.ScaleServerName(s), len(on), on)
		if len(on) == 0 {
			t.Errorf("%s has no client: HAProxy did not spread %d clients across %d servers", lab.ScaleServerName(s), scaleClients, scaleServers)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for i := 1; i <= scaleClients; i++ {
		mustPing(t, l, l.ClientNS(i), lab.IntranetHost)
	}
	// The server logs name the real address too.
	if scaleProxyProtocol {
		for i := 1; i <= scaleClients; i++ {
			name := lab.ScaleServerName(home[i])
			logged := scaleLogLines(t, l, name, "client connected", lab.ClientIPv4(i)+":")
			if len(logged) == 0 {
				t.Errorf("%s's log has no \"client connected\" line with %s's address %s:\n%s",
					name, lab.ClientName(i), lab.ClientIPv4(i), lab.LogTail(l.LogFile(name), 20))
			} else if i == 1 {
				t.Logf("%s's log: %s", name, logged[0])
			}
		}
	}

	// --max-clients-per-source 1 counts real addresses: all four clients
	// are in (behind HAProxy's two source addresses, only two would be),
	// and a second session from client 1's address is refused by the
	// server that has client 1 and let in once by the other.
	if scaleProxyProtocol {
		scalePerSource(t, l, home[1])
		scaleRefuseDirect(t, l)
	}

	// Kill the server with the most clients; its clients must come back on
	// the other one, through HAProxy, with the other prefix.
	victim := 1
	if scaleCount(home, 2) > scaleCount(home, 1) {
		victim = 2
	}
	survivor := 3 - victim
	var moved, stayed []int
	pids := map[int]int{}
	for i := 1; i <= scaleClients; i++ {
		pids[i] = l.PID(lab.ClientName(i))
		if home[i] == victim {
			moved = append(moved, i)
		} else {
			stayed = append(stayed, i)
		}
	}
	t.Logf("killing %s (SIGKILL) under %v", lab.ScaleServerName(victim), clientNames(moved))
	killed := time.Now()
	if err := l.KillScaleServer(victim); err != nil {
		t.Fatal(err)
	}
	type result struct {
		i    int
		took time.Duration
		s    status.Interface
		err  error
	}
	results := make(chan result, len(moved))
	for _, i := range moved {
		go func() {
			wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := l.WaitStatus(wctx, lab.ClientName(i), func(s status.Interface) bool {
				return scaleServerOf(s) == survivor && !scaleHasPrefix(s, victim)
			})
			results <- result{i: i, took: time.Since(killed), s: s, err: err}
		}()
	}
	var took []string
	for range moved {
		r := <-results
		if r.err != nil {
			t.Errorf("%s did not come up on %s after %s was killed: %v", lab.ClientName(r.i), lab.ScaleServerName(survivor), lab.ScaleServerName(victim), r.err)
			continue
		}
		a, _ := scaleAddr(r.s)
		addrs[r.i] = a
		took = append(took, fmt.Sprintf("%s %s", lab.ClientName(r.i), r.took.Round(10*time.Millisecond)))
		t.Logf("FIGURE: failover of %s: active on %s with %s (addresses %v) %s after the kill",
			lab.ClientName(r.i), lab.ScaleServerName(survivor), a, r.s.Addresses, r.took.Round(time.Millisecond))
	}
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(took)
	t.Logf("FIGURE: failover times: %s", strings.Join(took, ", "))
	// HAProxy's health checks take the dead server out.
	scaleWaitHAProxy(t, l, lab.ScaleServerName(victim), "DOWN", 10*time.Second, killed)

	// Everyone is on the survivor now, with their real addresses; the
	// clients that were there all along kept their sessions' address.
	after := scaleCheckClients(t, l, addrs, []int{survivor})
	for i := 1; i <= scaleClients; i++ {
		if after[i] != survivor {
			t.Errorf("%s is on server %d after the failover, want %s", lab.ClientName(i), after[i], lab.ScaleServerName(survivor))
		}
		if got := l.PID(lab.ClientName(i)); got != pids[i] || !l.Running(lab.ClientName(i)) {
			t.Errorf("%s: pid %d (running %v), want the original pid %d still running", lab.ClientName(i), got, l.Running(lab.ClientName(i)), pids[i])
		}
	}
	for _, i := range moved {
		mustPing(t, l, l.ClientNS(i), lab.IntranetHost)
	}
	for _, i := range stayed {
		mustPing(t, l, l.ClientNS(i), lab.IntranetHost)
	}
	st, err := l.Status(context.Background(), lab.ScaleServerName(survivor))
	if err != nil {
		t.Fatalf("%s status: %v", lab.ScaleServerName(survivor), err)
	}
	// The survivor's own clients kept their sessions through the failover.
	for _, c := range st.Clients {
		for _, i := range stayed {
			if strings.HasPrefix(c.Remote, lab.ClientIPv4(i)+":") && !c.Since.Before(killed) {
				t.Errorf("%s's session on %s began at %s, after the kill of %s at %s: it was disturbed",
					lab.ClientName(i), lab.ScaleServerName(survivor), c.Since.Format(time.StampMilli), lab.ScaleServerName(victim), killed.Format(time.StampMilli))
			}
		}
	}
	t.Logf("FIGURE: %s counters at the end: %v", lab.ScaleServerName(survivor), st.Counters)
}

// scaleProxyProtocol switches on send-proxy-v2 and the servers'
// --proxy-protocol, and the checks that need them.
const scaleProxyProtocol = true

// scaleAddr is the first address of s inside one of the scale-out servers'
// prefixes.
func scaleAddr(s status.Interface) (netip.Addr, int) {
	for _, a := range s.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		for i := 1; i <= scaleServers; i++ {
			if lab.ScalePrefix(i).Contains(p.Addr()) {
				return p.Addr(), i
			}
		}
	}
	return netip.Addr{}, 0
}

// scaleHasPrefix reports whether s has an address in server i's prefix.
func scaleHasPrefix(s status.Interface, i int) bool {
	for _, a := range s.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && lab.ScalePrefix(i).Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// scaleServerOf is the server whose prefix an active client's address is
// in, or 0 if the client is not active.
func scaleServerOf(s status.Interface) int {
	if s.State != "LinkUp" || s.InterfaceStatus != lab.StatusActive || s.LastErrorCode != 0 {
		return 0
	}
	_, i := scaleAddr(s)
	return i
}

// scaleCheckClients reads `show clients` of servers and checks that it
// lists every client exactly once, with the address the client itself
// reports (addrs[i]) from the prefix of the server it is on, and (with the
// PROXY protocol) by its real address, never HAProxy's. It returns each
// client's server (index: client).
func scaleCheckClients(t *testing.T, l *lab.Lab, addrs []netip.Addr, servers []int) []int {
	t.Helper()
	home := make([]int, scaleClients+1)
	for _, s := range servers {
		name := lab.ScaleServerName(s)
		st, err := l.Status(context.Background(), name)
		if err != nil {
			t.Fatalf("%s status: %v", name, err)
		}
		for _, c := range st.Clients {
			i := slices.IndexFunc(addrs, func(a netip.Addr) bool {
				return a.IsValid() && slices.ContainsFunc(c.Addresses, func(ca string) bool {
					p, err := netip.ParsePrefix(ca)
					return err == nil && p.Addr() == a || ca == a.String()
				})
			})
			if i < 1 {
				t.Errorf("%s lists a session from %s with addresses %v, which no client has (clients: %v)", name, c.Remote, c.Addresses, addrs[1:])
				continue
			}
			if home[i] != 0 {
				t.Errorf("%s is listed twice (%s and %s)", lab.ClientName(i), lab.ScaleServerName(home[i]), name)
				continue
			}
			home[i] = s
			if !lab.ScalePrefix(s).Contains(addrs[i]) {
				t.Errorf("%s is on %s but its address %s is not in %s", lab.ClientName(i), name, addrs[i], lab.ScalePrefix(s))
			}
			ap, err := netip.ParseAddrPort(c.Remote)
			switch {
			case err != nil:
				t.Errorf("%s: remote of %s %q: %v", name, lab.ClientName(i), c.Remote, err)
			case !scaleProxyProtocol:
			case ap.Addr().String() != lab.ClientIPv4(i):
				t.Errorf("%s shows %s from %s, want its real address %s (HAProxy's address towards %s is %s)",
					name, lab.ClientName(i), c.Remote, lab.ClientIPv4(i), name, lab.ScaleEdgeIPv4(s))
			}
		}
	}
	for i := 1; i <= scaleClients; i++ {
		if home[i] == 0 {
			t.Errorf("no server lists %s (%s, tunnel address %s)", lab.ClientName(i), lab.ClientIPv4(i), addrs[i])
		}
	}
	return home
}

// scaleCount counts the clients on server s.
func scaleCount(home []int, s int) int {
	n := 0
	for _, h := range home[1:] {
		if h == s {
			n++
		}
	}
	return n
}

// clientNames names clients.
func clientNames(is []int) []string {
	var n []string
	for _, i := range is {
		n = append(n, lab.ClientName(i))
	}
	return n
}

// scaleLogLines returns the lines of daemon name's log holding every one
// of subs.
func scaleLogLines(t *testing.T, l *lab.Lab, name string, subs ...string) []string {
	t.Helper()
	b, err := os.ReadFile(l.LogFile(name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(line, s) }) {
			out = append(out, line)
		}
	}
	return out
}

// scaleWaitHAProxy waits until HAProxy reports server name in state want
// and logs how long after since that was.
func scaleWaitHAProxy(t *testing.T, l *lab.Lab, name, want string, timeout time.Duration, since time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]string
	var err error
	for time.Now().Before(deadline) {
		last, err = l.HAProxyServers(context.Background())
		if err == nil && last[name] == want {
			t.Logf("FIGURE: HAProxy reports %s %s %s after the kill", name, want, time.Since(since).Round(10*time.Millisecond))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("HAProxy does not report %s %s after %s: %v %v", name, want, timeout, last, err)
}

// iphttpsAttempt opens one IP-HTTPS session by hand from namespace ns to
// addr: TCP, an optional raw prefix (a PROXY header), TLS for ServerName,
// the POST. It returns the connection when the server answered 200 (the
// caller closes it), else nil and what happened.
func iphttpsAttempt(ns, addr string, prefix []byte, roots *x509.CertPool) (net.Conn, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := lab.Dialer(ns)(ctx, "tcp", addr)
	if err != nil {
		return nil, "dial: " + err.Error()
	}
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	if len(prefix) > 0 {
		if _, err := raw.Write(prefix); err != nil {
			raw.Close()
			return nil, "write PROXY header: " + err.Error()
		}
	}
	c := tls.Client(raw, &tls.Config{ServerName: lab.ServerName, RootCAs: roots})
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, "TLS handshake: " + err.Error()
	}
	if _, err := c.Write(wire.AppendRequest(nil, "/IPHTTPS", lab.ServerName)); err != nil {
		c.Close()
		return nil, "POST: " + err.Error()
	}
	var head []byte
	buf := make([]byte, 512)
	for !bytes.Contains(head, []byte("\r\n\r\n")) && len(head) < 4096 {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			c.Close()
			if err == io.EOF {
				return nil, fmt.Sprintf("closed after %q", head)
			}
			return nil, fmt.Sprintf("read after %q: %v", head, err)
		}
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
		c.Close()
		return nil, fmt.Sprintf("answer %q", head)
	}
	_ = raw.SetDeadline(time.Time{})
	return c, "200"
}

// scaleCounter reads a counter of scale-out server s.
func scaleCounter(t *testing.T, l *lab.Lab, s int, name string) uint64 {
	t.Helper()
	st, err := l.Status(context.Background(), lab.ScaleServerName(s))
	if err != nil {
		t.Fatalf("%s status: %v", lab.ScaleServerName(s), err)
	}
	v, ok := st.Counters[name]
	if !ok {
		t.Fatalf("%s has no counter %q (counters: %v)", lab.ScaleServerName(s), name, st.Counters)
	}
	return v
}

// scaleCounterReaches polls a counter of server s until it reaches want
// (at most 3 s) and returns the last value.
func scaleCounterReaches(t *testing.T, l *lab.Lab, s int, name string, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		v := scaleCounter(t, l, s, name)
		if v >= want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Server counters the PROXY protocol checks read.
const (
	counterPerSource = "refused_source_limit"
	counterProxyErr  = "proxy_protocol_errors"
)

// scalePerSource opens sessions by hand from client 1's namespace (its
// real address already has a session on server home) through HAProxy:
// with --max-clients-per-source 1, the server that has no session from
// that address yet lets exactly one in, every other attempt is refused,
// and the servers count and log the refusals by the real address.
func scalePerSource(t *testing.T, l *lab.Lab, home int) {
	t.Helper()
	roots := labRoots(t, l)
	before := map[int]uint64{}
	for s := 1; s <= scaleServers; s++ {
		before[s] = scaleCounter(t, l, s, counterPerSource)
	}
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	var notes []string
	refused := 0
	// leastconn: an accepted session makes its server the busier one, so
	// the attempts after it go to the other (client 1's), and are refused.
	for n := 0; n < 8 && (len(open) == 0 || refused < 2); n++ {
		c, what := iphttpsAttempt(l.ClientNS(1), net.JoinHostPort(lab.ServerIPv4, "443"), nil, roots)
		if c != nil {
			open = append(open, c)
		} else {
			refused++
		}
		notes = append(notes, what)
	}
	t.Logf("FIGURE: per-source limit 1: %d more sessions from %s through HAProxy: %d accepted, %d refused (%s)",
		len(notes), lab.ClientIPv4(1), len(open), refused, strings.Join(notes, "; "))
	if len(open) != 1 {
		t.Errorf("%d of %d extra sessions from %s were accepted; want exactly 1 (on the server that had none from it)", len(open), len(notes), lab.ClientIPv4(1))
	}
	if refused == 0 {
		t.Errorf("no extra session from %s was refused", lab.ClientIPv4(1))
	}
	// Each server now has exactly one session from client 1's address.
	var counted uint64
	for s := 1; s <= scaleServers; s++ {
		name := lab.ScaleServerName(s)
		st, err := l.Status(context.Background(), name)
		if err != nil {
			t.Fatalf("%s status: %v", name, err)
		}
		n := 0
		for _, c := range st.Clients {
			if ap, err := netip.ParseAddrPort(c.Remote); err == nil && ap.Addr().String() == lab.ClientIPv4(1) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s has %d sessions from %s, want 1 (clients %+v)", name, n, lab.ClientIPv4(1), st.Clients)
		}
		v := scaleCounter(t, l, s, counterPerSource)
		counted += v - before[s]
		t.Logf("FIGURE: %s %s +%d", name, counterPerSource, v-before[s])
	}
	if counted != uint64(refused) {
		t.Errorf("the servers counted %d refusals (%s), the attempts saw %d", counted, counterPerSource, refused)
	}
	if lines := scaleLogLines(t, l, lab.ScaleServerName(home), lab.ClientIPv4(1)+":", "refused"); len(lines) == 0 {
		t.Errorf("%s's log has no refusal naming %s:\n%s", lab.ScaleServerName(home), lab.ClientIPv4(1), lab.LogTail(l.LogFile(lab.ScaleServerName(home)), 20))
	}
}

// scaleRefuseDirect connects to server 1 around HAProxy: from HAProxy's own
// namespace and address (a peer allowed to send the header) without a
// header, and from a client with a forged header (a peer not allowed to).
// Both must be refused, the first counted as a PROXY protocol error.
func scaleRefuseDirect(t *testing.T, l *lab.Lab) {
	t.Helper()
	roots := labRoots(t, l)
	srv := net.JoinHostPort(lab.ScaleServerIPv4(1), "443")
	errs0 := scaleCounter(t, l, 1, counterProxyErr)
	sessions0 := scaleCounter(t, l, 1, "sessions_total")

	c, what := iphttpsAttempt(l.NS(lab.RoleEdge), srv, nil, roots)
	if c != nil {
		c.Close()
		t.Errorf("a session without a PROXY header from %s straight to %s was accepted", lab.ScaleEdgeIPv4(1), srv)
	}
	errs1 := scaleCounterReaches(t, l, 1, counterProxyErr, errs0+1)
	t.Logf("FIGURE: no PROXY header, from %s (HAProxy's address) to %s: refused (%s); %s +%d", lab.ScaleEdgeIPv4(1), srv, what, counterProxyErr, errs1-errs0)
	if errs1 != errs0+1 {
		t.Errorf("%s went from %d to %d after one connection without a header; want +1", counterProxyErr, errs0, errs1)
	}

	// A client forging a header that claims another client's address.
	forged := []byte(fmt.Sprintf("PROXY TCP4 %s %s 40000 443\r\n", lab.ClientIPv4(3), lab.ScaleServerIPv4(1)))
	c, what = iphttpsAttempt(l.ClientNS(2), srv, forged, roots)
	if c != nil {
		c.Close()
		t.Errorf("a session with a PROXY header from %s (not in --proxy-protocol-from) was accepted", lab.ClientIPv4(2))
	}
	errs2 := scaleCounterReaches(t, l, 1, counterProxyErr, errs1+1)
	if errs2 != errs1+1 {
		t.Errorf("%s went from %d to %d after one forged header from a peer not allowed to send one; want +1", counterProxyErr, errs1, errs2)
	}
	t.Logf("FIGURE: forged PROXY header from %s (not an allowed peer) to %s: refused (%s); %s +%d", lab.ClientIPv4(2), srv, what, counterProxyErr, errs2-errs1)
	if got := scaleCounter(t, l, 1, "sessions_total"); got != sessions0 {
		t.Errorf("%s's sessions_total went from %d to %d during the direct attempts", lab.ScaleServerName(1), sessions0, got)
	}
}
