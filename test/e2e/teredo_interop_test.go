package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo"
)

// TestTeredoMiredoClientsIPHTTPSServer: the iphttps server as Teredo server
// and relay (a DirectAccess server) with Miredo clients, someone else's
// Teredo implementation, behind two home-router NATs. Each qualifies
// against iphttps, pings and fetches the intranet web page through the
// iphttps relay, and the two reach each other with the bubbles the iphttps
// server passes between them. The server's counters and `show clients`
// must agree with what happened.
func TestTeredoMiredoClientsIPHTTPSServer(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptx-", Clients: 2, Binary: requireLab(t)})
	ctx := context.Background()
	err := tl.StartIPHTTPSServer("--self-signed", lab.ServerName, "--prefix", lab.LinkPrefix,
		"--route", lab.IntranetPrefix, "--listen", lab.TeredoServerIPv4+":443")
	if err != nil {
		t.Fatal(err)
	}
	sock := tl.SocketFile(lab.IPHTTPSServerName)
	serverStatus := func() status.Interface {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := control.Fetch(sctx, sock)
		if err != nil {
			t.Fatalf("server status: %v", err)
		}
		return st
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := control.Fetch(sctx, sock)
		cancel()
		if err == nil && st.Teredo != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the iphttps server did not come up with Teredo: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	addrs := startMiredoClients(t, tl)
	if t.Failed() {
		return
	}
	before := serverStatus().Counters

	host := netip.MustParseAddr(lab.TeredoIntranetHost)
	t.Run("intranet-via-iphttps-relay", func(t *testing.T) {
		for i := 1; i <= tl.Clients(); i++ {
			teredoPing(t, tl, tl.ClientNS(i), host)
			start := time.Now()
			out, err := tl.Exec(tl.ClientNS(i), "curl", "-6", "-sS", "--max-time", "10", "-g", "http://["+host.String()+"]/")
			if err != nil || len(out) == 0 {
				t.Errorf("%s: fetching the intranet page: %v\n%s", lab.TeredoClientRole(i), err, out)
				continue
			}
			t.Logf("%s: fetched %d bytes from http://[%s]/ in %s", lab.TeredoClientRole(i), len(out), host, time.Since(start).Round(time.Millisecond))
		}
	})
	t.Run("client-to-client-via-iphttps-bubbles", func(t *testing.T) {
		teredoPing(t, tl, tl.ClientNS(1), addrs[2])
		teredoPing(t, tl, tl.ClientNS(2), addrs[1])
	})

	after := serverStatus()
	c := after.Counters
	for _, name := range []string{"teredo/solicitations", "teredo/packets_to_host", "teredo/packets_from_host", "teredo/forwarded"} {
		if c[name] <= before[name] && name != "teredo/solicitations" || c[name] == 0 {
			t.Errorf("counter %s went from %d to %d", name, before[name], c[name])
		}
	}
	for k, v := range c {
		if strings.HasPrefix(k, "teredo/drop_") && v != 0 && k != "teredo/drop_bubble_rate_limited" {
			t.Errorf("honest Teredo traffic was dropped: %s = %d", k, v)
		}
	}
	t.Logf("server counters: %v", teredoCounters(c))
	mappings := map[string]bool{}
	for _, cl := range after.Clients {
		if cl.Transport == "teredo" {
			mappings[cl.Mapping] = true
		}
	}
	for i := 1; i <= tl.Clients(); i++ {
		a, _ := teredo.ParseAddress(addrs[i])
		if !mappings[a.Mapped.String()] {
			t.Errorf("show clients lacks %s's mapping %v: %+v", lab.TeredoClientRole(i), a.Mapped, after.Clients)
		}
	}
}

// teredoCounters keeps the non-zero Teredo counters, for the log.
func teredoCounters(c map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range c {
		if strings.HasPrefix(k, "teredo/") && v != 0 {
			out[k] = v
		}
	}
	return out
}
