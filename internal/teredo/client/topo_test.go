package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo/server"
	"github.com/iphttps/iphttps/internal/testenv"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/tundev"
)

// The test topology, three namespaces joined by veth pairs; the Teredo
// server is the real one (package teredo/server), in process:
//
//	cli ── up0 192.0.2.2/24 ── in0 192.0.2.1 ┐
//	                                         nat (forwarding; NAT rules per test)
//	srv ── down0 198.51.100.1 ── out0 198.51.100.2 ┘
//	srv lo: 203.0.113.10 (primary), .11 (secondary), .20 (peers and relays of the tests)
var (
	primary      = netip.MustParseAddr("203.0.113.10")
	secondary    = netip.MustParseAddr("203.0.113.11")
	otherHost    = netip.MustParseAddr("203.0.113.20")
	natOutside   = netip.MustParseAddr("198.51.100.2")
	clientAddr   = netip.MustParseAddr("192.0.2.2")
	intranet     = netip.MustParsePrefix("2001:db8:c0::/64")
	intranetHost = netip.MustParseAddr("2001:db8:c0::10")
)

// natKind is the NAT between the client and the server.
type natKind int

const (
	noNAT      natKind = iota // routing only: the client's own address is its mapping
	restricted                // masquerade (port-preserving), inbound new connections dropped
	symmetric                 // masquerade fully-random: a new port per destination
	cone                      // restricted, plus a port forward of 50000 to the client's 40000
)

// natRules is the NAT namespace's ruleset: masq on the outside interface
// (empty: no NAT), a home router's refusal of inbound new connections
// except those forwarded, and dnat rules (port forwards).
func natRules(masq, dnat string) string {
	if masq == "" {
		return "table ip tcnat\ndelete table ip tcnat\n"
	}
	return fmt.Sprintf(`table ip tcnat
delete table ip tcnat
table ip tcnat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		%[2]s
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "out0" ip saddr 192.0.2.2 udp sport 40000 snat to 198.51.100.2:50000
		oifname "out0" %[1]s
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "out0" ct state new drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "out0" ct status dnat accept
		iifname "out0" ct state new drop
	}
}
`, masq, dnat)
}

// fixture is the topology with, unless noServer, the Teredo server
// running in srv.
type fixture struct {
	t             *testing.T
	cli, nat, srv string
	server        *server.Server

	answerPings atomic.Bool // the intranet host answers echo requests through the relay
	mu          sync.Mutex
	toHost      [][]byte // what the server relayed to its host
}

func newFixture(t *testing.T, kind natKind, withServer bool) *fixture {
	t.Helper()
	testenv.RequireTool(t, "nft", "nftables")
	why := "runs a Teredo client and server in network namespaces"
	f := &fixture{t: t,
		cli: netnstest.New(t, "iptcc-", why),
		nat: netnstest.New(t, "iptcn-", why),
		srv: netnstest.New(t, "iptcs-", why),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(lab.AddVeth(ctx, f.cli, "up0", f.nat, "in0"))
	must(lab.AddVeth(ctx, f.nat, "out0", f.srv, "down0"))
	must(lab.AddAddr(ctx, f.cli, "up0", "192.0.2.2/24"))
	must(lab.AddAddr(ctx, f.nat, "in0", "192.0.2.1/24"))
	must(lab.AddAddr(ctx, f.nat, "out0", "198.51.100.2/24"))
	must(lab.AddAddr(ctx, f.srv, "down0", "198.51.100.1/24"))
	for _, a := range []string{"203.0.113.10/32", "203.0.113.11/32", "203.0.113.20/32"} {
		must(lab.AddAddr(ctx, f.srv, "lo", a))
	}
	must(lab.AddRoute(ctx, f.cli, "default", "192.0.2.1"))
	must(lab.AddRoute(ctx, f.nat, "default", "198.51.100.1"))
	must(lab.AddRoute(ctx, f.srv, "192.0.2.0/24", "198.51.100.2"))
	netnstest.SetSysctl(t, f.nat, "net.ipv4.ip_forward", "1")
	switch kind {
	case restricted:
		f.nft(f.nat, natRules("masquerade", ""))
	case symmetric:
		f.nft(f.nat, natRules("masquerade fully-random", ""))
	case cone:
		f.nft(f.nat, natRules("masquerade", `iifname "out0" udp dport 50000 dnat to 192.0.2.2:40000`))
	}
	if withServer {
		f.startServer()
	}
	return f
}

// nft loads a ruleset into ns.
func (f *fixture) nft(ns, rules string) {
	f.t.Helper()
	file := filepath.Join(f.t.TempDir(), "rules.nft")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		f.t.Fatal(err)
	}
	netnstest.Run(f.t, "ip", "netns", "exec", ns, "nft", "-f", file)
}

// flushConntrack forgets ns's connection tracking entries: new NAT rules
// then apply to flows already seen.
func (f *fixture) flushConntrack(ns string) {
	f.t.Helper()
	netnstest.Do(f.t, ns, func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) })
}

func (f *fixture) startServer() {
	t := f.t
	netnstest.Do(t, f.srv, func() error {
		var err error
		f.server, err = server.New(server.Options{
			Primary: primary, Lab: true, Serves: []netip.Prefix{intranet},
			NewHostWriter: func() tundev.PacketWriter { return relayHost{f} },
			Log:           slog.New(slog.DiscardHandler),
		})
		return err
	})
	f.answerPings.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.server.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// relayHost is the server's host side as a PacketWriter.
type relayHost struct{ f *fixture }

func (h relayHost) Add(p []byte) error { h.f.fromRelay(p); return nil }
func (h relayHost) Flush() error       { return nil }

// fromRelay is the server's host: it keeps what the relay hands it and,
// as the intranet host, answers echo requests through the relay.
func (f *fixture) fromRelay(p []byte) {
	f.mu.Lock()
	f.toHost = append(f.toHost, append([]byte(nil), p...))
	f.mu.Unlock()
	if f.answerPings.Load() && packet.Dst(p) == intranetHost {
		if typ, ok := packet.ICMPv6Type(p); ok && typ == packet.TypeEchoRequest {
			f.server.FromHost(echo(packet.Dst(p), packet.Src(p), packet.TypeEchoReply, p[packet.HeaderLen+4:]))
			f.server.FlushHost()
		}
	}
}

// relayed waits until the server's host got n packets and returns them.
func (f *fixture) relayed(n int, within time.Duration) [][]byte {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for {
		f.mu.Lock()
		got := append([][]byte(nil), f.toHost...)
		f.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the relay passed %d packets to its host within %v, want %d", len(got), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// udpIn opens a UDP socket in ns.
func (f *fixture) udpIn(ns string, ap netip.AddrPort) *net.UDPConn {
	f.t.Helper()
	var c *net.UDPConn
	netnstest.Do(f.t, ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
		return err
	})
	f.t.Cleanup(func() { c.Close() })
	return c
}

// echo builds an ICMPv6 echo message of type typ whose body (identifier,
// sequence, data) is body.
func echo(src, dst netip.Addr, typ uint8, body []byte) []byte {
	b := packet.AppendIPv6Header(nil, packet.ProtoICMPv6, 4+len(body), 64, src, dst)
	b = append(b, typ, 0, 0, 0)
	b = append(b, body...)
	packet.SetICMPv6Checksum(b)
	return b
}

// ping builds an echo request with data.
func ping(src, dst netip.Addr, data string) []byte {
	return echo(src, dst, packet.TypeEchoRequest, append([]byte{0x12, 0x34, 0, 1}, data...))
}

// running is a Connect in progress in the client namespace.
type running struct {
	t       *testing.T
	started time.Time
	cancel  context.CancelFunc
	done    chan outcome
	once    sync.Once
	out     outcome
}

type outcome struct {
	up  bool
	err error
	at  time.Time
}

// addPeer adds a fourth namespace: a host on the Internet, 203.0.113.130
// without NAT, routed through srv.
func (f *fixture) addPeer() string {
	t := f.t
	t.Helper()
	peer := netnstest.New(t, "iptcp-", "runs a second Teredo client in a namespace")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, err := range []error{
		lab.AddVeth(ctx, f.srv, "p0", peer, "up0"),
		lab.AddAddr(ctx, f.srv, "p0", "203.0.113.129/25"),
		lab.AddAddr(ctx, peer, "up0", "203.0.113.130/25"),
		lab.AddRoute(ctx, peer, "default", "203.0.113.129"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	netnstest.SetSysctl(t, f.srv, "net.ipv4.ip_forward", "1")
	return peer
}

// start runs tr.Connect in the client namespace until stopped (at the
// latest when the test ends).
func (f *fixture) start(tr *Transport, l hostside.Link) *running {
	return f.startIn(f.cli, tr, l)
}

// startIn runs tr.Connect in namespace ns.
func (f *fixture) startIn(ns string, tr *Transport, l hostside.Link) *running {
	return startConnect(f.t, ns, tr, l)
}

// startConnect runs tr.Connect in namespace ns until stopped (at the
// latest when the test ends).
func startConnect(t *testing.T, ns string, tr *Transport, l hostside.Link) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, started: time.Now(), cancel: cancel, done: make(chan outcome, 1)}
	go func() {
		var o outcome
		if err := lab.Do(ns, func() error {
			o.up, o.err = tr.Connect(ctx, l)
			return nil
		}); err != nil {
			o.err = err
		}
		o.at = time.Now()
		r.done <- o
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// wait waits for Connect to return by itself.
func (r *running) wait(within time.Duration) outcome {
	r.t.Helper()
	select {
	case o := <-r.done:
		r.once.Do(func() { r.out = o })
		return o
	case <-time.After(within):
		r.t.Fatalf("Connect still running after %v", within)
		return outcome{}
	}
}

// stop ends Connect and returns its outcome.
func (r *running) stop() outcome {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.out = <-r.done:
		case <-time.After(15 * time.Second):
			r.t.Error("Connect did not return within 15 s of its context ending")
		}
	})
	return r.out
}

// waitState waits until the Teredo state is want.
func waitState(t *testing.T, l *fakeLink, want string, within time.Duration) status.TeredoState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ts := l.teredo()
		if ts.State == want {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("Teredo state %q (error %q) after %v, want %q; history %q", ts.State, ts.Error, within, want, l.stateHistory())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCounter waits until the client's counter name reaches want.
func waitCounter(t *testing.T, tr *Transport, name string, want uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := tr.Counters()[name]
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %s = %d, want %d (all: %v)", name, got, want, tr.Counters())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTransport makes a transport for the test topology's server.
func newTransport(t *testing.T, o Options) *Transport {
	t.Helper()
	if o.Server == "" {
		o.Server = primary.String()
	}
	o.Lab = true
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// execIn runs a command in namespace ns and returns its combined output.
func execIn(ns string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
}
