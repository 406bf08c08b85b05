package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/lab"
)

// TestTeredoSameNAT: two iphttps Teredo clients behind one home-router NAT
// that does not hairpin reach each other directly, inside the NAT, with
// the hairpinning extension of RFC 6081 (section 4.3): they qualify with
// the NAT's one outside address and different ports, their first bubbles
// (through the iphttps server) carry their private addresses in an
// Alternate Address Trailer, and the pings then go between the private
// addresses, never through the server. A Miredo client behind the same
// NAT, which lacks the extension, stays unreachable from them: without it
// this NAT separates its clients.
func TestTeredoSameNAT(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptj-", Clients: 3, SameNAT: true, Binary: requireLab(t)})
	if err := tl.StartIPHTTPSServer("--self-signed", lab.ServerName, "--prefix", lab.LinkPrefix,
		"--route", lab.IntranetPrefix, "--listen", lab.TeredoServerIPv4+":443"); err != nil {
		t.Fatal(err)
	}
	waitTeredoServer(t, tl)

	st1 := startTeredoClient(t, tl, 1, "qualified")
	a1 := qualifiedTeredoAddr(t, tl, 1, st1, lab.TeredoServerIPv4)
	st2 := startTeredoClient(t, tl, 2, "qualified")
	a2 := qualifiedTeredoAddr(t, tl, 2, st2, lab.TeredoServerIPv4)
	m1, m2 := netip.MustParseAddrPort(st1.TeredoClient.ExternalNATMapping), netip.MustParseAddrPort(st2.TeredoClient.ExternalNATMapping)
	if m1.Addr() != m2.Addr() || m1.Port() == m2.Port() {
		t.Fatalf("mappings %v and %v: want one outside address, two ports", m1, m2)
	}
	for i, st := range map[int]string{1: st1.TeredoClient.LocalMapping, 2: st2.TeredoClient.LocalMapping} {
		if !strings.HasPrefix(st, lab.TeredoClientIPv4(i)+":") {
			t.Errorf("client %d: Local Mapping %q, want its private address %s", i, st, lab.TeredoClientIPv4(i))
		}
	}
	if t.Failed() {
		return
	}

	start := time.Now()
	teredoPing(t, tl, tl.ClientNS(1), a2)
	t.Logf("first exchange 1 -> 2 (bubbles, then 3 pings) took %s", time.Since(start).Round(time.Millisecond))
	teredoPing(t, tl, tl.ClientNS(2), a1)
	if t.Failed() {
		return
	}

	// Once the peers trust each other's private address, nothing is lost
	// and nothing goes through the server: 200 bytes of data are more than
	// it passes between Teredo peers anyway (88).
	before := teredoServerCounters(t, tl)
	samePingNoLoss(t, tl, 1, a2)
	samePingNoLoss(t, tl, 2, a1)
	after := teredoServerCounters(t, tl)
	for _, k := range []string{"teredo/forwarded", "teredo/packets_to_host", "teredo/drop_oversized_icmpv6"} {
		if after[k] != before[k] {
			t.Errorf("server counter %s moved by %d during the direct pings", k, after[k]-before[k])
		}
	}
	checkHairpinCounters(t, tl)

	t.Run("without-the-extension", func(t *testing.T) {
		if err := tl.StartMiredoClient(3); err != nil {
			t.Fatal(err)
		}
		a3, err := tl.WaitMiredoQualified(context.Background(), 3, miredoQualifyTimeout)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tl.Exec(tl.ClientNS(1), "ping", "-6", "-c", "3", "-W", "2", a3.String())
		if err == nil || strings.Contains(string(out), "bytes from") {
			t.Errorf("client 1 reached the Miredo client behind the same NAT, which has no hairpinning: the NAT hairpins, so the test proves nothing\n%s", out)
		}
		t.Logf("ping %s (Miredo behind the same NAT) from %s: %s", a3, tl.ClientNS(1), teredoPingSummary(string(out)))
		// Miredo took the bubbles with our trailer in its stride.
		teredoPing(t, tl, tl.ClientNS(3), netip.MustParseAddr(lab.TeredoIntranetHost))
	})
}

// samePingNoLoss pings dst from client i, 20 times 200 bytes, and fails
// unless every echo comes back.
func samePingNoLoss(t *testing.T, tl *lab.TeredoLab, i int, dst netip.Addr) {
	t.Helper()
	out, err := tl.Exec(tl.ClientNS(i), "ping", "-6", "-c", "20", "-i", "0.1", "-W", "2", "-s", "200", dst.String())
	sum := teredoPingSummary(string(out))
	if err != nil || !strings.Contains(sum, " 0% packet loss") {
		t.Errorf("ping %s from %s: %v\n%s", dst, tl.ClientNS(i), err, out)
		return
	}
	t.Logf("ping -s 200 %s from %s: %s", dst, tl.ClientNS(i), sum)
}

// teredoServerCounters reads the iphttps server's counters.
func teredoServerCounters(t *testing.T, tl *lab.TeredoLab) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := control.Fetch(ctx, tl.SocketFile(lab.IPHTTPSServerName))
	if err != nil {
		t.Fatalf("server status: %v", err)
	}
	return st.Counters
}

// checkHairpinCounters checks that the clients found each other with the
// extension (each trusted the other at an alternate address, and direct
// bubbles went to alternate addresses) and refused nothing on the way.
func checkHairpinCounters(t *testing.T, tl *lab.TeredoLab) {
	t.Helper()
	var bubbles uint64
	for i := 1; i <= 2; i++ {
		st, err := teredoClientStatus(context.Background(), tl, i)
		if err != nil {
			t.Fatal(err)
		}
		c := st.Counters
		bubbles += c["teredo/hairpin_bubbles_sent"]
		if c["teredo/hairpin_peers_trusted"] == 0 {
			t.Errorf("client %d trusted no peer at an alternate address: %v", i, c)
		}
		for _, k := range []string{"source_not_global", "unknown_alternate", "alternate_refused", "bad_trailer", "mapping_mismatch", "untrusted_source"} {
			if c["teredo/drop_"+k] != 0 {
				t.Errorf("client %d: drop_%s = %d", i, k, c["teredo/drop_"+k])
			}
		}
		t.Logf("client %d: hairpin_bubbles_sent %d, hairpin_peers_trusted %d, bubbles_sent %d, bubble_replies %d, packets_up %d, packets_down %d",
			i, c["teredo/hairpin_bubbles_sent"], c["teredo/hairpin_peers_trusted"], c["teredo/bubbles_sent"],
			c["teredo/bubble_replies"], c["teredo/packets_up"], c["teredo/packets_down"])
	}
	if bubbles == 0 {
		t.Error("no direct bubble went to an alternate address: the clients did not use the hairpinning extension")
	}
}
