package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// pathsClient is iphttps's client with all three methods in lab client i.
type pathsClient struct {
	t    *testing.T
	l    *lab.SixToFourLab
	i    int
	sock string
}

// startPathsClient starts iphttps's client with the lab server's three
// methods in client i's namespace (StartDAClient); the URL's host is name,
// which the namespace's hosts file gives the server's address.
func startPathsClient(t *testing.T, l *lab.SixToFourLab, i int, name string, extra ...string) *pathsClient {
	t.Helper()
	requireLab(t)
	c := &pathsClient{t: t, l: l, i: i, sock: l.DAClientSocket(i)}
	if err := l.StartDAClient(i, name, extra...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			f := l.LogFile(lab.DAClientName(i))
			t.Logf("--- last lines of %s:\n%s", f, lab.LogTail(f, 40))
		}
	})
	return c
}

func (c *pathsClient) paths() ([]status.Path, error) {
	return c.l.DAClientPaths(context.Background(), c.i)
}

// waitActive waits until method carries the traffic and returns the paths
// then.
func (c *pathsClient) waitActive(method string, timeout time.Duration) []status.Path {
	c.t.Helper()
	start := time.Now()
	ps, err := c.l.WaitDAClientMethod(context.Background(), c.i, method, timeout)
	if err != nil {
		c.t.Fatalf("%s: %s does not carry the traffic: %v (%+v)", lab.SixToFourClientRole(c.i), method, err, ps)
	}
	c.t.Logf("%s: traffic over %s after %s", lab.SixToFourClientRole(c.i), method, time.Since(start).Round(time.Millisecond))
	return ps
}

// checkPath fails t unless method's path is in state with code.
func checkPath(t *testing.T, who string, ps []status.Path, method, state, code string) {
	t.Helper()
	for _, p := range ps {
		if p.Method == method {
			if p.State != state || (code != "" && p.Code != code) {
				t.Errorf("%s: %s is %s %s (%s: %s), want %s %s", who, method, p.State, p.Code, p.Status, p.Reason, state, code)
			}
			return
		}
	}
	t.Errorf("%s: no %s in %+v", who, method, ps)
}

// blockFor makes inet drop what match matches to and from lab client i
// (an nftables table of its own); it returns the function that lifts it.
func blockFor(t *testing.T, l *lab.SixToFourLab, i int, table string, match ...string) func() {
	t.Helper()
	inet := l.NS(lab.SixToFourRoleInet)
	dev := "to-" + lab.SixToFourClientRole(i)
	if l.NATNS(i) != "" {
		dev = "to-" + lab.SixToFourNATRole(i)
	}
	cmds := [][]string{
		{"add", "table", "ip", table},
		{"add", "chain", "ip", table, "block", "{", "type", "filter", "hook", "forward", "priority", "0", ";", "}"},
		append(append([]string{"add", "rule", "ip", table, "block", "iifname", dev}, match...), "drop"),
		append(append([]string{"add", "rule", "ip", table, "block", "oifname", dev}, match...), "drop"),
	}
	for _, cmd := range cmds {
		if out, err := l.Exec(inet, append([]string{"nft"}, cmd...)...); err != nil {
			t.Fatalf("nft %v: %v: %s", cmd, err, out)
		}
	}
	lifted := false
	lift := func() {
		if lifted {
			return
		}
		lifted = true
		if out, err := l.Exec(inet, "nft", "delete", "table", "ip", table); err != nil {
			t.Errorf("nft delete table %s: %v: %s", table, err, out)
		}
	}
	t.Cleanup(lift)
	return lift
}

// TestPaths: one client configuration with all three of the server's
// methods, in three places. With a public address the client uses 6to4;
// behind a NAT with a public-looking address, not 6to4 (the mapping test)
// but Teredo; where protocol 41 and UDP 3544 are blocked (a hotel), neither
// but IP-HTTPS. `show paths` says which and why. When UDP 3544 is cut under
// the Teredo client it moves to IP-HTTPS and the pings go on; when UDP
// comes back it returns to Teredo.
func TestPaths(t *testing.T) {
	l := newSixToFourLab(t, lab.SixToFourOptions{Prefix: "ip6p-",
		Clients: []lab.SixToFourKind{lab.SixToFourPublic, lab.SixToFourNAT, lab.SixToFourFiltered, lab.SixToFourFiltered, lab.SixToFourNAT}})
	startSixToFourServerWithTeredo(t, l)
	// The hotel: besides the lab's protocol-41 filter, no UDP to 3544.
	blockFor(t, l, 3, "paths_test_hotel", "udp", "dport", "3544")
	// Nowhere: no protocol 41, no UDP 3544, no TCP 443.
	blockFor(t, l, 4, "paths_test_nowhere_udp", "udp", "dport", "3544")
	blockFor(t, l, 4, "paths_test_nowhere_tcp", "tcp", "dport", "443")

	fast := []string{"--paths-recheck", "3s", "--teredo-refresh-interval", "2s", "--reconnect-initial", "2s", "--reconnect-max", "4s"}
	public := startPathsClient(t, l, 1, lab.ServerName, fast...)
	natted := startPathsClient(t, l, 2, lab.ServerName, fast...)
	hotel := startPathsClient(t, l, 3, lab.ServerName, fast...)
	nowhere := startPathsClient(t, l, 4, lab.ServerName, append(fast, "--connect-timeout", "3s")...)
	// The seed article's case: Teredo works, IP-HTTPS does not (the URL
	// names the server by a name its certificate does not carry).
	seed := startPathsClient(t, l, 5, "wrong.example.test", fast...)

	t.Run("public-6to4", func(t *testing.T) {
		ps := public.waitActive("6to4", 20*time.Second)
		checkPath(t, "cli1", ps, "6to4", "active", "0x0")
		if n := pingCount(t, l, 1, l.IntranetHost(), 10); n != 10 {
			t.Errorf("%d of 10 pings answered", n)
		}
	})
	t.Run("nat-teredo", func(t *testing.T) {
		ps := natted.waitActive("Teredo", 30*time.Second)
		checkPath(t, "cli2", ps, "6to4", "failed", "0x2743")
		checkPath(t, "cli2", ps, "Teredo", "active", "0x0")
		if n := pingCount(t, l, 2, l.IntranetHost(), 10); n != 10 {
			t.Errorf("%d of 10 pings answered", n)
		}
	})
	t.Run("hotel-iphttps", func(t *testing.T) {
		ps := hotel.waitActive("IP-HTTPS", 60*time.Second)
		checkPath(t, "cli3", ps, "6to4", "failed", "0x274c")
		checkPath(t, "cli3", ps, "Teredo", "failed", "")
		checkPath(t, "cli3", ps, "IP-HTTPS", "active", "0x0")
		// Each method's status in the words of its own interface.
		for _, p := range ps {
			want := map[string]string{"6to4": "6to4 Service State disabled", "Teredo": "Teredo State offline, Error ", "IP-HTTPS": "IPHTTPS interface active"}[p.Method]
			if !strings.HasPrefix(p.Status, want) {
				t.Errorf("cli3: %s status %q, want it to start with %q", p.Method, p.Status, want)
			}
		}
		if n := pingCount(t, l, 3, l.IntranetHost(), 10); n != 10 {
			t.Errorf("%d of 10 pings answered", n)
		}
		out := iphttpsOutput(t, "show", "paths", "--socket", hotel.sock)
		for _, want := range []string{"*  IP-HTTPS", "6to4", "Teredo", "failed"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("show paths lacks %q:\n%s", want, out)
			}
		}
		t.Logf("show paths:\n%s", out)
	})
	t.Run("every-method-fails", func(t *testing.T) {
		// 6to4 (8 s), Teredo (8 s), IP-HTTPS (3 s): then every method
		// shows its code and nothing is routed into a dead tunnel.
		deadline := time.Now().Add(40 * time.Second)
		var ps []status.Path
		for time.Now().Before(deadline) {
			ps, _ = nowhere.paths()
			failed := 0
			for _, p := range ps {
				if p.State == "failed" {
					failed++
				}
			}
			if failed == 3 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		checkPath(t, "cli4", ps, "6to4", "failed", "0x274c")
		checkPath(t, "cli4", ps, "Teredo", "failed", "0x274c")
		checkPath(t, "cli4", ps, "IP-HTTPS", "failed", "0x274c")
		addrs, err := l.Exec(l.ClientNS(4), "ip", "-6", "-o", "addr", "show", "dev", "iphttps0", "scope", "global")
		routes, err2 := l.Exec(l.ClientNS(4), "ip", "-6", "route", "show", "dev", "iphttps0")
		if err != nil || err2 != nil || strings.TrimSpace(string(addrs)) != "" || strings.Contains(string(routes), lab.SixToFourIntranetPrefix) {
			t.Errorf("every method failed, but the TUN device has\naddresses: %s\nroutes: %s (%v, %v)", addrs, routes, err, err2)
		}
		t.Logf("show paths:\n%s", iphttpsOutput(t, "show", "paths", "--socket", nowhere.sock))
	})
	t.Run("teredo-works-iphttps-broken", func(t *testing.T) {
		seed.waitActive("Teredo", 30*time.Second)
		if n := pingCount(t, l, 5, l.IntranetHost(), 5); n != 5 {
			t.Errorf("%d of 5 pings answered over Teredo", n)
		}
		// IP-HTTPS is probed next to Teredo: show paths names its cause.
		deadline := time.Now().Add(15 * time.Second)
		var ps []status.Path
		for time.Now().Before(deadline) {
			ps, _ = seed.paths()
			if len(ps) == 3 && ps[2].State == "failed" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		checkPath(t, "cli5", ps, "Teredo", "active", "0x0")
		checkPath(t, "cli5", ps, "IP-HTTPS", "failed", "0x103")
		t.Logf("show paths:\n%s", iphttpsOutput(t, "show", "paths", "--socket", seed.sock))
	})
	t.Run("udp-cut-and-back", func(t *testing.T) {
		// Pings every 0.2 s through the switch: how many are lost.
		const pings = 200
		pinged := make(chan string, 1)
		go func() {
			out, _ := l.Exec(l.ClientNS(2), "ping", "-6", "-n", "-c", fmt.Sprint(pings), "-i", "0.2", "-W", "1", l.IntranetHost().String())
			pinged <- string(out)
		}()
		time.Sleep(time.Second)
		lift := blockFor(t, l, 2, "paths_test_udp_cut", "udp", "dport", "3544")
		cut := time.Now()
		natted.waitActive("IP-HTTPS", 60*time.Second)
		t.Logf("cli2 moved from Teredo to IP-HTTPS %s after UDP 3544 was cut", time.Since(cut).Round(time.Millisecond))
		out := <-pinged
		answered := strings.Count(out, "bytes from "+l.IntranetHost().String())
		t.Logf("pings every 0.2 s through the switch: %d sent, %d answered, %d lost (%s)", pings, answered, pings-answered, teredoPingSummary(out))
		last := 0
		for _, line := range strings.Split(out, "\n") {
			var seq int
			if i := strings.Index(line, "icmp_seq="); i >= 0 && strings.Contains(line, "bytes from") {
				fmt.Sscanf(line[i:], "icmp_seq=%d", &seq)
				last = max(last, seq)
			}
		}
		if last < pings-2 {
			t.Errorf("the pings did not go on after the switch (last answered %d of %d):\n%s", last, pings, out)
		}
		if n := pingCount(t, l, 2, l.IntranetHost(), 10); n != 10 {
			t.Errorf("%d of 10 pings answered over IP-HTTPS", n)
		}
		lift()
		back := time.Now()
		natted.waitActive("Teredo", 60*time.Second)
		t.Logf("cli2 returned to Teredo %s after UDP 3544 came back", time.Since(back).Round(time.Millisecond))
		if n := pingCount(t, l, 2, l.IntranetHost(), 10); n != 10 {
			t.Errorf("%d of 10 pings answered back over Teredo", n)
		}
	})
}
