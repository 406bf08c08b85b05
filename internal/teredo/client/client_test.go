package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/winerr"
)

func TestNew(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		ok   bool
		want string // in the error
	}{
		{"empty", Options{}, false, "no Teredo server"},
		{"ipv6", Options{Server: "2001:db8::1"}, false, "not an IPv4 address"},
		{"private", Options{Server: "10.0.0.1", Lab: true}, false, "not a global unicast"},
		{"documentation without lab", Options{Server: "203.0.113.10"}, false, "only in lab mode"},
		{"documentation in lab", Options{Server: "203.0.113.10", Lab: true}, true, ""},
		{"public", Options{Server: "65.54.227.120"}, true, ""},
		{"name", Options{Server: "teredo.example.test"}, true, ""},
		{"name with dot", Options{Server: "teredo.example.test."}, true, ""},
		{"bad name", Options{Server: "teredo server"}, false, "neither an IPv4 address nor a host name"},
		{"bad secondary", Options{Server: "203.0.113.10", Lab: true, Secondary: netip.MustParseAddr("192.168.1.1")}, false, "secondary"},
		{"ipv6 secondary", Options{Server: "203.0.113.10", Lab: true, Secondary: netip.MustParseAddr("2001:db8::1")}, false, "secondary"},
		{"same secondary", Options{Server: "203.0.113.10", Lab: true, Secondary: netip.MustParseAddr("203.0.113.10")}, false, "secondary"},
		{"short refresh", Options{Server: "203.0.113.10", Lab: true, RefreshInterval: 500 * time.Millisecond}, false, "refresh interval"},
		{"long refresh", Options{Server: "203.0.113.10", Lab: true, RefreshInterval: 2 * time.Hour}, false, "refresh interval"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := New(c.o)
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				if tr.Name() != "Teredo" || tr.o.RefreshInterval == 0 {
					t.Fatalf("name %q, refresh %v", tr.Name(), tr.o.RefreshInterval)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if code, _ := winerr.CodeOf(err); code != winerr.InvalidParameter || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v (code %s), want %s with %q", err, winerr.Hex(code), winerr.Hex(winerr.InvalidParameter), c.want)
			}
		})
	}
	tr, _ := New(Options{Server: "203.0.113.10", Lab: true})
	if tr.o.RefreshInterval != DefaultRefreshInterval {
		t.Fatalf("default refresh interval %v", tr.o.RefreshInterval)
	}
}

// fakeDNS is a resolver whose answers come from names (fully qualified);
// other names do not exist (NXDOMAIN).
func fakeDNS(names map[string]netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, s := net.Pipe()
		go func() {
			defer s.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(s, l[:]); err != nil {
					return
				}
				q := make([]byte, int(l[0])<<8|int(l[1]))
				if _, err := io.ReadFull(s, q); err != nil {
					return
				}
				var m dnsmessage.Message
				if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
					return
				}
				m.Response, m.RecursionAvailable = true, true
				qu := m.Questions[0]
				a, ok := names[qu.Name.String()]
				switch {
				case !ok:
					m.RCode = dnsmessage.RCodeNameError
				case qu.Type == dnsmessage.TypeA:
					m.Answers = []dnsmessage.Resource{{
						Header: dnsmessage.ResourceHeader{Name: qu.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
						Body:   &dnsmessage.AResource{A: a.As4()},
					}}
				}
				b, err := m.Pack()
				if err != nil {
					return
				}
				if _, err := s.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
					return
				}
			}
		}()
		return c, nil
	}}
}

// A server name that does not exist is 0x2af9 and shows offline, at once.
func TestServerNameNotFound(t *testing.T) {
	tr, err := New(Options{Server: "nx.example.test.", Lab: true, Resolver: fakeDNS(nil)})
	if err != nil {
		t.Fatal(err)
	}
	l := newFakeLink(t)
	start := time.Now()
	up, err := tr.Connect(context.Background(), l)
	if up || winerr.Classify(err) != winerr.HostNotFound || !strings.Contains(err.Error(), "nx.example.test") {
		t.Fatalf("Connect: up %v, err %v (%s), want 0x2af9", up, err, winerr.Hex(winerr.Classify(err)))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	ts := l.teredo()
	if ts.State != StateOffline || ts.Error != ErrorResolve || ts.ServerName != "nx.example.test." {
		t.Fatalf("state %+v", ts)
	}
	if l.attached != 0 {
		t.Fatal("attached without a server")
	}
}

// No NAT: the cone test passes and the mapping is the local address:
// "none (global connectivity)". The server is given by name. The address,
// routes and status are as documented; stopping removes the address, and
// the next session takes the same address for the same mapping.
func TestQualifyNoNAT(t *testing.T) {
	f := newFixture(t, noNAT, true)
	tr := newTransport(t, Options{Server: "teredo.example.test.", Resolver: fakeDNS(map[string]netip.Addr{"teredo.example.test.": primary})})
	l := newFakeLink(t, intranet)
	r := f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	took := time.Since(r.started)

	if ts.NAT != NATNone || ts.NATSpecialBehaviour != "UPNP: No, PortPreserving: Yes" {
		t.Errorf("NAT %q, %q", ts.NAT, ts.NATSpecialBehaviour)
	}
	if ts.LocalMapping != ts.ExternalNATMapping || !strings.HasPrefix(ts.LocalMapping, clientAddr.String()+":") {
		t.Errorf("local mapping %q, external %q", ts.LocalMapping, ts.ExternalNATMapping)
	}
	if ts.Type != "client" || ts.ServerName != "teredo.example.test." || ts.RefreshInterval != 30 || ts.ClientPort != "unspecified" ||
		ts.ClientType != "teredo client" || ts.Network != "unmanaged" || ts.Server != primary.String() || ts.Secondary != secondary.String() ||
		ts.Error != "" || ts.LastRefresh.IsZero() {
		t.Errorf("state %+v", ts)
	}
	addr := netip.MustParseAddr(ts.Address)
	a, ok := teredo.ParseAddress(addr)
	if !ok || a.Server != primary || a.Mapped.String() != ts.ExternalNATMapping || a.Flags&^teredo.FlagRandom != 0 {
		t.Errorf("address %v decodes to %+v", addr, a)
	}
	addrs, routes := l.host.state()
	if !slices.Equal(addrs, []netip.Prefix{netip.PrefixFrom(addr, 128)}) {
		t.Errorf("host addresses %v", addrs)
	}
	slices.SortFunc(routes, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(routes, []netip.Prefix{teredo.Prefix, intranet}) {
		t.Errorf("host routes %v", routes)
	}
	st := l.status()
	if st.State != "LinkUp" || st.LastErrorCode != 0 || st.InterfaceStatus != InterfaceQualified || st.Server != "203.0.113.10:3544" ||
		!slices.Equal(st.Addresses, []string{addr.String() + "/128"}) || st.Prefix != "2001:0:cb00:710a::/64" {
		t.Errorf("interface status %+v", st)
	}
	if h := l.stateHistory(); !slices.Equal(h, []string{StateProbePrimary, StateQualified}) {
		t.Errorf("states %q", h)
	}
	if l.attached != 1 {
		t.Errorf("attached %d times", l.attached)
	}
	c := tr.Counters()
	if c["solicitations_sent"] != 2 || c["qualifications"] != 1 || c["advertisements_accepted"] < 1 {
		t.Errorf("counters %v", c)
	}
	t.Logf("qualified in %v as %v (mapping %s)", took.Round(time.Millisecond), addr, ts.ExternalNATMapping)

	o := r.stop()
	if !o.up || o.err != nil {
		t.Fatalf("stopped: up %v, err %v", o.up, o.err)
	}
	ts = l.teredo()
	if ts.State != StateOffline || ts.Error != ErrorNone || l.detached != 1 {
		t.Errorf("after stop: state %q error %q, detached %d", ts.State, ts.Error, l.detached)
	}
	if addrs, routes := l.host.state(); len(addrs) != 0 || len(routes) != 2 {
		t.Errorf("after stop: addresses %v (want none), routes %v (kept)", addrs, routes)
	}

	// Same server and mapping (same port: the first socket is gone): same
	// address.
	port, _ := strconv.Atoi(ts.LocalMapping[strings.LastIndexByte(ts.LocalMapping, ':')+1:])
	tr2 := tr
	tr2.o.ClientPort = uint16(port)
	l2 := newFakeLink(t)
	f.start(tr2, l2)
	ts2 := waitState(t, l2, StateQualified, 5*time.Second)
	if ts2.Address != addr.String() || ts2.ClientPort != strconv.Itoa(port) {
		t.Errorf("second session: address %s port %q, want %v and %d", ts2.Address, ts2.ClientPort, addr, port)
	}
}

// A port-preserving NAT that drops unsolicited inbound packets fails the
// cone test; both server addresses see the same mapping: "restricted".
func TestQualifyRestrictedNAT(t *testing.T) {
	t.Parallel()
	f := newFixture(t, restricted, true)
	tr := newTransport(t, Options{})
	l := newFakeLink(t)
	r := f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	took := time.Since(r.started)
	if ts.NAT != NATRestricted || ts.NATSpecialBehaviour != "UPNP: No, PortPreserving: Yes" {
		t.Errorf("NAT %q, %q", ts.NAT, ts.NATSpecialBehaviour)
	}
	local := netip.MustParseAddrPort(ts.LocalMapping)
	ext := netip.MustParseAddrPort(ts.ExternalNATMapping)
	if local.Addr() != clientAddr || ext != netip.AddrPortFrom(natOutside, local.Port()) {
		t.Errorf("local %v, external %v", local, ext)
	}
	if h := l.stateHistory(); !slices.Equal(h, []string{StateProbePrimary, StateProbeSecondary, StateQualified}) {
		t.Errorf("states %q", h)
	}
	if took > 2*time.Second {
		t.Errorf("qualification took %v", took)
	}
	t.Logf("qualified in %v", took.Round(time.Millisecond))
}

// A port forward on the NAT (RFC 4380 section 5.2.10) lets the cone test's
// answer in: "cone", and the mapped port is not the local one.
func TestQualifyConeNAT(t *testing.T) {
	t.Parallel()
	f := newFixture(t, cone, true)
	tr := newTransport(t, Options{ClientPort: 40000})
	l := newFakeLink(t)
	f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	if ts.NAT != NATCone || ts.NATSpecialBehaviour != "UPNP: No, PortPreserving: No" || ts.ClientPort != "40000" ||
		ts.LocalMapping != "192.0.2.2:40000" || ts.ExternalNATMapping != "198.51.100.2:50000" {
		t.Errorf("state %+v", ts)
	}
	if h := l.stateHistory(); !slices.Equal(h, []string{StateProbePrimary, StateQualified}) {
		t.Errorf("states %q", h)
	}
}

// A symmetric NAT is refused at once with a clear error.
func TestSymmetricNATRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, symmetric, true)
	tr := newTransport(t, Options{})
	l := newFakeLink(t)
	r := f.start(tr, l)
	o := r.wait(10 * time.Second)
	took := o.at.Sub(r.started)
	if o.up || !errors.Is(o.err, ErrSymmetricNAT) || winerr.Classify(o.err) != winerr.NoData || !strings.Contains(o.err.Error(), "IP-HTTPS") {
		t.Fatalf("Connect: up %v, err %v", o.up, o.err)
	}
	ts := l.teredo()
	if ts.State != StateOffline || ts.Error != ErrorSymmetric || ts.NAT != NATSymmetric || ts.ExternalNATMapping == "" {
		t.Errorf("state %+v", ts)
	}
	if h := l.stateHistory(); !slices.Equal(h, []string{StateProbePrimary, StateProbeSecondary, StateOffline}) {
		t.Errorf("states %q", h)
	}
	if addrs, _ := l.host.state(); l.attached != 0 || len(addrs) != 0 {
		t.Errorf("attached %d, addresses %v", l.attached, addrs)
	}
	if took > 3*time.Second {
		t.Errorf("refused after %v", took)
	}
	t.Logf("refused after %v: %v", took.Round(time.Millisecond), o.err)
}

// No server: offline within the primary budget (8 s) with 0x274c.
func TestPrimaryUnreachable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, restricted, false)
	tr := newTransport(t, Options{})
	l := newFakeLink(t)
	r := f.start(tr, l)
	o := r.wait(15 * time.Second)
	took := o.at.Sub(r.started)
	if o.up || !errors.Is(o.err, ErrPrimaryUnreachable) || winerr.Classify(o.err) != winerr.TimedOut {
		t.Fatalf("Connect: up %v, err %v", o.up, o.err)
	}
	budget := sum(defaultBudgets.primaryWaits)
	if took < budget || took > budget+time.Second {
		t.Errorf("gave up after %v, budget %v", took, budget)
	}
	ts := l.teredo()
	if ts.State != StateOffline || ts.Error != ErrorPrimary {
		t.Errorf("state %+v", ts)
	}
	if n := tr.Counters()["solicitations_sent"]; n != 6 {
		t.Errorf("%d solicitations, want 3 cone and 3 non-cone", n)
	}
	t.Logf("offline after %v: %v", took.Round(time.Millisecond), o.err)
}

// The secondary address silent: offline, not qualified, as the NAT type
// cannot be told.
func TestSecondaryUnreachable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, noNAT, true)
	f.nft(f.srv, `table ip tcsrv {
	chain input { type filter hook input priority filter; policy accept; ip daddr 203.0.113.11 drop; }
	chain output { type filter hook output priority filter; policy accept; ip saddr 203.0.113.11 drop; }
}
`)
	tr := newTransport(t, Options{})
	l := newFakeLink(t)
	r := f.start(tr, l)
	o := r.wait(10 * time.Second)
	took := o.at.Sub(r.started)
	if o.up || !errors.Is(o.err, ErrSecondaryUnreachable) || winerr.Classify(o.err) != winerr.TimedOut {
		t.Fatalf("Connect: up %v, err %v", o.up, o.err)
	}
	budget := defaultBudgets.coneGraceMin + sum(defaultBudgets.secondaryWaits)
	if took < budget || took > budget+time.Second {
		t.Errorf("gave up after %v, budget %v", took, budget)
	}
	if ts := l.teredo(); ts.State != StateOffline || ts.Error != ErrorSecondary {
		t.Errorf("state %+v", ts)
	}
}

// The DirectAccess case: behind a NAT, the host's packets for the intranet
// go through the server, which is the relay; the echo test finds it, the
// queued packet follows, replies come back to the host.
func TestRelayThroughServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, restricted, true)
	tr := newTransport(t, Options{})
	l := newFakeLink(t, intranet)
	f.start(tr, l)
	me := netip.MustParseAddr(waitState(t, l, StateQualified, 5*time.Second).Address)

	if n, _ := l.send(t, ping(me, intranetHost, "hello")); n != 1 {
		t.Fatalf("Send took %d packets", n)
	}
	got := f.relayed(2, 3*time.Second)
	if typ, _ := packet.ICMPv6Type(got[0]); typ != packet.TypeEchoRequest || packet.PayloadLen(got[0]) != packet.NonceEchoLen ||
		packet.Src(got[0]) != me || packet.Dst(got[0]) != intranetHost {
		t.Fatalf("first relayed packet is not the echo test: % x", got[0])
	}
	if !bytes.Equal(got[1], ping(me, intranetHost, "hello")) {
		t.Fatalf("second relayed packet % x, want the queued ping", got[1])
	}
	reply := l.host.next(t, 3*time.Second)
	if packet.Src(reply) != intranetHost || packet.Dst(reply) != me || !bytes.HasSuffix(reply, []byte("hello")) {
		t.Fatalf("host got % x, want the reply to hello (the echo test's reply is not delivered)", reply)
	}

	// Trusted now: the next packet goes at once, not queued.
	l.send(t, ping(me, intranetHost, "again"))
	if got := f.relayed(3, 3*time.Second); !bytes.HasSuffix(got[2], []byte("again")) {
		t.Fatalf("third relayed packet % x", got[2])
	}
	if reply := l.host.next(t, 3*time.Second); !bytes.HasSuffix(reply, []byte("again")) {
		t.Fatalf("host got % x", reply)
	}
	waitCounter(t, tr, "packets_down", 2, time.Second)
	c := tr.Counters()
	if c["echo_tests_sent"] != 1 || c["echo_tests_passed"] != 1 || c["packets_queued"] != 1 || c["packets_up"] != 2 ||
		c["packets_down"] != 2 || c["peers"] != 1 {
		t.Errorf("counters %v", c)
	}
	for k, v := range c {
		if strings.HasPrefix(k, "drop_") && v != 0 {
			t.Errorf("%s = %d", k, v)
		}
	}
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		rx := l.rxPkts
		l.mu.Unlock()
		if rx == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("link told of %d packets received, want 2", rx)
		}
	}
	if sc := f.server.Counters(); sc["packets_to_host"] != 3 {
		t.Errorf("server counters %v", sc)
	}
}

// The general rule (RFC 4380 section 5.2.9) with a relay that is not the
// server: only an echo reply with the test's nonce makes the relay the
// destination's mapping; then the queued packet goes to the relay.
func TestEchoTestThroughOtherRelay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, noNAT, true)
	f.answerPings.Store(false)
	tr := newTransport(t, Options{})
	l := newFakeLink(t, intranet)
	f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	me := netip.MustParseAddr(ts.Address)
	mapping := netip.MustParseAddrPort(ts.ExternalNATMapping)
	relay := f.udpIn(f.srv, netip.AddrPortFrom(otherHost, 3545))
	to := func(b []byte) {
		t.Helper()
		if _, err := relay.WriteToUDPAddrPort(b, mapping); err != nil {
			t.Fatal(err)
		}
	}

	l.send(t, ping(me, intranetHost, "via relay"))
	test := f.relayed(1, 3*time.Second)[0]
	body := append([]byte(nil), test[packet.HeaderLen+4:]...)
	if len(body) != 12 || !bytes.Equal(body[:4], body[4:8]) {
		t.Fatalf("echo test body % x: want identifier and sequence from the nonce, and the 8-byte nonce", body)
	}

	bad := append([]byte(nil), body...)
	bad[11] ^= 0xff
	to(echo(intranetHost, me, packet.TypeEchoReply, bad))
	waitCounter(t, tr, "drop_untrusted_source", 1, 3*time.Second)
	to(echo(intranetHost, me, packet.TypeEchoReply, append(append([]byte(nil), body...), 0)))
	waitCounter(t, tr, "drop_untrusted_source", 2, 3*time.Second)
	to(echo(intranetHost, me, packet.TypeEchoRequest, body))
	waitCounter(t, tr, "drop_untrusted_source", 3, 3*time.Second)
	if tr.Counters()["echo_tests_passed"] != 0 {
		t.Fatal("a wrong echo reply passed the test")
	}

	to(echo(intranetHost, me, packet.TypeEchoReply, body))
	waitCounter(t, tr, "echo_tests_passed", 1, 3*time.Second)
	buf := make([]byte, 2048)
	relay.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := relay.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("the queued packet did not reach the relay: %v", err)
	}
	if from != mapping || !bytes.Equal(buf[:n], ping(me, intranetHost, "via relay")) {
		t.Fatalf("relay got % x from %v", buf[:n], from)
	}
	to(ping(intranetHost, me, "from the intranet"))
	if p := l.host.next(t, 3*time.Second); !bytes.HasSuffix(p, []byte("from the intranet")) {
		t.Fatalf("host got % x", p)
	}
	waitCounter(t, tr, "packets_down", 1, time.Second)
	if c := tr.Counters(); c["drop_untrusted_source"] != 3 {
		t.Errorf("counters %v", c)
	}
}

// Two Teredo clients: one behind a restricted NAT, one on the Internet.
// The first's packet waits for the bubbles (direct, and indirect through
// the server) to open the way, then both talk directly.
func TestTeredoPeers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, restricted, true)
	peerNS := f.addPeer()
	ta, tb := newTransport(t, Options{}), newTransport(t, Options{})
	la, lb := newFakeLink(t), newFakeLink(t)
	f.start(ta, la)
	f.startIn(peerNS, tb, lb)
	a := netip.MustParseAddr(waitState(t, la, StateQualified, 5*time.Second).Address)
	tsb := waitState(t, lb, StateQualified, 5*time.Second)
	b := netip.MustParseAddr(tsb.Address)
	if tsb.NAT != NATNone || !strings.HasPrefix(tsb.ExternalNATMapping, "203.0.113.130:") {
		t.Fatalf("peer B: %+v", tsb)
	}

	if n, _ := la.send(t, ping(a, b, "hello B")); n != 1 {
		t.Fatalf("Send took %d", n)
	}
	if p := lb.host.next(t, 3*time.Second); !bytes.Equal(p, ping(a, b, "hello B")) {
		t.Fatalf("B's host got % x", p)
	}
	lb.send(t, ping(b, a, "hello A"))
	if p := la.host.next(t, 3*time.Second); !bytes.Equal(p, ping(b, a, "hello A")) {
		t.Fatalf("A's host got % x", p)
	}
	// The readers count a packet after handing it to the host.
	waitCounter(t, ta, "packets_down", 1, time.Second)
	waitCounter(t, tb, "packets_down", 1, time.Second)
	ca, cb := ta.Counters(), tb.Counters()
	if ca["bubbles_sent"] != 2 || ca["bubbles_received"] != 1 || ca["packets_queued"] != 1 || ca["packets_up"] != 1 || ca["packets_down"] != 1 {
		t.Errorf("A's counters %v", ca)
	}
	if cb["bubble_replies"] != 1 || cb["packets_queued"] != 0 || cb["packets_up"] != 1 || cb["packets_down"] != 1 {
		t.Errorf("B's counters %v", cb)
	}
	if sc := f.server.Counters(); sc["forwarded"] != 1 {
		t.Errorf("server counters %v", sc)
	}
}

// A refresh that finds a new mapping moves the client to a new address.
func TestRefreshNewMapping(t *testing.T) {
	t.Parallel()
	f := newFixture(t, restricted, true)
	tr := newTransport(t, Options{RefreshInterval: time.Second})
	l := newFakeLink(t)
	f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	old := netip.MustParseAddr(ts.Address)

	f.nft(f.nat, natRules("meta l4proto udp masquerade to :50100-50199", ""))
	f.flushConntrack(f.nat)
	deadline := time.Now().Add(4 * time.Second)
	for l.teredo().Address == ts.Address {
		if time.Now().After(deadline) {
			t.Fatalf("address unchanged after the NAT's mapping changed; counters %v", tr.Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts2 := l.teredo()
	addr := netip.MustParseAddr(ts2.Address)
	a, _ := teredo.ParseAddress(addr)
	if ts2.ExternalNATMapping != a.Mapped.String() || a.Mapped.Addr() != natOutside || a.Mapped.Port() < 50100 || a.Mapped.Port() > 50199 ||
		ts2.State != StateQualified || ts2.NATSpecialBehaviour != "UPNP: No, PortPreserving: No" {
		t.Errorf("after the change: %+v", ts2)
	}
	if addrs, _ := l.host.state(); !slices.Equal(addrs, []netip.Prefix{netip.PrefixFrom(addr, 128)}) {
		t.Errorf("host addresses %v", addrs)
	}
	l.host.mu.Lock()
	ev := strings.Join(l.host.events, "; ")
	l.host.mu.Unlock()
	if !strings.Contains(ev, "add "+addr.String()+"/128; del "+old.String()+"/128") {
		t.Errorf("host events %s", ev)
	}
	if c := tr.Counters(); c["mapping_changes"] != 1 || c["refreshes"] < 1 {
		t.Errorf("counters %v", c)
	}
}

// A server that stops answering ends the session after three unanswered
// refreshes, with 0x274c.
func TestServerLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, restricted, true)
	tr := newTransport(t, Options{RefreshInterval: time.Second})
	tr.b.refreshWait = 300 * time.Millisecond
	l := newFakeLink(t)
	r := f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	lost := time.Now()
	f.nft(f.nat, "table ip tcdrop {\n\tchain forward { type filter hook forward priority filter - 1; policy accept; ip daddr 203.0.113.10 drop; }\n}\n")
	o := r.wait(5 * time.Second)
	took := o.at.Sub(lost)
	if !o.up || !errors.Is(o.err, ErrPrimaryUnreachable) || winerr.Classify(o.err) != winerr.TimedOut {
		t.Fatalf("Connect: up %v, err %v", o.up, o.err)
	}
	if took > time.Second+3*tr.b.refreshWait+500*time.Millisecond {
		t.Errorf("session ended %v after the server was lost", took)
	}
	if ts2 := l.teredo(); ts2.State != StateOffline || ts2.Error != ErrorPrimary {
		t.Errorf("state %+v", ts2)
	}
	if addrs, _ := l.host.state(); len(addrs) != 0 || l.detached != 1 {
		t.Errorf("addresses %v (the old %s should be gone), detached %d", addrs, ts.Address, l.detached)
	}
	if c := tr.Counters(); c["refreshes"] < 1 {
		t.Errorf("counters %v", c)
	}
	t.Logf("session ended %v after the loss: %v", took.Round(time.Millisecond), o.err)
}

// Every refused datagram and packet is counted once, under its reason,
// and nothing refused reaches the host.
func TestDrops(t *testing.T) {
	t.Parallel()
	f := newFixture(t, noNAT, true)
	tr := newTransport(t, Options{})
	l := newFakeLink(t)
	f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	me := netip.MustParseAddr(ts.Address)
	mapping := netip.MustParseAddrPort(ts.ExternalNATMapping)
	peerAP := netip.AddrPortFrom(otherHost, 4000)
	sock := f.udpIn(f.srv, peerAP)
	peerAddr := teredo.Address{Server: primary, Mapped: peerAP}.IPv6()
	send := func(b []byte) {
		t.Helper()
		if _, err := sock.WriteToUDPAddrPort(b, mapping); err != nil {
			t.Fatal(err)
		}
	}
	expect := map[string]uint64{}
	check := func(reason string) {
		t.Helper()
		expect["drop_"+reason]++
		waitCounter(t, tr, "drop_"+reason, expect["drop_"+reason], 3*time.Second)
	}

	send([]byte("xx"))
	check(dropMalformed)
	send(teredo.AppendBubble(teredo.AppendOrigin(nil, peerAP), peerAddr, me))
	check(dropUnexpectedHdr)
	send(ping(peerAddr, teredo.Address{Server: primary, Mapped: netip.MustParseAddrPort("198.51.100.9:9")}.IPv6(), "x"))
	check(dropWrongDst)
	send(ping(netip.MustParseAddr("fe80::1"), me, "x"))
	check(dropLinkLocal)
	send(ping(teredo.Address{Server: primary, Mapped: netip.AddrPortFrom(otherHost, 4001)}.IPv6(), me, "x"))
	check(dropMappingMismatch)
	send(ping(netip.MustParseAddr("2001:db8:9::1"), me, "x"))
	check(dropUntrusted)
	// A Teredo peer whose mapping is the datagram's source is accepted.
	send(ping(peerAddr, me, "fine"))
	if p := l.host.next(t, 3*time.Second); !bytes.HasSuffix(p, []byte("fine")) {
		t.Fatalf("host got % x", p)
	}

	// From the host.
	l.send(t, []byte{1, 2, 3})
	check(dropBadPacket)
	l.send(t, ping(netip.MustParseAddr("2001:db8:1::2"), intranetHost, "x"))
	check(dropSourceNotOurs)
	l.send(t, ping(me, netip.MustParseAddr("ff02::1"), "x"))
	check(dropNotRoutable)
	l.send(t, ping(me, teredo.Address{Server: primary, Mapped: netip.MustParseAddrPort("10.1.2.3:5")}.IPv6(), "x"))
	check(dropDstNotGlobal)

	c := tr.Counters()
	for k, v := range c {
		if strings.HasPrefix(k, "drop_") && v != expect[k] {
			t.Errorf("%s = %d, want %d", k, v, expect[k])
		}
	}
	select {
	case p := <-l.host.in:
		t.Errorf("a refused packet reached the host: % x", p)
	case <-time.After(100 * time.Millisecond):
	}
}
