package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/testenv"
)

// The Teredo interop lab proven with Miredo alone: Miredo's server, clients
// and relay in the namespaces of lab.TeredoUp (scripts/install-miredo
// installs them without starting any daemon on the host).

// Bounds of the Teredo waits.
const (
	miredoQualifyTimeout = 10 * time.Second
	teredoLabUpTimeout   = 60 * time.Second
)

// requireTeredoLab skips without root or a tool (Miredo, nft, ...) and
// fails instead under CI.
func requireTeredoLab(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "the Teredo lab creates network namespaces, veth pairs and TUN devices")
	testenv.Require(t, lab.CheckTeredoTools())
}

// newTeredoLab builds a Teredo lab for t and removes it when the test ends,
// logging the tails of the processes' logs first if the test failed.
func newTeredoLab(t *testing.T, o lab.TeredoOptions) *lab.TeredoLab {
	t.Helper()
	requireTeredoLab(t)
	o.Log = testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), teredoLabUpTimeout)
	defer cancel()
	start := time.Now()
	tl, err := lab.TeredoUp(ctx, o)
	if err != nil {
		t.Fatalf("teredo lab up: %v", err)
	}
	t.Logf("teredo lab up in %s", time.Since(start).Round(time.Millisecond))
	names := []string{lab.MiredoServerName, lab.MiredoRelayName, lab.IPHTTPSServerName}
	for i := 1; i <= tl.Clients(); i++ {
		names = append(names, lab.MiredoClientName(i), lab.IPHTTPSClientName(i))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range names {
				if tl.PID(n) != 0 {
					t.Logf("--- last lines of %s:\n%s", tl.LogFile(n), lab.LogTail(tl.LogFile(n), 60))
				}
			}
		}
		start := time.Now()
		if err := tl.Down(); err != nil {
			t.Errorf("teredo lab down: %v", err)
		}
		t.Logf("teredo lab down in %s", time.Since(start).Round(time.Millisecond))
		for _, ns := range tl.Namespaces() {
			if lab.NetnsExists(ns) {
				t.Errorf("namespace %s survived Down", ns)
			}
		}
	})
	return tl
}

// teredoPing runs `ping -6 -c 3 -W 2 dst` in ns and fails t unless it gets
// a reply; it returns how long ping ran.
func teredoPing(t *testing.T, tl *lab.TeredoLab, ns string, dst netip.Addr) time.Duration {
	t.Helper()
	start := time.Now()
	out, err := tl.Exec(ns, "ping", "-6", "-c", "3", "-W", "2", dst.String())
	took := time.Since(start)
	if err != nil || !strings.Contains(string(out), "bytes from "+dst.String()) {
		t.Errorf("ping %s from %s: %v\n%s", dst, ns, err, out)
		return took
	}
	t.Logf("ping %s from %s: %s in %s", dst, ns, teredoPingSummary(string(out)), took.Round(time.Millisecond))
	return took
}

// teredoPingSummary picks ping's "3 packets transmitted, ..." and rtt lines.
func teredoPingSummary(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") || strings.HasPrefix(l, "rtt ") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "; ")
}

// checkMiredoAddr checks client i's Teredo address a: the lab server's
// prefix 2001:0:cb00:710a::/64, and the NAT's outside address and mapped
// port embedded (the mapped port is Miredo's own port: the cone NAT keeps
// it).
func checkMiredoAddr(t *testing.T, tl *lab.TeredoLab, i int, a netip.Addr) teredo.Address {
	t.Helper()
	if !netip.MustParsePrefix("2001:0:cb00:710a::/64").Contains(a) {
		t.Errorf("client %d: Teredo address %s is not in 2001:0:cb00:710a::/64 (prefix + server %s)", i, a, lab.TeredoServerIPv4)
	}
	info, ok := teredo.ParseAddress(a)
	if !ok {
		t.Fatalf("client %d: %s is not a Teredo address", i, a)
	}
	if info.Server.String() != lab.TeredoServerIPv4 {
		t.Errorf("client %d: %s embeds server %s, want %s", i, a, info.Server, lab.TeredoServerIPv4)
	}
	if want := tl.ClientPublicIPv4(i); info.Mapped.Addr() != want {
		t.Errorf("client %d: %s embeds mapped address %s, want the NAT's outside address %s", i, a, info.Mapped.Addr(), want)
	}
	port, err := tl.MiredoClientPort(context.Background(), i)
	if err != nil {
		t.Error(err)
	} else if !tl.Symmetric() && info.Mapped.Port() != port {
		t.Errorf("client %d: %s embeds mapped port %d; Miredo's socket is on port %d, which the cone NAT keeps", i, a, info.Mapped.Port(), port)
	}
	t.Logf("%s: Teredo address %s = server %s, flags %#04x, mapped %s:%d (Miredo's port %d)",
		lab.TeredoClientRole(i), a, info.Server, info.Flags, info.Mapped.Addr(), info.Mapped.Port(), port)
	return info
}

// startMiredoClients starts a Miredo client in every client namespace,
// waits for each to qualify and checks its address (checkMiredoAddr); it
// returns the addresses, index i for client i.
func startMiredoClients(t *testing.T, tl *lab.TeredoLab) []netip.Addr {
	t.Helper()
	addrs := make([]netip.Addr, tl.Clients()+1)
	for i := 1; i <= tl.Clients(); i++ {
		start := time.Now()
		if err := tl.StartMiredoClient(i); err != nil {
			t.Fatal(err)
		}
		a, err := tl.WaitMiredoQualified(context.Background(), i, miredoQualifyTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: Miredo qualified in %s", lab.TeredoClientRole(i), time.Since(start).Round(time.Millisecond))
		checkMiredoAddr(t, tl, i, a)
		addrs[i] = a
	}
	return addrs
}

// TestTeredoLabMiredo: Miredo's server in tsrv, Miredo clients behind two
// home-router NATs, Miredo's relay in trel. The clients qualify with an
// address that embeds their NAT's mapping, reach each other directly
// (bubbles through the server open the NATs) and reach the native IPv6
// host behind the relay.
func TestTeredoLabMiredo(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptm-", Clients: 2})
	ctx := context.Background()

	start := time.Now()
	if err := tl.StartMiredoServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("miredo-server listening on %s and %s:%d after %s", lab.TeredoServerIPv4, lab.TeredoServerIPv4Secondary,
		lab.TeredoPort, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := tl.StartMiredoRelay(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Miredo relay on %s:%d, routing %s, after %s", lab.TeredoRelayIPv4, lab.TeredoRelayPort, lab.TeredoPrefix,
		time.Since(start).Round(time.Millisecond))

	addrs := startMiredoClients(t, tl)
	if t.Failed() {
		return
	}

	t.Run("client-to-client", func(t *testing.T) {
		teredoPing(t, tl, tl.ClientNS(1), addrs[2])
		teredoPing(t, tl, tl.ClientNS(2), addrs[1])
	})
	t.Run("native-via-relay", func(t *testing.T) {
		teredoPing(t, tl, tl.ClientNS(1), netip.MustParseAddr(lab.V6HostAddr))
		teredoPing(t, tl, tl.ClientNS(2), netip.MustParseAddr(lab.V6HostAddr))
	})
}

// TestTeredoLabNAT checks the lab's NAT flavours with one UDP socket in a
// client sending to the server's two addresses (and a second port): the
// cone NAT maps it to
// one outside port for all (the socket's own port: masquerade keeps it);
// the symmetric NAT (masquerade fully-random) to a different port per
// destination.
func TestTeredoLabNAT(t *testing.T) {
	for _, symmetric := range []bool{false, true} {
		name := "cone"
		if symmetric {
			name = "symmetric"
		}
		t.Run(name, func(t *testing.T) {
			tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptn-", Clients: 2, SameNAT: true, Symmetric: symmetric})
			dsts := []netip.AddrPort{
				netip.MustParseAddrPort(lab.TeredoServerIPv4 + ":3600"),
				netip.MustParseAddrPort(lab.TeredoServerIPv4Secondary + ":3600"),
				netip.MustParseAddrPort(lab.TeredoServerIPv4 + ":3601"),
			}
			for i := 1; i <= 2; i++ {
				// Several rounds: a symmetric NAT could give equal ports by
				// chance once (1 in 64512), not every time.
				for round := 0; round < 3; round++ {
					local, seen, err := tl.NATMapping(context.Background(), i, tl.NS(lab.TeredoRoleServer), dsts)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%s round %d: from %s to %v, seen from %v", lab.TeredoClientRole(i), round, local, dsts, seen)
					for _, s := range seen {
						if s.Addr() != tl.ClientPublicIPv4(i) {
							t.Errorf("source %s, want the NAT's outside address %s", s, tl.ClientPublicIPv4(i))
						}
					}
					samePorts := seen[0].Port() == seen[1].Port() && seen[1].Port() == seen[2].Port()
					distinct := seen[0].Port() != seen[1].Port() && seen[1].Port() != seen[2].Port() && seen[0].Port() != seen[2].Port()
					if !symmetric && (!samePorts || seen[0].Port() != local.Port()) {
						t.Errorf("cone NAT: socket %s mapped to %v, want its own port for every destination", local, seen)
					}
					if symmetric && !distinct {
						t.Errorf("symmetric NAT: one socket mapped to a port shared between destinations %v", seen)
					}
				}
			}
		})
	}
}

// TestTeredoLabMiredoNATs runs Miredo through the lab's other NAT
// flavours. Two clients behind one NAT qualify with the same outside
// address and different ports; a client behind a symmetric NAT qualifies
// too (Miredo does no NAT type detection) with the port mapped towards the
// server, not its own. Both reach the native host through the relay.
// Client-to-client traffic is not tried: the lab's NAT does no hairpinning
// and Miredo lacks RFC 6081's extension for it (iphttps clients use it:
// TestTeredoSameNAT), and a symmetric NAT's mapping is useless to a peer.
func TestTeredoLabMiredoNATs(t *testing.T) {
	for _, c := range []struct {
		name string
		o    lab.TeredoOptions
	}{
		{"same-nat", lab.TeredoOptions{Prefix: "iptm-", Clients: 2, SameNAT: true}},
		{"symmetric", lab.TeredoOptions{Prefix: "iptm-", Clients: 1, Symmetric: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tl := newTeredoLab(t, c.o)
			ctx := context.Background()
			if err := tl.StartMiredoServer(ctx); err != nil {
				t.Fatal(err)
			}
			if err := tl.StartMiredoRelay(ctx); err != nil {
				t.Fatal(err)
			}
			infos := make([]teredo.Address, tl.Clients()+1)
			for i, a := range startMiredoClients(t, tl) {
				infos[i], _ = teredo.ParseAddress(a)
			}
			if c.o.SameNAT && infos[1].Mapped.Port() == infos[2].Mapped.Port() {
				t.Errorf("two clients behind one NAT share the mapped port %d", infos[1].Mapped.Port())
			}
			for i := 1; i <= tl.Clients(); i++ {
				teredoPing(t, tl, tl.ClientNS(i), netip.MustParseAddr(lab.V6HostAddr))
			}
		})
	}
}
