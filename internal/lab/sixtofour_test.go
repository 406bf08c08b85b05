package lab

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/testenv"
)

func TestSixToFourLabAddresses(t *testing.T) {
	docs := netip.MustParsePrefix("198.51.100.0/24")
	inside := netip.MustParsePrefix(SixToFourNATInside)
	servers := netip.MustParsePrefix("203.0.113.0/24")
	seen := map[string]bool{SixToFourServerIPv4: true, SixToFourInetIPv4: true, SixToFourClientGateway: true}
	for i := 1; i <= maxSixToFourClients; i++ {
		pub := netip.MustParseAddr(SixToFourPublicIPv4(i))
		if !docs.Contains(pub) || inside.Contains(pub) {
			t.Errorf("client %d's public address %s: want it in %s, outside %s", i, pub, docs, inside)
		}
		natOut := netip.MustParseAddr(sixToFourNATOutsideIPv4(i))
		if !netip.MustParsePrefix("192.0.2.0/24").Contains(natOut) {
			t.Errorf("NAT %d's outside address %s: want it in 192.0.2.0/24, off the server's %s and the clients' %s", i, natOut, servers, docs)
		}
		gw, cli := netip.MustParseAddr(sixToFourNATInsideIPv4(i, 1)), netip.MustParseAddr(sixToFourNATInsideIPv4(i, 2))
		link := netip.PrefixFrom(gw, 30).Masked()
		if !inside.Contains(gw) || !inside.Contains(cli) || !link.Contains(cli) || link.Addr() == gw || link.Addr() == cli {
			t.Errorf("client %d's inside link %s: NAT %s, client %s", i, link, gw, cli)
		}
		for _, a := range []string{pub.String(), natOut.String(), gw.String(), cli.String()} {
			if seen[a] {
				t.Errorf("address %s used twice", a)
			}
			seen[a] = true
		}
	}
	l := &SixToFourLab{procLab: &procLab{prefix: "ip6x-"},
		opts: SixToFourOptions{Clients: []SixToFourKind{SixToFourPublic, SixToFourNAT, SixToFourFiltered, SixToFourPrivateNAT, SixToFourHotel}}}
	for _, c := range []struct {
		got, want string
	}{
		{l.Server6to4().String(), "2002:cb00:710a::cb00:710a"},
		{l.ClientIPv4(1).String(), "198.51.100.11"},
		{l.ClientPublicIPv4(1).String(), "198.51.100.11"},
		{l.Client6to4(1).String(), "2002:c633:640b::c633:640b"},
		{l.ClientIPv4(2).String(), "198.51.100.134"},
		{l.ClientPublicIPv4(2).String(), "192.0.2.102"},
		{l.Client6to4(2).String(), "2002:c633:6486::c633:6486"},
		{l.ClientIPv4(3).String(), "198.51.100.13"},
		{l.ClientNS(3), "ip6x-cli3"},
		{l.NATNS(2), "ip6x-nat2"},
		{l.NATNS(1), ""},
		{l.Kind(3).String(), "filtered"},
		{l.ClientIPv4(4).String(), "10.4.0.2"},
		{l.ClientPublicIPv4(4).String(), "192.0.2.104"},
		{l.NATNS(4), "ip6x-nat4"},
		{l.Kind(4).String(), "private-nat"},
		{l.ClientIPv4(5).String(), "198.51.100.15"},
		{l.ClientPublicIPv4(5).String(), "198.51.100.15"},
		{l.NATNS(5), ""},
		{l.Kind(5).String(), "hotel"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		want bool
	}{
		{"ip6x-inet", true}, {"ip6x-da", true}, {"ip6x-corp", true}, {"ip6x-cli12", true}, {"ip6x-nat3", true},
		{"ip6x-edge", false}, {"ip6x-tsrv", false}, {"ip6x-clix", false}, {"ip6xx-da", false}, {"da", false},
	} {
		if got := IsSixToFourLabNamespace("ip6x-", c.name); got != c.want {
			t.Errorf("IsSixToFourLabNamespace(ip6x-, %s) = %v", c.name, got)
		}
	}
	if err := checkSixToFourClients(make([]SixToFourKind, maxSixToFourClients+1)); err == nil {
		t.Error("too many clients accepted")
	}
	if err := checkSixToFourClients([]SixToFourKind{SixToFourPublic, SixToFourKind(7)}); err == nil {
		t.Error("an unknown kind accepted")
	}
}

func TestSixToFourFilterRuleset(t *testing.T) {
	rs := SixToFourFilterRuleset([]string{"cli3", "cli5"})
	for _, want := range []string{
		"delete table ip " + SixToFourFilterTable,
		"counter cli3 {", "counter cli5 {",
		"type filter hook forward priority filter",
		`iifname "to-cli3" ip protocol 41 counter name "cli3" drop`,
		`oifname "to-cli3" ip protocol 41 counter name "cli3" drop`,
		`iifname "to-cli5" ip protocol 41 counter name "cli5" drop`,
	} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rs)
		}
	}
	if strings.Contains(rs, "cli1") || strings.Contains(rs, "udp") {
		t.Errorf("ruleset filters an unfiltered client, or UDP:\n%s", rs)
	}
	rs = SixToFourFilterRuleset([]string{"cli3", "cli5"}, "cli5")
	for _, want := range []string{
		`iifname "to-cli3" ip protocol 41 counter name "cli3" drop`,
		`iifname "to-cli5" ip protocol 41 counter name "cli5" drop`,
		`iifname "to-cli5" udp dport 3544 counter name "cli5" drop`,
		`oifname "to-cli5" udp sport 3544 counter name "cli5" drop`,
	} {
		if !strings.Contains(rs, want) {
			t.Errorf("hotel ruleset lacks %q:\n%s", want, rs)
		}
	}
	if strings.Contains(rs, `"to-cli3" udp`) {
		t.Errorf("ruleset drops UDP of a client that is no hotel:\n%s", rs)
	}
}

func TestParseNFTCounterPackets(t *testing.T) {
	out := "table ip sixtofour_lab_filter {\n\tcounter cli3 {\n\t\tcomment \"x\"\n\t\tpackets 17 bytes 1768\n\t}\n}\n"
	if n, ok := parseNFTCounterPackets(out); !ok || n != 17 {
		t.Errorf("parseNFTCounterPackets = %d, %v; want 17", n, ok)
	}
	if _, ok := parseNFTCounterPackets("table ip x {\n}\n"); ok {
		t.Error("a count found in a table without one")
	}
}

// TestSixToFourUpDown builds the 6to4 topology without the server (root
// only): the intranet web server answers from the server's namespace; a
// public and a filtered client reach the server with their own addresses
// (the filter lets UDP through and counts nothing), the clients behind the
// NATs with the NATs'; the hotel's UDP to port 3544 is dropped and
// counted; Down leaves nothing behind, /etc/netns directories included.
func TestSixToFourUpDown(t *testing.T) {
	testenv.RequireRoot(t, "creates network namespaces")
	testenv.Require(t, CheckSixToFourTools())
	ctx := context.Background()
	l, err := SixToFourUp(ctx, SixToFourOptions{Prefix: "ip6l-", Log: testWriter{t},
		Clients: []SixToFourKind{SixToFourPublic, SixToFourNAT, SixToFourFiltered, SixToFourPrivateNAT, SixToFourHotel}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })
	if err := l.SetHosts(l.ClientNS(1), SixToFourServerIPv4+" "+ServerName); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(l.ClientNS(1), "getent", "hosts", ServerName); err != nil || !strings.HasPrefix(string(out), SixToFourServerIPv4) {
		t.Errorf("hosts file in %s: getent hosts %s: %q %v", l.ClientNS(1), ServerName, out, err)
	}

	line, body, err := HTTPGet(ctx, l.NS(SixToFourRoleServer), "http://["+SixToFourIntranetHost+"]/")
	if err != nil || line != "HTTP/1.1 200 OK" || !strings.Contains(string(body), SixToFourIntranetHost) {
		t.Fatalf("GET from the server's host: %q %q %v", line, body, err)
	}
	for i := 1; i <= l.Clients(); i++ {
		if from := udpSource(t, l.ClientNS(i), l.NS(SixToFourRoleServer), l.ServerIPv4()); from != l.ClientPublicIPv4(i) {
			t.Errorf("client %d (%s) reaches the server from %s, want %s", i, l.Kind(i), from, l.ClientPublicIPv4(i))
		}
	}
	if n, err := l.FilterDrops(ctx, 3); err != nil || n != 0 {
		t.Errorf("FilterDrops(3) = %d, %v; want 0", n, err)
	}
	err = Do(l.ClientNS(5), func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(SixToFourServerIPv4, "3544"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("Teredo from the hotel"))
		return err
	})
	if err != nil {
		t.Errorf("UDP to port 3544 from the hotel: %v", err)
	}
	if n, err := l.FilterDrops(ctx, 5); err != nil || n != 1 {
		t.Errorf("FilterDrops(5) after one datagram to port 3544 = %d, %v; want 1", n, err)
	}
	if _, err := l.FilterDrops(ctx, 1); err == nil {
		t.Error("FilterDrops of a client that is not filtered")
	}
	names, dir := l.Namespaces(), l.Dir()
	if len(names) != 10 {
		t.Errorf("namespaces %v, want 10 (inet, da, corp, five clients, two NATs)", names)
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		if NetnsExists(ns) {
			t.Errorf("namespace %s left", ns)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary lab directory left: %v", err)
	}
	if _, err := os.Stat(etcNetnsPath(l.ClientNS(1))); !os.IsNotExist(err) {
		t.Errorf("/etc/netns directory left: %v", err)
	}
}

// udpSource sends a UDP datagram from namespace from to dst in namespace
// to and returns the source address it arrived with.
func udpSource(t *testing.T, from, to string, dst netip.Addr) netip.Addr {
	t.Helper()
	var ln *net.UDPConn
	err := Do(to, func() error {
		var err error
		ln, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 0)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Do(from, func() error {
		c, err := net.DialUDP("udp4", nil, ln.LocalAddr().(*net.UDPAddr))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("6to4 lab probe"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	_, src, err := ln.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("nothing from %s arrived at %s in %s: %v", from, dst, to, err)
	}
	return src.Addr().Unmap()
}
