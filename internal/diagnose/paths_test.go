package diagnose

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/packet"
	sixtofourserver "github.com/iphttps/iphttps/internal/sixtofour/server"
	teredoclient "github.com/iphttps/iphttps/internal/teredo/client"
	teredoserver "github.com/iphttps/iphttps/internal/teredo/server"
	"github.com/iphttps/iphttps/internal/testenv"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
)

// The network of the 6to4 and Teredo checks' tests: three namespaces, the
// server's running the real Teredo server and 6to4 relay (packages
// teredo/server and sixtofour/server), whose host answers echo requests to
// the intranet host and to the relay's 6to4 address:
//
//	cli ── up0 192.0.2.2/24 ── in0 192.0.2.1 ┐
//	                                         nat (forwarding; NAT and filter rules per test)
//	srv ── down0 198.51.100.1 ── out0 198.51.100.2 ┘
//	srv lo: 203.0.113.10 (Teredo primary, 6to4 relay), 203.0.113.11 (Teredo secondary)
var (
	pathsServer   = netip.MustParseAddr("203.0.113.10")
	pathsClient   = netip.MustParseAddr("192.0.2.2")
	pathsNATOut   = netip.MustParseAddr("198.51.100.2")
	pathsIntranet = netip.MustParsePrefix("2001:db8:c0::/64")
	pathsHost     = netip.MustParseAddr("2001:db8:c0::10") // answers echo requests
	pathsMute     = netip.MustParseAddr("2001:db8:c0::99") // does not
)

// pathsNet says how the network between the client and the server
// behaves.
type pathsNet struct {
	masquerade    string // the NAT's nftables statement ("": routing only)
	drop41        bool   // the NAT drops protocol 41 (a filter that lets TCP, UDP and ICMP through)
	noTeredo      bool   // no Teredo server runs
	muteSecondary bool   // the server's secondary address neither receives nor sends
}

// pathsFixture is the running network.
type pathsFixture struct {
	t        *testing.T
	cli      string
	teredo   *teredoserver.Server
	relay    *sixtofourserver.Server
	received chan []byte // what the servers handed their host
}

func newPathsNet(t *testing.T, n pathsNet) *pathsFixture {
	t.Helper()
	testenv.RequireTool(t, "nft", "nftables")
	why := "runs the 6to4 and Teredo checks against the real servers in network namespaces"
	f := &pathsFixture{t: t, cli: netnstest.New(t, "ipdpc-", why), received: make(chan []byte, 64)}
	nat, srv := netnstest.New(t, "ipdpn-", why), netnstest.New(t, "ipdps-", why)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, err := range []error{
		lab.AddVeth(ctx, f.cli, "up0", nat, "in0"),
		lab.AddVeth(ctx, nat, "out0", srv, "down0"),
		lab.AddAddr(ctx, f.cli, "up0", pathsClient.String()+"/24"),
		lab.AddAddr(ctx, nat, "in0", "192.0.2.1/24"),
		lab.AddAddr(ctx, nat, "out0", pathsNATOut.String()+"/24"),
		lab.AddAddr(ctx, srv, "down0", "198.51.100.1/24"),
		lab.AddAddr(ctx, srv, "lo", "203.0.113.10/32"),
		lab.AddAddr(ctx, srv, "lo", "203.0.113.11/32"),
		lab.AddRoute(ctx, f.cli, "default", "192.0.2.1"),
		lab.AddRoute(ctx, nat, "default", "198.51.100.1"),
		lab.AddRoute(ctx, srv, "192.0.2.0/24", pathsNATOut.String()),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	netnstest.SetSysctl(t, nat, "net.ipv4.ip_forward", "1")
	var rules strings.Builder
	rules.WriteString("table ip dpt {\n\tchain postrouting { type nat hook postrouting priority srcnat; policy accept;\n")
	if n.masquerade != "" {
		rules.WriteString("\t\toifname \"out0\" " + n.masquerade + "\n")
	}
	// A home router: nothing from outside starts a connection, to it (an
	// entry for the cone test's answer would take the client's port) or
	// through it.
	rules.WriteString("\t}\n\tchain input { type filter hook input priority filter; policy accept;\n")
	if n.masquerade != "" {
		rules.WriteString("\t\tiifname \"out0\" ct state new drop\n")
	}
	rules.WriteString("\t}\n\tchain forward { type filter hook forward priority filter; policy accept;\n")
	if n.masquerade != "" {
		rules.WriteString("\t\tiifname \"out0\" ct state new drop\n")
	}
	if n.drop41 {
		rules.WriteString("\t\tip protocol 41 drop\n")
	}
	rules.WriteString("\t}\n}\n")
	nft(t, nat, rules.String())
	if n.muteSecondary {
		nft(t, srv, "table ip dpt {\n\tchain input { type filter hook input priority filter; policy accept; ip daddr 203.0.113.11 drop; }\n"+
			"\tchain output { type filter hook output priority filter; policy accept; ip saddr 203.0.113.11 drop; }\n}\n")
	}
	f.startServers(srv, !n.noTeredo)
	return f
}

// nft loads an nftables ruleset into ns.
func nft(t *testing.T, ns, rules string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	netnstest.Run(t, "ip", "netns", "exec", ns, "nft", "-f", file)
}

// hostWriter is the servers' host: it answers echo requests to the
// intranet host (back through Teredo) and to the relay's 6to4 address
// (back over protocol 41), as the kernel would.
type hostWriter struct{ f *pathsFixture }

func (h hostWriter) Add(p []byte) error {
	select {
	case h.f.received <- bytes.Clone(p):
	default:
	}
	typ, ok := packet.ICMPv6Type(p)
	dst := packet.Dst(p)
	if !ok || typ != packet.TypeEchoRequest || (dst != pathsHost && dst != h.f.relay.Self()) {
		return nil
	}
	reply := bytes.Clone(p)
	copy(reply[8:24], p[24:40])
	copy(reply[24:40], p[8:24])
	reply[packet.HeaderLen] = packet.TypeEchoReply
	packet.SetICMPv6Checksum(reply)
	if dst == pathsHost {
		h.f.teredo.FromHost(reply)
		h.f.teredo.FlushHost()
	} else {
		h.f.relay.FromHost(reply)
		h.f.relay.FlushHost()
	}
	return nil
}

func (h hostWriter) Flush() error { return nil }

// startServers starts the 6to4 relay and, with teredo, the Teredo server,
// in namespace srv until the test ends.
func (f *pathsFixture) startServers(srv string, teredo bool) {
	t := f.t
	log := slog.New(slog.DiscardHandler)
	newHost := func() tundev.PacketWriter { return hostWriter{f} }
	netnstest.Do(t, srv, func() error {
		var err error
		f.relay, err = sixtofourserver.New(sixtofourserver.Options{Address: pathsServer, Lab: true,
			Serves: []netip.Prefix{pathsIntranet}, NewHostWriter: newHost, Log: log})
		if err != nil || !teredo {
			return err
		}
		f.teredo, err = teredoserver.New(teredoserver.Options{Primary: pathsServer, Lab: true,
			Serves: []netip.Prefix{pathsIntranet}, NewHostWriter: newHost, Log: log})
		return err
	})
	run := func(r func(context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	run(f.relay.Run)
	if teredo {
		run(f.teredo.Run)
	}
}

// pathsOptions are the options of a diagnosis of both methods against the
// fixture's server, with echoHost for teredo-relay (invalid: none).
func pathsOptions(echoHost netip.Addr) Options {
	return Options{
		SixToFourRelay: pathsServer, SixToFourLab: true,
		TeredoServer: pathsServer.String(), TeredoLab: true, TeredoEchoHost: echoHost,
		Interface: "iphttps0", Timeout: 5 * time.Second,
	}
}

// diagnose runs the diagnosis with o in the client's namespace.
func (f *pathsFixture) diagnose(o Options) Report {
	f.t.Helper()
	var r Report
	d := fakeDeps(f.t, newFakeDNS(f.t, zone{}))
	netnstest.Do(f.t, f.cli, func() error {
		r = Run(context.Background(), o, d, nil)
		return nil
	})
	var b bytes.Buffer
	WriteText(&b, r)
	f.t.Logf("diagnosis in %s:\n%s", f.cli, b.String())
	return r
}

// check returns the check called name of r.
func check(t *testing.T, r Report, name string) Check {
	t.Helper()
	c, ok := r.Check(name)
	if !ok {
		t.Fatalf("no check %s in the report", name)
	}
	return c
}

// wantVerdict fails t unless r's verdict is method, with reasons for the
// methods before it: each "method check code" ("-" for no code).
func wantVerdict(t *testing.T, r Report, method string, reasons ...string) {
	t.Helper()
	if r.Verdict == nil {
		t.Fatal("no verdict")
	}
	var got []string
	for _, x := range r.Verdict.Reasons {
		code := "-"
		if x.Code != nil {
			code = x.Code.String()
		}
		if x.Cause == "" {
			t.Errorf("reason %+v without a cause", x)
		}
		got = append(got, x.Method+" "+x.Check+" "+code)
	}
	if r.Verdict.Method != method || strings.Join(got, ", ") != strings.Join(reasons, ", ") {
		t.Errorf("verdict %q, reasons %q; want %q, %q", r.Verdict.Method, got, method, reasons)
	}
}

// No NAT, nothing filtered: every check passes, the NAT type is "none",
// the intranet host answers through the server, and 6to4 would carry the
// traffic.
func TestPathsDirect(t *testing.T) {
	t.Parallel()
	f := newPathsNet(t, pathsNet{})
	r := f.diagnose(pathsOptions(pathsHost))
	for _, name := range append(SixToFourCheckNames(), TeredoCheckNames()...) {
		wantCheck(t, check(t, r, name), Pass, 0)
	}
	if r.URL != "" || r.Result != Pass || r.InterfaceStatus != "" || r.SixToFourRelay != pathsServer.String() || r.TeredoServer != pathsServer.String() {
		t.Errorf("report %+v", r)
	}
	wantSaw(t, check(t, r, Check6to4Address), "local address", pathsClient.String())
	wantSaw(t, check(t, r, Check6to4Address), "6to4 address", "2002:c000:202::c000:202")
	wantSaw(t, check(t, r, Check6to4Mapping), "sees this host at", pathsClient.String())
	wantSaw(t, check(t, r, Check6to4Reachability), "echo reply", "from 2002:cb00:710a::cb00:710a")
	wantSaw(t, check(t, r, CheckTeredoPrimary), "prefix", "2001:0:cb00:710a::/64")
	wantSaw(t, check(t, r, CheckTeredoPrimary), "cone test", "answered (from 203.0.113.11:3544)")
	wantSaw(t, check(t, r, CheckTeredoNAT), "NAT", teredoclient.NATNone)
	wantSaw(t, check(t, r, CheckTeredoRelay), "echo reply", "relayed by 203.0.113.10:3544")
	if c := check(t, r, CheckTeredoRelay); !strings.Contains(c.Cause, "answer ICMPv6 echo requests") {
		t.Errorf("teredo-relay's note %q does not state the requirement", c.Cause)
	}
	wantVerdict(t, r, MethodSixToFour)
}

// Behind a port-preserving NAT that drops what it did not ask for: the
// mapping test catches the NAT (0x2743), the reachability test is skipped,
// Teredo qualifies as "restricted" and would carry the traffic; without
// an echo host teredo-relay is skipped, not failed.
func TestPathsRestrictedNAT(t *testing.T) {
	t.Parallel()
	f := newPathsNet(t, pathsNet{masquerade: "masquerade"})
	r := f.diagnose(pathsOptions(netip.Addr{}))
	wantCheck(t, check(t, r, Check6to4Address), Pass, 0)
	m := check(t, r, Check6to4Mapping)
	wantCheck(t, m, Fail, int64(winerr.NetUnreach))
	for _, sub := range []string{"behind a NAT", pathsClient.String(), pathsNATOut.String()} {
		if !strings.Contains(m.Cause, sub) {
			t.Errorf("6to4-mapping cause %q lacks %q", m.Cause, sub)
		}
	}
	if m.InterfaceStatus != "" || m.Symbol != "WSAENETUNREACH" || len(m.Remedies) == 0 || !strings.Contains(m.Remedies[0], "Teredo or IP-HTTPS") {
		t.Errorf("6to4-mapping: status %q, symbol %q, remedies %q", m.InterfaceStatus, m.Symbol, m.Remedies)
	}
	if c := check(t, r, Check6to4Reachability); c.Status != Skipped || c.Reason != "6to4-mapping failed" {
		t.Errorf("6to4-reachability: %s %q", c.Status, c.Reason)
	}
	wantCheck(t, check(t, r, CheckTeredoPrimary), Pass, 0)
	wantSaw(t, check(t, r, CheckTeredoPrimary), "cone test", "no answer")
	wantSaw(t, check(t, r, CheckTeredoSecondary), "mapping", pathsNATOut.String())
	wantSaw(t, check(t, r, CheckTeredoNAT), "NAT", teredoclient.NATRestricted)
	if c := check(t, r, CheckTeredoRelay); c.Status != Skipped || !strings.Contains(c.Reason, "no --teredo-echo-host") {
		t.Errorf("teredo-relay: %s %q", c.Status, c.Reason)
	}
	if r.Result != Fail || r.Failed != Check6to4Mapping || r.Code != Code(winerr.NetUnreach) || r.InterfaceStatus != "" {
		t.Errorf("report: %s at %s %s %q", r.Result, r.Failed, r.Code, r.InterfaceStatus)
	}
	wantVerdict(t, r, MethodTeredo, "6to4 6to4-mapping 0x2743")
}

// A symmetric NAT: Teredo is refused (0x2afc, with the fallbacks), and
// with 6to4 caught by the mapping test no method would carry the traffic.
func TestPathsSymmetricNAT(t *testing.T) {
	t.Parallel()
	f := newPathsNet(t, pathsNet{masquerade: "masquerade fully-random"})
	r := f.diagnose(pathsOptions(pathsHost))
	wantCheck(t, check(t, r, CheckTeredoSecondary), Pass, 0)
	c := check(t, r, CheckTeredoNAT)
	wantCheck(t, c, Fail, int64(winerr.NoData))
	if !strings.Contains(c.Cause, "symmetric NAT") || !strings.Contains(c.Fix, "IP-HTTPS, or forward a UDP port") ||
		!strings.Contains(strings.Join(c.Remedies, " "), "--teredo-client-port") {
		t.Errorf("teredo-nat: cause %q, fix %q, remedies %q", c.Cause, c.Fix, c.Remedies)
	}
	wantSaw(t, c, "NAT", teredoclient.NATSymmetric)
	if c := check(t, r, CheckTeredoRelay); c.Status != Skipped || c.Reason != "teredo-nat failed" {
		t.Errorf("teredo-relay: %s %q", c.Status, c.Reason)
	}
	wantVerdict(t, r, "", "6to4 6to4-mapping 0x2743", "Teredo teredo-nat 0x2afc")
}

// A path that drops protocol 41: the reachability test fails after 3
// echoes of 2 s (0x274c); Teredo would carry the traffic.
func TestPathsProtocol41Filtered(t *testing.T) {
	t.Parallel()
	f := newPathsNet(t, pathsNet{drop41: true})
	r := f.diagnose(pathsOptions(netip.Addr{}))
	wantCheck(t, check(t, r, Check6to4Mapping), Pass, 0)
	c := check(t, r, Check6to4Reachability)
	wantCheck(t, c, Fail, int64(winerr.TimedOut))
	if !strings.Contains(c.Cause, "protocol 41 is blocked") || !strings.Contains(c.Fix, "protocol 41") || c.Duration < 6*time.Second {
		t.Errorf("6to4-reachability: cause %q, fix %q, after %v", c.Cause, c.Fix, c.Duration)
	}
	wantVerdict(t, r, MethodTeredo, "6to4 6to4-reachability 0x274c")
}

// No Teredo server: teredo-primary fails within the client's budget with
// the cause and fix; 6to4's mapping test is not run (nobody answers on
// UDP 3544) and the reachability test decides: 6to4 would carry the
// traffic.
func TestPathsNoTeredoServer(t *testing.T) {
	t.Parallel()
	f := newPathsNet(t, pathsNet{noTeredo: true})
	r := f.diagnose(pathsOptions(pathsHost))
	if c := check(t, r, Check6to4Mapping); c.Status != Skipped || !strings.Contains(c.Reason, "not run: no Teredo server") {
		t.Errorf("6to4-mapping: %s %q", c.Status, c.Reason)
	}
	wantCheck(t, check(t, r, Check6to4Reachability), Pass, 0)
	c := check(t, r, CheckTeredoPrimary)
	wantCheck(t, c, Fail, int64(winerr.TimedOut))
	primary, _, _ := teredoclient.Budgets()
	if !strings.HasPrefix(c.Cause, "UDP 3544 blocked on the path or no Teredo server") || !strings.Contains(c.Fix, "port 3544") ||
		c.Duration < 8*time.Second || c.Duration > primary+time.Second {
		t.Errorf("teredo-primary: cause %q, fix %q, after %v", c.Cause, c.Fix, c.Duration)
	}
	for _, name := range TeredoCheckNames()[1:] {
		if c := check(t, r, name); c.Status != Skipped || c.Reason == "" {
			t.Errorf("%s: %s %q", name, c.Status, c.Reason)
		}
	}
	wantVerdict(t, r, MethodSixToFour)
}

// The secondary address silent: a WARN there (the NAT type cannot be
// determined), and teredo-nat fails as the client would not qualify.
func TestPathsSecondarySilent(t *testing.T) {
	t.Parallel()
	f := newPathsNet(t, pathsNet{muteSecondary: true})
	o := pathsOptions(netip.Addr{})
	o.SixToFourRelay = netip.Addr{}
	r := f.diagnose(o)
	if _, ok := r.Check(Check6to4Address); ok {
		t.Error("6to4 checks ran without --6to4-relay")
	}
	c := check(t, r, CheckTeredoSecondary)
	wantCheck(t, c, Warn, int64(winerr.TimedOut))
	if !strings.Contains(c.Cause, "NAT type cannot be determined") || !strings.Contains(c.Fix, "--teredo-secondary") {
		t.Errorf("teredo-secondary: cause %q, fix %q", c.Cause, c.Fix)
	}
	wantCheck(t, check(t, r, CheckTeredoNAT), Fail, int64(winerr.TimedOut))
	wantVerdict(t, r, "", "Teredo teredo-nat 0x274c")
}

// An intranet host that does not answer echo requests: teredo-relay fails
// with DirectAccess's requirement.
func TestPathsEchoHostSilent(t *testing.T) {
	t.Parallel()
	f := newPathsNet(t, pathsNet{})
	o := pathsOptions(pathsMute)
	o.SixToFourRelay = netip.Addr{}
	r := f.diagnose(o)
	c := check(t, r, CheckTeredoRelay)
	wantCheck(t, c, Fail, int64(winerr.TimedOut))
	if !strings.Contains(c.Cause, pathsMute.String()) || !strings.Contains(c.Cause, "answer ICMPv6 echo requests") || c.Fix == "" {
		t.Errorf("teredo-relay: cause %q, fix %q", c.Cause, c.Fix)
	}
	// The request reached the host: the server relayed it.
	deadline := time.After(time.Second)
	for {
		select {
		case p := <-f.received:
			if packet.Dst(p) == pathsMute {
				wantVerdict(t, r, "", "Teredo teredo-relay 0x274c")
				return
			}
		case <-deadline:
			t.Fatal("the server relayed no echo request to the host")
		}
	}
}
