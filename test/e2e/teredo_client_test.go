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

// teredoClientTimeout bounds an iphttps Teredo client's qualification
// (its worst case is about 13 s).
const teredoClientTimeout = 20 * time.Second

// teredoClientStatus reads the status of iphttps's client i.
func teredoClientStatus(ctx context.Context, tl *lab.TeredoLab, i int) (status.Interface, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return control.Fetch(ctx, tl.SocketFile(lab.IPHTTPSClientName(i)))
}

// startTeredoClient starts iphttps's Teredo client in client i's namespace
// and waits until its Teredo state is want ("qualified", "offline"); it
// returns the last status.
func startTeredoClient(t *testing.T, tl *lab.TeredoLab, i int, want string, extra ...string) status.Interface {
	t.Helper()
	args := append([]string{"--teredo-lab", "--route", lab.TeredoIntranetPrefix}, extra...)
	start := time.Now()
	if err := tl.StartIPHTTPSClient(i, args...); err != nil {
		t.Fatal(err)
	}
	var last status.Interface
	var err error
	for time.Since(start) < teredoClientTimeout {
		last, err = teredoClientStatus(context.Background(), tl, i)
		if err == nil && last.TeredoClient != nil && last.TeredoClient.State == want &&
			(want != "offline" || last.TeredoClient.Error != "none") {
			t.Logf("%s: iphttps Teredo client %s in %s: NAT %q, address %s, mapping %s, error %q",
				lab.TeredoClientRole(i), want, time.Since(start).Round(time.Millisecond), last.TeredoClient.NAT,
				last.TeredoClient.Address, last.TeredoClient.ExternalNATMapping, last.TeredoClient.Error)
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: the iphttps Teredo client is not %s after %s: %+v (%v)", lab.TeredoClientRole(i), want, teredoClientTimeout, last.TeredoClient, err)
	return last
}

// qualifiedTeredoAddr is the qualified client's address, checked against its NAT.
func qualifiedTeredoAddr(t *testing.T, tl *lab.TeredoLab, i int, st status.Interface, server string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(st.TeredoClient.Address)
	if err != nil {
		t.Fatalf("client %d: address %q: %v", i, st.TeredoClient.Address, err)
	}
	info, ok := teredo.ParseAddress(a)
	if !ok || info.Server.String() != server || info.Mapped.Addr() != tl.ClientPublicIPv4(i) || info.Cone() ||
		info.Flags&(teredo.FlagReserved|teredo.FlagUG) != 0 {
		t.Errorf("client %d: address %s = %+v: want server %s, mapped address %s, RFC 5991 flags (C, R, U, G zero)",
			i, a, info, server, tl.ClientPublicIPv4(i))
	}
	if st.TeredoClient.ExternalNATMapping != info.Mapped.String() {
		t.Errorf("client %d: External NAT Mapping %s, the address embeds %s", i, st.TeredoClient.ExternalNATMapping, info.Mapped)
	}
	return a
}

// TestTeredoIPHTTPSClient: iphttps's Teredo client behind a home-router
// NAT, against the iphttps server (Teredo server and relay of a
// DirectAccess server): it qualifies as restricted NAT, reaches the
// intranet through the relay (ping and a web page), and reaches a Miredo
// client and another iphttps client behind other NATs directly (bubbles).
func TestTeredoIPHTTPSClient(t *testing.T) {
	bin := requireLab(t)
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptc-", Clients: 3, Binary: bin})
	if err := tl.StartIPHTTPSServer("--self-signed", lab.ServerName, "--prefix", lab.LinkPrefix,
		"--route", lab.IntranetPrefix, "--listen", lab.TeredoServerIPv4+":443"); err != nil {
		t.Fatal(err)
	}
	waitTeredoServer(t, tl)

	st1 := startTeredoClient(t, tl, 1, "qualified")
	a1 := qualifiedTeredoAddr(t, tl, 1, st1, lab.TeredoServerIPv4)
	if st1.TeredoClient.NAT != "restricted" || !strings.HasPrefix(st1.TeredoClient.NATSpecialBehaviour, "UPNP: No, PortPreserving: ") {
		t.Errorf("NAT %q, special behaviour %q: want restricted behind the home router", st1.TeredoClient.NAT, st1.TeredoClient.NATSpecialBehaviour)
	}
	st2 := startTeredoClient(t, tl, 2, "qualified")
	a2 := qualifiedTeredoAddr(t, tl, 2, st2, lab.TeredoServerIPv4)
	if err := tl.StartMiredoClient(3); err != nil {
		t.Fatal(err)
	}
	a3, err := tl.WaitMiredoQualified(context.Background(), 3, miredoQualifyTimeout)
	if err != nil {
		t.Fatal(err)
	}

	host := netip.MustParseAddr(lab.TeredoIntranetHost)
	t.Run("intranet", func(t *testing.T) {
		teredoPing(t, tl, tl.ClientNS(1), host)
		out, err := tl.Exec(tl.ClientNS(1), "curl", "-6", "-sS", "--max-time", "10", "-g", "http://["+host.String()+"]/")
		if err != nil || len(out) == 0 {
			t.Errorf("fetching the intranet page: %v\n%s", err, out)
		}
	})
	t.Run("iphttps-to-iphttps", func(t *testing.T) {
		teredoPing(t, tl, tl.ClientNS(1), a2)
		teredoPing(t, tl, tl.ClientNS(2), a1)
	})
	t.Run("iphttps-to-miredo", func(t *testing.T) {
		teredoPing(t, tl, tl.ClientNS(1), a3)
		teredoPing(t, tl, tl.ClientNS(3), a2)
	})
	st, err := teredoClientStatus(context.Background(), tl, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st.TeredoClient.State != "qualified" || st.LastErrorCode != 0 {
		t.Errorf("client 1 after the traffic: %+v, code %#x", st.TeredoClient, st.LastErrorCode)
	}
	out, err := tl.Exec(tl.ClientNS(1), bin, "show", "teredo", "--socket", tl.SocketFile(lab.IPHTTPSClientName(1)))
	if err != nil || !strings.Contains(string(out), "State                   : qualified") {
		t.Errorf("show teredo: %v\n%s", err, out)
	}
	t.Logf("show teredo:\n%s", out)
}

// TestTeredoIPHTTPSClientMiredoServer: iphttps's Teredo client against
// Miredo's server, reaching a native IPv6 host through Miredo's relay (the
// echo test of RFC 4380 section 5.2.9 finds the relay).
func TestTeredoIPHTTPSClientMiredoServer(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptd-", Clients: 1, Binary: requireLab(t)})
	ctx := context.Background()
	if err := tl.StartMiredoServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tl.StartMiredoRelay(ctx); err != nil {
		t.Fatal(err)
	}
	st := startTeredoClient(t, tl, 1, "qualified", "--route", lab.V6HostPrefix)
	qualifiedTeredoAddr(t, tl, 1, st, lab.TeredoServerIPv4)
	teredoPing(t, tl, tl.ClientNS(1), netip.MustParseAddr(lab.V6HostAddr))
}

// TestTeredoIPHTTPSClientSymmetricNAT: behind a NAT that maps every
// destination to another port, iphttps's Teredo client reports a
// symmetric NAT and refuses Teredo with the reason, instead of hanging.
func TestTeredoIPHTTPSClientSymmetricNAT(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "ipts-", Clients: 1, Symmetric: true, Binary: requireLab(t)})
	if err := tl.StartIPHTTPSServer("--self-signed", lab.ServerName, "--prefix", lab.LinkPrefix,
		"--listen", lab.TeredoServerIPv4+":443"); err != nil {
		t.Fatal(err)
	}
	waitTeredoServer(t, tl)
	st := startTeredoClient(t, tl, 1, "offline")
	if !strings.Contains(strings.ToLower(st.TeredoClient.Error), "symmetric") || st.LastErrorCode == 0 ||
		!strings.Contains(st.LastError, "symmetric") {
		t.Errorf("behind a symmetric NAT: Error %q, code %#x, %q", st.TeredoClient.Error, st.LastErrorCode, st.LastError)
	}
	if st.TeredoClient.Address != "" {
		t.Errorf("an address was kept behind a symmetric NAT: %s", st.TeredoClient.Address)
	}
}

// waitTeredoServer waits until the iphttps server in the Teredo lab
// serves Teredo.
func waitTeredoServer(t *testing.T, tl *lab.TeredoLab) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := control.Fetch(sctx, tl.SocketFile(lab.IPHTTPSServerName))
		cancel()
		if err == nil && st.Teredo != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the iphttps server did not come up with Teredo: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTeredoUserspace: the rootless mode over Teredo: no TUN device, the
// in-process IPv6 stack, and an application reaching the intranet web
// server through the client's SOCKS5 listener (the relay's echo test
// included).
func TestTeredoUserspace(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptu-", Clients: 1, Binary: requireLab(t)})
	if err := tl.StartIPHTTPSServer("--self-signed", lab.ServerName, "--prefix", lab.LinkPrefix,
		"--route", lab.IntranetPrefix, "--listen", lab.TeredoServerIPv4+":443"); err != nil {
		t.Fatal(err)
	}
	waitTeredoServer(t, tl)
	st := startTeredoClient(t, tl, 1, "qualified", "--userspace", "--socks", "127.0.0.1:1080")
	qualifiedTeredoAddr(t, tl, 1, st, lab.TeredoServerIPv4)
	if st.Device != "userspace" {
		t.Errorf("device %q, want userspace", st.Device)
	}
	if out, err := tl.Exec(tl.ClientNS(1), "ip", "-6", "addr", "show", "scope", "global"); err != nil || strings.Contains(string(out), "2001:0:") {
		t.Errorf("the kernel got a Teredo address in userspace mode: %v\n%s", err, out)
	}
	host := lab.TeredoIntranetHost
	start := time.Now()
	out, err := tl.Exec(tl.ClientNS(1), "curl", "-sS", "--max-time", "15", "--socks5-hostname", "127.0.0.1:1080", "-g", "http://["+host+"]/")
	if err != nil || len(out) == 0 {
		t.Fatalf("fetching http://[%s]/ through the SOCKS5 listener: %v\n%s", host, err, out)
	}
	t.Logf("fetched %d bytes from http://[%s]/ through SOCKS5 over Teredo in %s", len(out), host, time.Since(start).Round(time.Millisecond))
}

// TestTeredoNetworkChange: a change of the client's network (a new
// address on its interface, as when it joins another network) makes the
// iphttps Teredo client qualify again at once instead of at its next
// refresh, and traffic to the intranet goes on.
func TestTeredoNetworkChange(t *testing.T) {
	tl := newTeredoLab(t, lab.TeredoOptions{Prefix: "iptw-", Clients: 1, Binary: requireLab(t)})
	if err := tl.StartIPHTTPSServer("--self-signed", lab.ServerName, "--prefix", lab.LinkPrefix,
		"--route", lab.IntranetPrefix, "--listen", lab.TeredoServerIPv4+":443"); err != nil {
		t.Fatal(err)
	}
	waitTeredoServer(t, tl)
	startTeredoClient(t, tl, 1, "qualified")
	host := netip.MustParseAddr(lab.TeredoIntranetHost)
	teredoPing(t, tl, tl.ClientNS(1), host)
	before, err := teredoClientStatus(context.Background(), tl, 1)
	if err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	if out, err := tl.Exec(tl.ClientNS(1), "ip", "addr", "add", "10.1.0.77/24", "dev", "to-nat"); err != nil {
		t.Fatalf("new address: %v\n%s", err, out)
	}
	var after status.Interface
	for {
		after, err = teredoClientStatus(context.Background(), tl, 1)
		if err == nil && after.Counters["teredo/qualifications"] > before.Counters["teredo/qualifications"] &&
			after.TeredoClient.State == "qualified" {
			break
		}
		if time.Since(changed) > 5*time.Second {
			t.Fatalf("no new qualification 5 s after the network changed (qualifications %d -> %d, state %+v)",
				before.Counters["teredo/qualifications"], after.Counters["teredo/qualifications"], after.TeredoClient)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("qualified again %s after the network changed (the refresh would have come after 22-30 s)", time.Since(changed).Round(time.Millisecond))
	teredoPing(t, tl, tl.ClientNS(1), host)
}
