package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/iphttps/iphttps/internal/testenv"
)

// The 6to4 tests drive iphttps's server as a 6to4 relay from a peer that
// is not iphttps: testdata/sixtofour_peer.py, which builds and parses its
// packets with scapy and sends them on raw IPv4 sockets, run by the
// system's Python (Debian's python3-scapy), in the 6to4 lab.
const (
	sixToFourPython = "/usr/bin/python3" // the PATH may hold another Python, without scapy
	sixToFourScript = "testdata/sixtofour_peer.py"
	// sixToFourEchoSize is the echo data of the peer's pings.
	sixToFourEchoSize = 56
	// sixToFourLabUpTimeout bounds building the topology.
	sixToFourLabUpTimeout = 60 * time.Second
)

// requireSixToFourPeer skips without root, the lab's tools, or Python with
// scapy (and fails instead under CI). It returns the command line that
// runs the peer.
func requireSixToFourPeer(t *testing.T) []string {
	t.Helper()
	testenv.RequireRoot(t, "the 6to4 lab creates network namespaces, veth pairs and TUN devices")
	testenv.Require(t, lab.CheckSixToFourTools())
	py := testenv.RequireTool(t, sixToFourPython, "python3")
	if err := scapyMissing(); err != nil {
		testenv.SkipOrFail(t, err.Error())
	}
	script, err := filepath.Abs(sixToFourScript)
	if err != nil {
		t.Fatal(err)
	}
	return []string{py, script}
}

// scapyMissing says why the peer's Python cannot import scapy, or nil.
var scapyMissing = sync.OnceValue(func() error {
	out, err := exec.Command(sixToFourPython, "-c", "import scapy.layers.inet6").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s has no scapy: install the Debian package python3-scapy (%v: %s)", sixToFourPython, err, bytes.TrimSpace(out))
	}
	return nil
})

// newSixToFourLab builds a 6to4 lab for t (after checking the peer can
// run) and removes it when the test ends, logging the tail of the
// server's log first if the test failed.
func newSixToFourLab(t *testing.T, o lab.SixToFourOptions) *lab.SixToFourLab {
	t.Helper()
	requireSixToFourPeer(t)
	o.Binary = requireLab(t)
	o.Log = testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), sixToFourLabUpTimeout)
	defer cancel()
	start := time.Now()
	l, err := lab.SixToFourUp(ctx, o)
	if err != nil {
		t.Fatalf("6to4 lab up: %v", err)
	}
	t.Logf("6to4 lab up in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() && l.PID(lab.IPHTTPSServerName) != 0 {
			f := l.LogFile(lab.IPHTTPSServerName)
			t.Logf("--- last lines of %s:\n%s", f, lab.LogTail(f, 60))
		}
		if err := l.Down(); err != nil {
			t.Errorf("6to4 lab down: %v", err)
		}
		for _, ns := range l.Namespaces() {
			if lab.NetnsExists(ns) {
				t.Errorf("namespace %s survived Down", ns)
			}
		}
	})
	return l
}

// startSixToFourServer starts the lab's server and returns its 6to4
// counters' reader.
func startSixToFourServer(t *testing.T, l *lab.SixToFourLab) relayServer {
	t.Helper()
	start := time.Now()
	if err := l.StartServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("server up with its 6to4 relay on %s (%s) after %s", l.ServerIPv4(), l.Server6to4(), time.Since(start).Round(time.Millisecond))
	return relayServer{t: t, sock: l.ServerSocket(), transport: "6to4"}
}

// peerEvent is one JSON line of the peer (see the script for each mode's).
type peerEvent struct {
	Event string `json:"event"`
	// ping, a reply: what its outer IPv4 and inner IPv6 headers carried.
	OuterSrc        string  `json:"outer_src"`
	OuterDst        string  `json:"outer_dst"`
	OuterProto      int     `json:"outer_proto"`
	OuterTTL        int     `json:"outer_ttl"`
	OuterChecksumOK bool    `json:"outer_checksum_ok"`
	InnerSrc        string  `json:"inner_src"`
	InnerDst        string  `json:"inner_dst"`
	HopLimit        int     `json:"hlim"`
	NextHeader      int     `json:"next_header"`
	ICMPType        int     `json:"icmp_type"`
	ID              int     `json:"id"`
	Seq             int     `json:"seq"`
	DataHex         string  `json:"data_hex"`
	ICMPChecksumOK  bool    `json:"icmp_checksum_ok"`
	RequestDst      string  `json:"request_dst"`
	RTTms           float64 `json:"rtt_ms"`
	// ping, the summary (Sent also: attack, packets sent).
	Sent       int    `json:"sent"`
	Received   int    `json:"received"`
	Lost       []int  `json:"lost"`
	Duplicates int    `json:"duplicates"`
	Unexpected int    `json:"unexpected"`
	StoppedBy  string `json:"stopped_by"`
	// ready.
	Src6    string `json:"src6"`
	Address string `json:"address"`
	// attack.
	Kind      string  `json:"kind"`
	Requested int     `json:"requested"`
	Seconds   float64 `json:"seconds"`
	// tunnel, the summary.
	ToIPv4     int `json:"to_ipv4"`
	FromIPv4   int `json:"from_ipv4"`
	Refused    int `json:"refused"`
	NotCarried int `json:"not_carried"`
	// Line is an error's input, or a line that was not JSON.
	Line string `json:"line"`
}

// sixToFourPeer is a run of the peer in a namespace.
type sixToFourPeer struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan peerEvent // closed when its output ends
	cancel context.CancelFunc
	stderr lockedBuffer
	once   sync.Once
	err    error
}

// lockedBuffer is a bytes.Buffer for a process's output, read while the
// process writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startSixToFourPeer runs the peer with args in ns, killed after limit at
// the latest (and when the test ends).
func startSixToFourPeer(t *testing.T, ns, name string, limit time.Duration, args ...string) *sixToFourPeer {
	t.Helper()
	argv := append(requireSixToFourPeer(t), args...)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	p := &sixToFourPeer{t: t, name: name, cancel: cancel, events: make(chan peerEvent, 4096)}
	p.cmd = lab.Command(ctx, ns, argv...)
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: start %v: %v", name, argv, err)
	}
	go func() {
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e peerEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = peerEvent{Event: "not-json", Line: sc.Text()}
			}
			p.events <- e
		}
	}()
	t.Cleanup(func() { p.stop(0) })
	return p
}

// stop waits up to grace for the peer to exit, then kills it, and returns
// how it ended (the first call's result).
func (p *sixToFourPeer) stop(grace time.Duration) error {
	p.once.Do(func() {
		done := make(chan error, 1)
		go func() {
			for range p.events { // what is left
			}
			done <- p.cmd.Wait()
		}()
		tm := time.NewTimer(grace)
		defer tm.Stop()
		select {
		case p.err = <-done:
		case <-tm.C:
			p.cancel()
			p.err = <-done
		}
		p.cancel()
	})
	return p.err
}

// until returns the events up to the first of kind (excluded) and that
// event, waiting at most timeout. It fails t if the peer ends first, or
// says something that is not JSON or an error.
func (p *sixToFourPeer) until(kind string, timeout time.Duration) ([]peerEvent, peerEvent) {
	p.t.Helper()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	var before []peerEvent
	for {
		select {
		case e, ok := <-p.events:
			switch {
			case !ok:
				err := p.stop(5 * time.Second)
				p.t.Fatalf("%s ended (%v) before %q; stderr:\n%s", p.name, err, kind, p.stderr.String())
			case e.Event == kind:
				return before, e
			case e.Event == "not-json" || e.Event == "error":
				p.t.Fatalf("%s: %s %q; stderr:\n%s", p.name, e.Event, e.Line, p.stderr.String())
			}
			before = append(before, e)
		case <-tm.C:
			p.t.Fatalf("%s: no %q within %s; stderr:\n%s", p.name, kind, timeout, p.stderr.String())
		}
	}
}

// finish closes the peer's input and waits (up to timeout) for its
// summary and its exit, which must be clean.
func (p *sixToFourPeer) finish(timeout time.Duration) ([]peerEvent, peerEvent) {
	p.t.Helper()
	_ = p.stdin.Close()
	before, sum := p.until("summary", timeout)
	if err := p.stop(5 * time.Second); err != nil {
		p.t.Errorf("%s: %v; stderr:\n%s", p.name, err, p.stderr.String())
	}
	return before, sum
}

// sixToFourPing is what the peer's ping mode is given.
type sixToFourPing struct {
	client int          // the lab client it runs in
	dsts   []netip.Addr // pinged in turn, count rounds
	count  int
	id     int
	wait   time.Duration // for the last replies
	// untilStdin: stop sending when finish closes the input (count and
	// 30 s bound it still).
	untilStdin bool
}

// startPing starts the peer's ping mode and waits until it is ready.
func startPing(t *testing.T, l *lab.SixToFourLab, s sixToFourPing) *sixToFourPeer {
	t.Helper()
	args := []string{"ping", "--src4", l.ClientIPv4(s.client).String(), "--dst4", lab.SixToFourServerIPv4,
		"--count", strconv.Itoa(s.count), "--interval", "0.05", "--id", strconv.Itoa(s.id),
		"--size", strconv.Itoa(sixToFourEchoSize), "--wait", strconv.FormatFloat(s.wait.Seconds(), 'f', -1, 64),
		"--max-seconds", "30"}
	for _, d := range s.dsts {
		args = append(args, "--dst6", d.String())
	}
	if s.untilStdin {
		args = append(args, "--until-stdin-closes")
	}
	p := startSixToFourPeer(t, l.ClientNS(s.client), fmt.Sprintf("ping peer in %s", l.ClientNS(s.client)), 60*time.Second, args...)
	_, ready := p.until("ready", 15*time.Second)
	// The peer made its 6to4 address from its IPv4 address itself: it
	// must be the one the lab (and the server) computes.
	if ready.Src6 != l.Client6to4(s.client).String() {
		t.Errorf("the peer's 6to4 address is %s, the lab's %s", ready.Src6, l.Client6to4(s.client))
	}
	return p
}

// runPing runs the peer's ping mode to its end and returns the replies and
// the summary.
func runPing(t *testing.T, l *lab.SixToFourLab, s sixToFourPing) ([]peerEvent, peerEvent) {
	t.Helper()
	p := startPing(t, l, s)
	limit := time.Duration(s.count*len(s.dsts))*60*time.Millisecond + s.wait + 10*time.Second
	return p.finish(limit)
}

// echoPayload is the data of the peer's echo request seq (as the script
// makes it).
func echoPayload(id, seq, size int) []byte {
	b := fmt.Appendf(nil, "6to4 peer id=%d seq=%d ", id, seq)
	for len(b) < size {
		b = append(b, '.')
	}
	return b
}

// checkEchoes fails t unless every echo request of the ping was answered
// once, through the relay: each reply in protocol 41 from the server's
// IPv4 address to the client's, carrying an echo reply from the pinged
// address to the client's 6to4 address with the request's identifier,
// sequence number and data, and valid checksums. hops is how many routers
// the echo crossed each way inside IPv6 (by destination).
func checkEchoes(t *testing.T, l *lab.SixToFourLab, s sixToFourPing, hops map[netip.Addr]int, replies []peerEvent, sum peerEvent) {
	t.Helper()
	if sum.Sent == 0 || sum.Received != sum.Sent || len(sum.Lost) != 0 || sum.Duplicates != 0 || sum.Unexpected != 0 {
		t.Errorf("client %d pinging %v: %d sent, %d answered, lost %v, %d duplicates, %d unexpected packets",
			s.client, s.dsts, sum.Sent, sum.Received, sum.Lost, sum.Duplicates, sum.Unexpected)
	}
	if len(replies) != sum.Received {
		t.Errorf("client %d: %d reply lines for %d replies", s.client, len(replies), sum.Received)
	}
	bad := 0
	for _, r := range replies {
		var errs []string
		want := func(what string, got, want any) {
			if got != want {
				errs = append(errs, fmt.Sprintf("%s %v, want %v", what, got, want))
			}
		}
		want("outer source", r.OuterSrc, lab.SixToFourServerIPv4)
		want("outer destination", r.OuterDst, l.ClientIPv4(s.client).String())
		want("outer protocol", r.OuterProto, 41)
		want("outer header checksum valid", r.OuterChecksumOK, true)
		// One router, inet, between the server and the client.
		want("outer TTL", r.OuterTTL, 63)
		dst, err := netip.ParseAddr(r.RequestDst)
		if err != nil {
			errs = append(errs, fmt.Sprintf("reply to no request of this run (seq %d)", r.Seq))
		} else {
			want("inner source", r.InnerSrc, dst.String())
			want("hop limit", r.HopLimit, 64-hops[dst])
		}
		want("inner destination", r.InnerDst, l.Client6to4(s.client).String())
		want("next header", r.NextHeader, 58)
		want("ICMPv6 type", r.ICMPType, 129)
		want("identifier", r.ID, s.id)
		want("data", r.DataHex, hex.EncodeToString(echoPayload(s.id, r.Seq, sixToFourEchoSize)))
		want("ICMPv6 checksum valid", r.ICMPChecksumOK, true)
		if len(errs) > 0 {
			if bad++; bad <= 5 {
				t.Errorf("client %d: echo reply %d: %s", s.client, r.Seq, strings.Join(errs, "; "))
			}
		}
	}
	if bad > 5 {
		t.Errorf("client %d: %d bad echo replies in all", s.client, bad)
	}
}

// showSixToFourClients returns the 6to4 clients `iphttps show clients
// --json` lists, after checking that the table of `iphttps show clients`
// has a TRANSPORT 6to4 row for each, with its address and remote.
func showSixToFourClients(t *testing.T, sock string) []status.Client {
	t.Helper()
	js := iphttpsOutput(t, "show", "clients", "--json", "--socket", sock)
	var all []status.Client
	if err := json.Unmarshal(js, &all); err != nil {
		t.Fatalf("show clients --json: %v\n%s", err, js)
	}
	text := string(iphttpsOutput(t, "show", "clients", "--socket", sock))
	lines := strings.Split(text, "\n")
	if f := strings.Fields(lines[0]); len(f) == 0 || f[0] != "TRANSPORT" {
		t.Errorf("show clients: no TRANSPORT column:\n%s", text)
	}
	var out []status.Client
	for _, c := range all {
		if c.Transport != "6to4" {
			continue
		}
		out = append(out, c)
		found := false
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == "6to4" && strings.Contains(line, fmt.Sprint(c.Addresses)) && slices.Contains(f, c.Remote) {
				found = true
			}
		}
		if !found {
			t.Errorf("show clients: no 6to4 row for %s %v:\n%s", c.Remote, c.Addresses, text)
		}
	}
	return out
}

// iphttpsOutput runs the iphttps binary with args and returns its
// standard output; it fails t if the command fails.
func iphttpsOutput(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, env.bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("iphttps %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// clientByRemote is the 6to4 client of cs at IPv4 address remote.
func clientByRemote(cs []status.Client, remote netip.Addr) (status.Client, bool) {
	for _, c := range cs {
		if c.Remote == remote.String() {
			return c, true
		}
	}
	return status.Client{}, false
}

// deltas is after-before for every counter in either.
func deltas(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k := range union(before, after) {
		d[k] = after[k] - before[k]
	}
	return d
}

// checkDeltas fails t unless every counter in want moved by exactly its
// value and every other drop counter stayed still.
func checkDeltas(t *testing.T, what string, before, after, want map[string]uint64) {
	t.Helper()
	d := deltas(before, after)
	for k := range union(d, want) {
		if w, ok := want[k]; ok && d[k] != w {
			t.Errorf("%s: %s moved by %d, want %d", what, k, d[k], w)
		} else if !ok && strings.HasPrefix(k, "drop_") && d[k] != 0 {
			t.Errorf("%s: %s moved by %d, want 0", what, k, d[k])
		}
	}
}

// TestSixToFourRelay: an independent 6to4 peer (scapy) on a public
// IPv4 address pings the intranet host and the server's 6to4 address
// through the server's 6to4 relay and gets every echo back, in protocol
// 41 from the server's IPv4 address, with the right inner addresses, data
// and checksums; `iphttps show clients` lists it as a 6to4 client with its
// 6to4 address and packet counts, and the counters moved by exactly the
// pings. A client behind a NAT, whose 6to4 address embeds its
// public-looking inside address, is refused as spoofed (counted); a
// client behind a firewall that drops protocol 41 never reaches the
// server. Last, the peer's minimal 6to4 interface (a TUN device) lets the
// client's own TCP fetch the intranet web page through the relay, which
// sees the client's 6to4 address.
func TestSixToFourRelay(t *testing.T) {
	l := newSixToFourLab(t, lab.SixToFourOptions{Prefix: "ip6r-",
		Clients: []lab.SixToFourKind{lab.SixToFourPublic, lab.SixToFourNAT, lab.SixToFourFiltered}})
	srv := startSixToFourServer(t, l)
	host, self := l.IntranetHost(), l.Server6to4()
	start := srv.counters()
	for k, v := range start {
		if v != 0 {
			t.Errorf("counter %s is %d before any 6to4 traffic", k, v)
		}
	}

	// The public client pings the intranet host (one router, the server,
	// in between) and the server's own 6to4 address.
	ping := sixToFourPing{client: 1, dsts: []netip.Addr{host, self}, count: 5, id: 0x6401, wait: 2 * time.Second}
	pathStart := readIntranetPath(t, l)
	replies, sum := runPing(t, l, ping)
	checkEchoes(t, l, ping, map[netip.Addr]int{host: 1, self: 0}, replies, sum)
	if sum.Received != sum.Sent {
		t.Logf("public client: %d of %d echoes lost; on the way to the intranet host, %s", sum.Sent-sum.Received, sum.Sent, pathStart.lost(readIntranetPath(t, l)))
	}
	n := uint64(sum.Sent)
	srv.waitCounters(start, map[string]uint64{"packets_sent": n}, 5*time.Second)
	afterPing := srv.counters()
	checkDeltas(t, "public client's pings", start, afterPing, map[string]uint64{
		"packets_received": n, "packets_to_host": n, "packets_from_host": n, "packets_sent": n,
	})
	t.Logf("public client: %d echoes answered; counters %v", sum.Received, nonZero(afterPing))

	clients := showSixToFourClients(t, l.ServerSocket())
	c, ok := clientByRemote(clients, l.ClientPublicIPv4(1))
	switch {
	case !ok:
		t.Errorf("show clients does not list the public client %s: %+v", l.ClientPublicIPv4(1), clients)
	case len(c.Addresses) != 1 || c.Addresses[0] != l.Client6to4(1).String() || c.PktsIn != n || c.PktsOut != n:
		t.Errorf("show clients: the public client is %+v; want address %s, %d packets each way", c, l.Client6to4(1), n)
	}
	if len(clients) != 1 {
		t.Errorf("show clients lists %d 6to4 clients, want 1: %+v", len(clients), clients)
	}

	// Behind the NAT: the server sees the NAT's address outside, the
	// client's inside address in its 6to4 source.
	natPing := sixToFourPing{client: 2, dsts: []netip.Addr{host}, count: 3, id: 0x6402, wait: time.Second}
	_, natSum := runPing(t, l, natPing)
	if natSum.Sent != 3 || natSum.Received != 0 || natSum.Unexpected != 0 {
		t.Errorf("client behind the NAT: %d sent, %d answered, %d unexpected; want 3, 0, 0", natSum.Sent, natSum.Received, natSum.Unexpected)
	}
	srv.waitCounters(afterPing, map[string]uint64{"drop_source_spoofed": 3}, 5*time.Second)
	afterNAT := srv.counters()
	checkDeltas(t, "pings from behind the NAT", afterPing, afterNAT, map[string]uint64{
		"packets_received": 3, "drop_source_spoofed": 3, "packets_to_host": 0, "packets_sent": 0,
	})

	// Filtered: protocol 41 never reaches the server.
	fwPing := sixToFourPing{client: 3, dsts: []netip.Addr{host}, count: 3, id: 0x6403, wait: time.Second}
	_, fwSum := runPing(t, l, fwPing)
	if fwSum.Sent != 3 || fwSum.Received != 0 || fwSum.Unexpected != 0 {
		t.Errorf("filtered client: %d sent, %d answered, %d unexpected; want 3, 0, 0", fwSum.Sent, fwSum.Received, fwSum.Unexpected)
	}
	if d, err := l.FilterDrops(context.Background(), 3); err != nil || d != 3 {
		t.Errorf("the filter dropped %d protocol-41 packets of the filtered client (%v), want 3", d, err)
	}
	afterFW := srv.counters()
	checkDeltas(t, "pings of the filtered client", afterNAT, afterFW, map[string]uint64{"packets_received": 0})
	clients = showSixToFourClients(t, l.ServerSocket())
	if len(clients) != 1 {
		t.Errorf("after the NAT and filtered clients, show clients lists %d 6to4 clients, want 1 (the public one): %+v", len(clients), clients)
	}

	// HTTP through the peer's 6to4 interface, with the client's own TCP.
	tun := startSixToFourPeer(t, l.ClientNS(1), "tunnel peer in "+l.ClientNS(1), 40*time.Second,
		"tunnel", "--src4", l.ClientIPv4(1).String(), "--relay4", lab.SixToFourServerIPv4,
		"--route", lab.SixToFourIntranetPrefix, "--duration", "30")
	if _, ready := tun.until("ready", 15*time.Second); ready.Address != l.Client6to4(1).String() {
		t.Errorf("the tunnel's address is %s, want %s", ready.Address, l.Client6to4(1))
	}
	url := "http://[" + host.String() + "]/"
	line, body, err := lab.HTTPGet(context.Background(), l.ClientNS(1), url)
	if err != nil {
		t.Errorf("GET %s through 6to4: %v", url, err)
	} else {
		t.Logf("GET %s through 6to4: %s: %q", url, line, body)
		from := "You came from [" + l.Client6to4(1).String() + "]:"
		if line != "HTTP/1.1 200 OK" || !bytes.Contains(body, []byte(from)) || !bytes.Contains(body, []byte("through 6to4")) {
			t.Errorf("GET %s through 6to4: %s, body %q; want 200 and %q", url, line, body, from)
		}
	}
	time.Sleep(200 * time.Millisecond) // the connection's last segments
	_, tunSum := tun.finish(10 * time.Second)
	if tunSum.ToIPv4 == 0 || tunSum.FromIPv4 == 0 || tunSum.Refused != 0 {
		t.Errorf("tunnel: %d packets out, %d in, %d refused; want some each way and none refused", tunSum.ToIPv4, tunSum.FromIPv4, tunSum.Refused)
	}
	srv.waitCounters(afterFW, map[string]uint64{"packets_received": uint64(tunSum.ToIPv4)}, 5*time.Second)
	afterHTTP := srv.counters()
	d := deltas(afterFW, afterHTTP)
	checkDeltas(t, "HTTP through the tunnel", afterFW, afterHTTP, map[string]uint64{
		"packets_received": uint64(tunSum.ToIPv4), "packets_to_host": uint64(tunSum.ToIPv4),
	})
	if d["packets_sent"] < uint64(tunSum.FromIPv4) {
		t.Errorf("HTTP through the tunnel: the relay sent %d packets, the tunnel received %d", d["packets_sent"], tunSum.FromIPv4)
	}
	t.Logf("HTTP through the tunnel: %d packets to the relay, %d back (%d multicast or link-local ones not carried)", tunSum.ToIPv4, tunSum.FromIPv4, tunSum.NotCarried)

	// show statistics has the 6to4 counters.
	stats := string(iphttpsOutput(t, "show", "statistics", "--socket", l.ServerSocket()))
	for _, re := range []string{`(?m)^6to4/drop_source_spoofed\s*:\s*3$`, fmt.Sprintf(`(?m)^6to4/packets_received\s*:\s*%d$`, afterHTTP["packets_received"])} {
		if !regexp.MustCompile(re).MatchString(stats) {
			t.Errorf("show statistics does not match %s:\n%s", re, stats)
		}
	}
	if !l.Running(lab.IPHTTPSServerName) {
		t.Error("the server is not running at the end")
	}
}

// sixToFourHostile is a kind of packet the attacking peer sends: n of
// them, each to be counted under counter (a drop counter, or "" for
// packets the relay must carry to the host).
type sixToFourHostile struct {
	kind    string
	n       int
	counter string
}

// TestSixToFourRelayHostile attacks the server's 6to4 relay from a peer
// (scapy) on a public address next to an honest one: packets whose 6to4
// source embeds another IPv4 address (the honest client's, the server's),
// native sources, destinations the server does not serve (a foreign
// prefix, another address in the server's 6to4 prefix, the honest
// client's 6to4 address), sources no 6to4 packet may carry (link-local,
// multicast, loopback, IPv4-mapped), inner packets that are empty,
// truncated or not IPv6; then two floods of 10,000 packets, one refused,
// one carried to a UDP sink on the intranet host. Each kind must move its
// drop counter by exactly its number and no other; the honest peer,
// pinging the intranet host 20 times a second all along, loses nothing;
// the kernel drops nothing at the relay's socket; the client table holds
// the two real clients only; the server still runs.
func TestSixToFourRelayHostile(t *testing.T) {
	l := newSixToFourLab(t, lab.SixToFourOptions{Prefix: "ip6h-",
		Clients: []lab.SixToFourKind{lab.SixToFourPublic, lab.SixToFourPublic}})
	srv := startSixToFourServer(t, l)
	const honest, attacker = 1, 2
	host := l.IntranetHost()
	sink := startUDPSink(t, l.NS(lab.SixToFourRoleCorp), netip.AddrPortFrom(host, 9999))
	rawPort := uint16(41) // /proc/net/raw shows a raw socket's protocol as its port
	rawDropsStart := socketDrops(t, l.NS(lab.SixToFourRoleServer), "raw", rawPort)
	if len(rawDropsStart) != 1 {
		t.Fatalf("want the relay's one protocol-41 socket in /proc/net/raw, found %v", rawDropsStart)
	}
	start := srv.counters()
	pathStart := readIntranetPath(t, l)

	ping := sixToFourPing{client: honest, dsts: []netip.Addr{host}, count: 400, id: 0x6404, wait: 2 * time.Second, untilStdin: true}
	pinger := startPing(t, l, ping)
	pingStart := time.Now()
	atk := startSixToFourPeer(t, l.ClientNS(attacker), "attacking peer in "+l.ClientNS(attacker), 60*time.Second,
		"attack", "--src4", l.ClientIPv4(attacker).String(), "--dst4", lab.SixToFourServerIPv4,
		"--victim6", l.Client6to4(honest).String(), "--host6", host.String(), "--udp-port", "9999",
		"--max-seconds", "15")
	atk.until("ready", 15*time.Second)
	attackStart := time.Now()

	const n, flood = 100, 10000
	kinds := []sixToFourHostile{
		{"spoof-victim", n, "drop_source_spoofed"},
		{"spoof-server", n, "drop_source_spoofed"},
		{"native-source", n, "drop_source_not_relay"},
		{"native-intranet", n, "drop_source_not_relay"},
		{"unserved-destination", n, "drop_destination_not_ours"},
		{"server-prefix-other", n, "drop_destination_not_ours"},
		{"relay-to-victim", n, "drop_destination_spoofed"},
		{"link-local-source", n, "drop_source_not_routable"},
		{"multicast-source", n, "drop_source_not_routable"},
		{"loopback-source", n, "drop_source_not_routable"},
		{"mapped-source", n, "drop_source_not_routable"},
		{"empty", n, "drop_malformed_ipv6"},
		{"truncated-header", n, "drop_malformed_ipv6"},
		{"length-past-end", n, "drop_malformed_ipv6"},
		{"not-ipv6", n, "drop_malformed_ipv6"},
		{"flood-spoofed", flood, "drop_source_spoofed"},
		{"flood-valid", flood, ""},
	}
	expected := map[string]uint64{}
	var hostile, carried uint64
	for _, k := range kinds {
		before := srv.counters()
		fmt.Fprintf(atk.stdin, "%s %d\n", k.kind, k.n)
		_, sent := atk.until("sent", 30*time.Second)
		if sent.Kind != k.kind || sent.Sent != k.n {
			t.Fatalf("%s: the peer sent %d of %d (%+v)", k.kind, sent.Sent, k.n, sent)
		}
		hostile += uint64(k.n)
		want := map[string]uint64{}
		if k.counter != "" {
			want[k.counter] = uint64(k.n)
			srv.waitCounters(before, want, 10*time.Second)
		} else {
			carried += uint64(k.n)
			if got := sink.waitCount(int64(carried), 10*time.Second); got != int64(carried) {
				t.Errorf("%s: the intranet host's UDP sink got %d datagrams, want %d; on the way, %s",
					k.kind, got, carried, pathStart.lost(readIntranetPath(t, l)))
			}
		}
		after := srv.counters()
		checkDeltas(t, k.kind, before, after, want)
		if k.counter != "" {
			expected[k.counter] += uint64(k.n)
			t.Logf("%-20s %5d sent in %5.3fs: %s +%d", k.kind, sent.Sent, sent.Seconds, k.counter, deltas(before, after)[k.counter])
		} else {
			t.Logf("%-20s %5d sent in %5.3fs: %d carried to the intranet host's sink", k.kind, sent.Sent, sent.Seconds, sink.count())
		}
	}
	atk.finishAttack()
	attackTook := time.Since(attackStart)
	// At least 60 honest pings (3 s at 20 a second), however quick the
	// attack.
	if d := time.Until(pingStart.Add(3 * time.Second)); d > 0 {
		time.Sleep(d)
	}

	// The honest client noticed nothing.
	replies, sum := pinger.finish(10 * time.Second)
	checkEchoes(t, l, ping, map[netip.Addr]int{host: 1}, replies, sum)
	if sum.Received != sum.Sent {
		t.Logf("honest peer: %d of %d echoes lost; on the way, %s", sum.Sent-sum.Received, sum.Sent, pathStart.lost(readIntranetPath(t, l)))
	}
	if sum.StoppedBy != "stdin" {
		t.Errorf("the honest peer stopped (%s) before the attack ended (%s)", sum.StoppedBy, attackTook.Round(time.Millisecond))
	}
	if sum.Sent < 50 {
		t.Errorf("the honest peer sent %d pings during the attack, want at least 50", sum.Sent)
	}
	t.Logf("honest peer: %d pings, %d answered (the attack took %s)", sum.Sent, sum.Received, attackTook.Round(time.Millisecond))

	if !l.Running(lab.IPHTTPSServerName) {
		t.Fatal("the server is not running after the attack")
	}
	pings := uint64(sum.Sent)
	srv.waitCounters(start, map[string]uint64{"packets_sent": pings}, 5*time.Second)
	end := srv.counters()
	want := map[string]uint64{
		"packets_received": pings + hostile, "packets_to_host": pings + carried,
		"packets_from_host": pings, "packets_sent": pings,
	}
	for k, v := range expected {
		want[k] = v
	}
	checkDeltas(t, "the whole attack", start, end, want)
	t.Logf("counters after the attack: %v", nonZero(end))
	for a, d := range socketDrops(t, l.NS(lab.SixToFourRoleServer), "raw", rawPort) {
		if d != rawDropsStart[a] {
			t.Errorf("the kernel dropped %d packets at the relay's socket %s", d-rawDropsStart[a], a)
		}
	}
	// Every datagram the relay carried reached the sink: a shortfall is
	// the daemon's unless the kernel counted it on the way (the sink's
	// socket overflowing, a neighbour queue, ...), which the message
	// says.
	pathEnd := readIntranetPath(t, l)
	if got := sink.count(); got != flood {
		t.Errorf("the intranet host's UDP sink got %d datagrams, want %d; on the way, %s", got, flood, pathStart.lost(pathEnd))
	}
	for _, k := range []string{"Udp6RcvbufErrors", "Udp6InErrors"} {
		if d := pathEnd.corp[k] - pathStart.corp[k]; d != 0 {
			t.Errorf("the intranet host's kernel counted %d %s: the sink's socket fell behind the flood (not the daemon's loss)", d, k)
		}
	}

	// Only the two real clients made it into the table.
	clients := showSixToFourClients(t, l.ServerSocket())
	if len(clients) != 2 {
		t.Errorf("show clients lists %d 6to4 clients, want 2: %+v", len(clients), clients)
	}
	for i, in := range map[int]uint64{honest: pings, attacker: flood} {
		c, ok := clientByRemote(clients, l.ClientPublicIPv4(i))
		if !ok || len(c.Addresses) != 1 || c.Addresses[0] != l.Client6to4(i).String() || c.PktsIn != in {
			t.Errorf("show clients: client %d is %+v (listed %v); want %s with %d packets in", i, c, ok, l.Client6to4(i), in)
		}
	}
}

// intranetPath is a reading of the kernel's counters on the way from the
// server's TUN device to the intranet host: da's IPv6 forwarding, corp's
// IPv6, ICMPv6 and UDP (the sink's socket), and the neighbour table's
// discards of packets waiting for a neighbour to be resolved.
type intranetPath struct {
	da, corp map[string]uint64
	// unresolved is unresolved_discards of /proc/net/stat/ndisc_cache:
	// the IPv6 neighbour table is one for the whole host, so other
	// namespaces' discards count there too.
	unresolved uint64
}

// intranetPathCounters are the counters intranetPath.lost reports, by
// namespace role.
var intranetPathCounters = map[string][]string{
	lab.SixToFourRoleServer: {"Ip6InDiscards", "Ip6OutDiscards", "Ip6InNoRoutes", "Ip6OutNoRoutes", "Ip6InTooBigErrors", "Icmp6OutDestUnreachs"},
	lab.SixToFourRoleCorp:   {"Ip6InDiscards", "Ip6InAddrErrors", "Udp6InErrors", "Udp6RcvbufErrors", "Udp6NoPorts"},
}

func readIntranetPath(t *testing.T, l *lab.SixToFourLab) intranetPath {
	t.Helper()
	return intranetPath{
		da:         procNetSnmp6(t, l.NS(lab.SixToFourRoleServer)),
		corp:       procNetSnmp6(t, l.NS(lab.SixToFourRoleCorp)),
		unresolved: ndiscUnresolvedDiscards(t),
	}
}

// lost says which of the kernel's loss counters on the way moved from p
// to q.
func (p intranetPath) lost(q intranetPath) string {
	var moved []string
	for _, role := range []string{lab.SixToFourRoleServer, lab.SixToFourRoleCorp} {
		before, after := p.da, q.da
		if role == lab.SixToFourRoleCorp {
			before, after = p.corp, q.corp
		}
		for _, k := range intranetPathCounters[role] {
			if d := after[k] - before[k]; d != 0 {
				moved = append(moved, fmt.Sprintf("%s %s +%d", role, k, d))
			}
		}
	}
	if d := q.unresolved - p.unresolved; d != 0 {
		moved = append(moved, fmt.Sprintf("host-wide IPv6 neighbour unresolved_discards +%d (packets or offloaded super-packets)", d))
	}
	if len(moved) == 0 {
		return "the kernel counted no loss"
	}
	return "the kernel counted " + strings.Join(moved, ", ")
}

// procNetSnmp6 reads /proc/net/snmp6 in namespace ns.
func procNetSnmp6(t *testing.T, ns string) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := lab.Command(ctx, ns, "cat", "/proc/net/snmp6").CombinedOutput()
	if err != nil {
		t.Fatalf("/proc/net/snmp6 in %s: %v: %s", ns, err, out)
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				m[f[0]] = n
			}
		}
	}
	return m
}

// ndiscUnresolvedDiscards sums the unresolved_discards column of
// /proc/net/stat/ndisc_cache (one line per CPU, in hexadecimal).
func ndiscUnresolvedDiscards(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/stat/ndisc_cache")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	col := slices.Index(strings.Fields(lines[0]), "unresolved_discards")
	if col < 0 {
		t.Fatalf("/proc/net/stat/ndisc_cache has no unresolved_discards column: %q", lines[0])
	}
	var sum uint64
	for _, line := range lines[1:] {
		if f := strings.Fields(line); len(f) > col {
			n, err := strconv.ParseUint(f[col], 16, 64)
			if err != nil {
				t.Fatalf("/proc/net/stat/ndisc_cache: %q: %v", line, err)
			}
			sum += n
		}
	}
	return sum
}

// finishAttack ends the attack mode (its input) and waits for its exit.
func (p *sixToFourPeer) finishAttack() {
	p.t.Helper()
	_ = p.stdin.Close()
	for e := range p.events {
		p.t.Errorf("%s: unexpected %+v", p.name, e)
	}
	if err := p.stop(5 * time.Second); err != nil {
		p.t.Errorf("%s: %v; stderr:\n%s", p.name, err, p.stderr.String())
	}
}

// udpSink counts the datagrams arriving at a UDP socket in a namespace.
type udpSink struct {
	c *net.UDPConn
	n atomic.Int64
}

// startUDPSink listens on addr in ns until the test ends.
func startUDPSink(t *testing.T, ns string, addr netip.AddrPort) *udpSink {
	t.Helper()
	s := &udpSink{}
	err := lab.Do(ns, func() error {
		var err error
		s.c, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("UDP sink on %s in %s: %v", addr, ns, err)
	}
	_ = s.c.SetReadBuffer(4 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := s.c.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			s.n.Add(1)
		}
	}()
	t.Cleanup(func() {
		s.c.Close()
		<-done
	})
	return s
}

func (s *udpSink) count() int64 { return s.n.Load() }

// waitCount waits (up to timeout) until want datagrams arrived and
// returns the count then.
func (s *udpSink) waitCount(want int64, timeout time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	for s.count() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return s.count()
}
