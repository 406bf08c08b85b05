package client

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/testenv"
)

// Interop with Miredo in the Teredo lab (lab.TeredoUp): our client, in
// tcli2 behind a home-router NAT with a kernel TUN device, qualifies with
// miredo-server, exchanges pings both ways with a Miredo client behind
// another NAT (Miredo's bubbles come from link-local addresses), and
// reaches the native host behind Miredo's relay through the echo test
// (RFC 4380 section 5.2.9: out through the server, back through the relay).
func TestMiredoInterop(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t, "the Teredo lab creates network namespaces and TUN devices")
	testenv.Require(t, lab.CheckTeredoTools())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tl, err := lab.TeredoUp(ctx, lab.TeredoOptions{Prefix: "iptcm-", Clients: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{lab.MiredoServerName, lab.MiredoRelayName, lab.MiredoClientName(1)} {
				t.Logf("--- %s:\n%s", n, lab.LogTail(tl.LogFile(n), 40))
			}
		}
		if err := tl.Down(); err != nil {
			t.Error(err)
		}
	})
	if err := tl.StartMiredoServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tl.StartMiredoRelay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tl.StartMiredoClient(1); err != nil {
		t.Fatal(err)
	}
	miredo, err := tl.WaitMiredoQualified(ctx, 1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	ns := tl.ClientNS(2)
	k := newKernelLink(t, ns, "teredo0", netip.MustParsePrefix(lab.V6HostPrefix))
	tr := newTransport(t, Options{Server: lab.TeredoServerIPv4})
	start := time.Now()
	startConnect(t, ns, tr, k)
	ts := waitState(t, k.fakeLink, StateQualified, 15*time.Second)
	t.Logf("qualified with miredo-server in %v: %s, NAT %s, mapping %s", time.Since(start).Round(time.Millisecond), ts.Address, ts.NAT, ts.ExternalNATMapping)
	if ts.NAT != NATRestricted || !strings.HasPrefix(ts.ExternalNATMapping, tl.ClientPublicIPv4(2).String()+":") {
		t.Errorf("state %+v", ts)
	}

	pingFrom := func(ns string, dst string) {
		t.Helper()
		start := time.Now()
		out, err := execIn(ns, "ping", "-6", "-c", "3", "-i", "0.3", "-W", "3", dst)
		if err != nil || !strings.Contains(string(out), "bytes from "+dst) {
			t.Errorf("ping %s from %s: %v\n%s", dst, ns, err, out)
			return
		}
		t.Logf("ping %s from %s in %v", dst, ns, time.Since(start).Round(time.Millisecond))
	}
	pingFrom(ns, miredo.String())
	pingFrom(tl.ClientNS(1), ts.Address)
	pingFrom(ns, lab.V6HostAddr)
	c := tr.Counters()
	if c["echo_tests_passed"] != 1 || c["bubbles_sent"] < 2 || c["bubble_replies"] < 1 {
		t.Errorf("counters %v", c)
	}
	t.Logf("counters %v", c)
}
