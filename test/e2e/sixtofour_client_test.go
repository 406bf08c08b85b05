package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/sixtofour"
	"github.com/iphttps/iphttps/internal/status"
)

// sixToFourClientName is the lab process name of iphttps's 6to4 client i.
func sixToFourClientName(i int) string { return "iphttps-6to4-" + lab.SixToFourClientRole(i) }

// sixToFourClient is iphttps's 6to4 client running in a lab client.
type sixToFourClient struct {
	t    *testing.T
	l    *lab.SixToFourLab
	i    int
	sock string
}

// startSixToFourClient starts `iphttps client --6to4-relay` in client i's
// namespace with the lab's relay, the intranet route and extra.
func startSixToFourClient(t *testing.T, l *lab.SixToFourLab, i int, extra ...string) *sixToFourClient {
	t.Helper()
	c := &sixToFourClient{t: t, l: l, i: i, sock: l.SocketFile(sixToFourClientName(i))}
	argv := append([]string{requireLab(t), "client", "--6to4-relay", l.ServerIPv4().String(), "--6to4-lab",
		"--route", lab.SixToFourIntranetPrefix, "--control-socket", c.sock, "--log-level", "debug"}, extra...)
	if err := l.Start(sixToFourClientName(i), l.ClientNS(i), argv...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			f := l.LogFile(sixToFourClientName(i))
			t.Logf("--- last lines of %s:\n%s", f, lab.LogTail(f, 40))
		}
	})
	return c
}

func (c *sixToFourClient) status() (status.Interface, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return control.Fetch(ctx, c.sock)
}

// wait waits up to timeout until the client's 6to4 state is want ("up",
// "down") and returns that status.
func (c *sixToFourClient) wait(want string, timeout time.Duration) status.Interface {
	c.t.Helper()
	start := time.Now()
	var st status.Interface
	var err error
	for time.Since(start) < timeout {
		st, err = c.status()
		if err == nil && st.SixToFour != nil && st.SixToFour.State == want {
			c.t.Logf("%s: 6to4 %s after %s: %+v", lab.SixToFourClientRole(c.i), want, time.Since(start).Round(time.Millisecond), *st.SixToFour)
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("%s: 6to4 not %s after %s: %+v (%v)", lab.SixToFourClientRole(c.i), want, timeout, st.SixToFour, err)
	return st
}

// counters returns the client's 6to4 counters (without the prefix).
func (c *sixToFourClient) counters() map[string]uint64 {
	c.t.Helper()
	st, err := c.status()
	if err != nil {
		c.t.Fatalf("client status: %v", err)
	}
	return transportCounters(st, "6to4")
}

// hostState is what the client's TUN device holds: its global addresses
// and the routes through it.
func (c *sixToFourClient) hostState() (addrs, routes string) {
	c.t.Helper()
	a, err := c.l.Exec(c.l.ClientNS(c.i), "ip", "-6", "-o", "addr", "show", "dev", "iphttps0", "scope", "global")
	if err != nil {
		c.t.Fatalf("addresses of iphttps0: %v: %s", err, a)
	}
	r, err := c.l.Exec(c.l.ClientNS(c.i), "ip", "-6", "route", "show", "dev", "iphttps0")
	if err != nil {
		c.t.Fatalf("routes of iphttps0: %v: %s", err, r)
	}
	return string(a), string(r)
}

// checkDown fails t unless the client shows 6to4 down with code and a
// reason containing why, and its TUN device holds no 6to4 address and no
// route (the intranet's routes do not point into a dead path). With show,
// `iphttps show 6to4` must say so too (for a client that stays down: one
// retrying at once may be testing again by then).
func (c *sixToFourClient) checkDown(st status.Interface, test, code, why string, show bool) {
	c.t.Helper()
	s := st.SixToFour
	result := map[string]string{"range": s.RangeTest, "mapping": s.MappingTest, "reachability": s.ReachabilityTest}[test]
	if s.ServiceState != "disabled" || s.Code != code || !strings.Contains(s.Reason, why) || !strings.HasPrefix(result, "failed") {
		c.t.Errorf("%s: 6to4 state %+v: want disabled, %s test failed, code %s, reason with %q", lab.SixToFourClientRole(c.i), *s, test, code, why)
	}
	addrs, routes := c.hostState()
	if strings.Contains(addrs, "2002:") || strings.Contains(routes, "2002::/16") || strings.Contains(routes, lab.SixToFourIntranetPrefix) {
		c.t.Errorf("%s: 6to4 is down but the TUN device still has\naddresses: %s\nroutes: %s", lab.SixToFourClientRole(c.i), addrs, routes)
	}
	if !show {
		return
	}
	out := iphttpsOutput(c.t, "show", "6to4", "--socket", c.sock)
	for _, want := range []string{"6to4 Service State      : disabled", "State                   : down", "Error                   : " + code} {
		if !strings.Contains(string(out), want) {
			c.t.Errorf("show 6to4 lacks %q:\n%s", want, out)
		}
	}
}

// pingCount pings dst from client i count times (0.05 s apart) and
// returns how many were answered.
func pingCount(t *testing.T, l *lab.SixToFourLab, i int, dst netip.Addr, count int) int {
	t.Helper()
	out, _ := l.Exec(l.ClientNS(i), "ping", "-6", "-n", "-c", fmt.Sprint(count), "-i", "0.05", "-W", "2", dst.String())
	n := strings.Count(string(out), "bytes from "+dst.String())
	t.Logf("%s: ping %s: %d of %d answered (%s)", lab.SixToFourClientRole(i), dst, n, count, teredoPingSummary(string(out)))
	return n
}

// startSixToFourServerWithTeredo starts the lab's server with its Teredo
// server too (on the server's address and the next), as a DirectAccess
// server runs them: the clients' mapping test asks it.
func startSixToFourServerWithTeredo(t *testing.T, l *lab.SixToFourLab) relayServer {
	t.Helper()
	if err := l.StartDAServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	return relayServer{t: t, sock: l.ServerSocket(), transport: "6to4"}
}

// TestSixToFourClient: iphttps's 6to4 client against the iphttps server
// (6to4 relay and Teredo server of a DirectAccess server). A public client
// passes its three tests and reaches the intranet (ping, a web page) with
// 2002::/16 and the intranet route on its TUN device; a client with a
// public-looking address behind a NAT is caught by the mapping test; a
// client whose path drops protocol 41 is caught by the reachability test;
// neither keeps an address or a route. A path that dies while in use is
// taken down at the next test, and comes back when it heals.
func TestSixToFourClient(t *testing.T) {
	l := newSixToFourLab(t, lab.SixToFourOptions{Prefix: "ip6c-",
		Clients: []lab.SixToFourKind{lab.SixToFourPublic, lab.SixToFourNAT, lab.SixToFourFiltered}})
	srv := startSixToFourServerWithTeredo(t, l)

	pub := startSixToFourClient(t, l, 1, "--6to4-test-interval", "1s", "--reconnect-initial", "3s", "--reconnect-max", "3s")
	nat := startSixToFourClient(t, l, 2)
	filtered := startSixToFourClient(t, l, 3)

	t.Run("public", func(t *testing.T) {
		st := pub.wait("up", 10*time.Second)
		s := st.SixToFour
		me := l.Client6to4(1)
		if s.Address != me.String() || s.PublicAddress != l.ClientIPv4(1).String() || s.Relay != l.ServerIPv4().String() ||
			!strings.HasPrefix(s.RangeTest, "passed") || !strings.HasPrefix(s.MappingTest, "passed (the Teredo server at") ||
			!strings.HasPrefix(s.ReachabilityTest, "passed (echo from "+l.Server6to4().String()) || s.ServiceState != "enabled" {
			t.Errorf("status %+v", *s)
		}
		addrs, routes := pub.hostState()
		if !strings.Contains(addrs, me.String()+"/128") || !strings.Contains(routes, "2002::/16") || !strings.Contains(routes, lab.SixToFourIntranetPrefix) {
			t.Errorf("TUN device:\naddresses: %s\nroutes: %s", addrs, routes)
		}
		before := srv.counters()
		if n := pingCount(t, l, 1, l.IntranetHost(), 20); n != 20 {
			t.Errorf("%d of 20 pings to the intranet host answered", n)
		}
		_, body, err := lab.HTTPGet(context.Background(), l.ClientNS(1), "http://["+l.IntranetHost().String()+"]/")
		if err != nil || !strings.Contains(string(body), "You came from ["+me.String()+"]") {
			t.Errorf("web page through 6to4: %v: %q", err, body)
		}
		after := srv.counters()
		if d := after["packets_to_host"] - before["packets_to_host"]; d < 20 {
			t.Errorf("the relay carried %d packets to the intranet, want at least the 20 pings", d)
		}
		for _, c := range showSixToFourClients(t, l.ServerSocket()) {
			if c.Remote == l.ClientIPv4(2).String() || c.Remote == l.ClientIPv4(3).String() {
				t.Errorf("the server lists a client whose 6to4 path does not work: %+v", c)
			}
		}
	})

	t.Run("nat", func(t *testing.T) {
		st := nat.wait("down", 10*time.Second)
		nat.checkDown(st, "mapping", "0x2743", "behind a NAT", true)
		if !strings.Contains(st.SixToFour.Reason, l.ClientIPv4(2).String()) || !strings.Contains(st.SixToFour.Reason, l.ClientPublicIPv4(2).String()) {
			t.Errorf("reason %q should name the local %s and the mapped %s", st.SixToFour.Reason, l.ClientIPv4(2), l.ClientPublicIPv4(2))
		}
	})

	t.Run("filtered", func(t *testing.T) {
		st := filtered.wait("down", 15*time.Second)
		filtered.checkDown(st, "reachability", "0x274c", "protocol 41 is blocked", true)
		if !strings.HasPrefix(st.SixToFour.MappingTest, "passed") {
			t.Errorf("mapping test %q: the filter lets UDP through, the mapping test should pass", st.SixToFour.MappingTest)
		}
		drops, err := l.FilterDrops(context.Background(), 3)
		if err != nil || drops < 3 {
			t.Errorf("the filter dropped %d protocol-41 packets (%v), want at least the 3 echoes", drops, err)
		}
	})

	t.Run("path-dies-and-heals", func(t *testing.T) {
		inet := l.NS(lab.SixToFourRoleInet)
		const table = "sixtofour_test_dead_path"
		for _, cmd := range [][]string{
			{"add", "table", "ip", table},
			{"add", "chain", "ip", table, "dead_path", "{", "type", "filter", "hook", "forward", "priority", "0", ";", "}"},
			{"add", "rule", "ip", table, "dead_path", "iifname", "to-cli1", "ip", "protocol", "41", "drop"},
			{"add", "rule", "ip", table, "dead_path", "oifname", "to-cli1", "ip", "protocol", "41", "drop"},
		} {
			if out, err := l.Exec(inet, append([]string{"nft"}, cmd...)...); err != nil {
				t.Fatalf("nft %v: %v: %s", cmd, err, out)
			}
		}
		died := time.Now()
		failures := pub.counters()["failures"]
		// The next test (within a second) fails after its 3 echoes of 2 s.
		deadline := died.Add(12 * time.Second)
		for pub.counters()["failures"] == failures && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if pub.counters()["failures"] == failures {
			t.Fatalf("the dead path was not taken down in %s", time.Since(died).Round(time.Millisecond))
		}
		t.Logf("the dead path was taken down %s after protocol 41 stopped", time.Since(died).Round(time.Millisecond))
		// Between its tries (3 s apart) the client shows why it is down.
		st := pub.wait("down", 5*time.Second)
		pub.checkDown(st, "reachability", "0x274c", "protocol 41 is blocked", false)
		if out, err := l.Exec(inet, "nft", "delete", "table", "ip", table); err != nil {
			t.Fatalf("nft delete: %v: %s", err, out)
		}
		healed := time.Now()
		pub.wait("up", 15*time.Second)
		t.Logf("6to4 came back %s after the path healed", time.Since(healed).Round(time.Millisecond))
		if n := pingCount(t, l, 1, l.IntranetHost(), 5); n != 5 {
			t.Errorf("%d of 5 pings answered after the path healed", n)
		}
	})

	t.Run("network-change", func(t *testing.T) {
		before := pub.counters()
		// A new address on the client's interface is a network change:
		// the tests run again at once.
		if out, err := l.Exec(l.ClientNS(1), "ip", "addr", "add", "192.0.2.99/32", "dev", "to-inet"); err != nil {
			t.Fatalf("add address: %v: %s", err, out)
		}
		deadline := time.Now().Add(10 * time.Second)
		for pub.counters()["sessions"] == before["sessions"] && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		after := pub.counters()
		if after["sessions"] <= before["sessions"] {
			t.Fatalf("no new session after a network change: sessions %d -> %d", before["sessions"], after["sessions"])
		}
		pub.wait("up", 10*time.Second)
		if n := pingCount(t, l, 1, l.IntranetHost(), 3); n != 3 {
			t.Errorf("%d of 3 pings answered after the network change", n)
		}
	})

	t.Run("hostile", func(t *testing.T) {
		// Protocol 41 that the client must refuse, sent to it from the
		// Internet (inet) with whatever outer source the attack needs; the
		// packets are built here, independently of the code under test.
		before := pub.counters()
		me, relay := l.Client6to4(1), l.ServerIPv4()
		other := sixtofour.Address(netip.MustParseAddr("198.51.100.77"))
		kinds := []struct {
			name, counter string
			src4          netip.Addr // outer source
			src6, dst6    netip.Addr
		}{
			{"spoofed 6to4 source", "drop_source_spoofed", relay, other, me},
			{"native source from a non-relay", "drop_source_not_relay", l.ClientIPv4(3), l.IntranetHost(), me},
			{"not our address", "drop_destination_not_ours", relay, l.Server6to4(), sixtofour.Address(l.ClientIPv4(1)).Next()},
			{"link-local source", "drop_source_not_routable", relay, netip.MustParseAddr("fe80::1"), me},
		}
		for _, k := range kinds {
			sendRawSixToFour(t, l.NS(lab.SixToFourRoleInet), k.src4, l.ClientIPv4(1), k.src6, k.dst6, 50)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			after := pub.counters()
			var short []string
			for _, k := range kinds {
				if d := after[k.counter] - before[k.counter]; d < 50 {
					short = append(short, fmt.Sprintf("%s +%d of 50", k.counter, d))
				}
			}
			if len(short) == 0 {
				for _, k := range kinds {
					t.Logf("%-32s x50 -> %s +%d", k.name, k.counter, after[k.counter]-before[k.counter])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client counters: %v", short)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := pingCount(t, l, 1, l.IntranetHost(), 10); n != 10 {
			t.Errorf("%d of 10 pings answered after the hostile packets", n)
		}
	})
}

// sendRawSixToFour sends n protocol-41 packets from ns, built by hand: an
// IPv4 header from src4 to dst4 (IP_HDRINCL: any source), then an IPv6
// header from src6 to dst6 and an 8-byte ICMPv6 echo request.
func sendRawSixToFour(t *testing.T, ns string, src4, dst4, src6, dst6 netip.Addr, n int) {
	t.Helper()
	pkt := make([]byte, 20+40+8)
	pkt[0], pkt[8], pkt[9] = 0x45, 64, 41
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	s4, d4 := src4.As4(), dst4.As4()
	copy(pkt[12:], s4[:])
	copy(pkt[16:], d4[:])
	in := pkt[20:]
	in[0] = 0x60
	binary.BigEndian.PutUint16(in[4:], 8)
	in[6], in[7] = 58, 64
	s6, d6 := src6.As16(), dst6.As16()
	copy(in[8:], s6[:])
	copy(in[24:], d6[:])
	in[40] = 128 // echo request; the checksum does not matter: it must not get that far
	err := lab.Do(ns, func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		to := &syscall.SockaddrInet4{Addr: d4}
		for range n {
			if err := syscall.Sendto(fd, pkt, 0, to); err != nil {
				return fmt.Errorf("send to %v: %w", dst4, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw protocol 41 from %s: %v", ns, err)
	}
}
