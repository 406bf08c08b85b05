package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestTeredoLabAddresses(t *testing.T) {
	if got := TeredoNATIPv4(1); got != "198.51.100.11" {
		t.Errorf("TeredoNATIPv4(1) = %s", got)
	}
	if got := TeredoClientIPv4(3); got != "10.3.0.2" {
		t.Errorf("TeredoClientIPv4(3) = %s", got)
	}
	p, s := netip.MustParseAddr(TeredoServerIPv4).As4(), netip.MustParseAddr(TeredoServerIPv4Secondary).As4()
	if p[0] != s[0] || p[1] != s[1] || p[2] != s[2] || p[3]+1 != s[3] {
		t.Errorf("the server's addresses %s and %s are not consecutive", TeredoServerIPv4, TeredoServerIPv4Secondary)
	}
	if TeredoNATIPv4(maxTeredoClients) == TeredoNATGateway || !netip.MustParsePrefix("198.51.100.0/24").Contains(netip.MustParseAddr(TeredoNATIPv4(maxTeredoClients))) {
		t.Errorf("the last NAT's address %s", TeredoNATIPv4(maxTeredoClients))
	}
	for _, c := range []struct {
		name string
		want bool
	}{
		{"iptm-tsrv", true}, {"iptm-tcli12", true}, {"iptm-tnat3", true}, {"iptm-v6host", true},
		{"iptm-inet", true}, {"iptm-trel", true}, {"iptm-corp", true}, {"iptm-tatk", true},
		{"iptm-edge", false}, {"iptm-cli1", false}, {"iptm-tclix", false}, {"iptmx-tsrv", false}, {"tsrv", false},
	} {
		if got := IsTeredoLabNamespace("iptm-", c.name); got != c.want {
			t.Errorf("IsTeredoLabNamespace(iptm-, %s) = %v", c.name, got)
		}
	}
}

func TestTeredoNATRuleset(t *testing.T) {
	cone := TeredoNATRuleset("to-inet", false)
	sym := TeredoNATRuleset("to-inet", true)
	for _, rs := range []string{cone, sym} {
		for _, want := range []string{
			"type nat hook postrouting priority srcnat",
			`iifname "to-inet" ct state new counter drop`,
			"type filter hook input",
			"type filter hook forward",
			"delete table ip " + teredoNFTable,
		} {
			if !strings.Contains(rs, want) {
				t.Errorf("ruleset lacks %q:\n%s", want, rs)
			}
		}
	}
	if !strings.Contains(cone, `oifname "to-inet" masquerade comment`) || strings.Contains(cone, "random") {
		t.Errorf("cone ruleset:\n%s", cone)
	}
	if !strings.Contains(sym, `oifname "to-inet" masquerade fully-random`) {
		t.Errorf("symmetric ruleset:\n%s", sym)
	}
}

func TestMiredoConfs(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{MiredoServerConf(), "ServerBindAddress 203.0.113.10\n"},
		{MiredoClientConf(), "RelayType client\nServerAddress 203.0.113.10\nInterfaceName teredo\n"},
		{MiredoRelayConf(), "RelayType cone\nInterfaceName teredo\nBindAddress 203.0.113.20\nBindPort 3545\n"},
	} {
		if !strings.HasSuffix(c.conf, c.want) {
			t.Errorf("configuration %q does not end with %q", c.conf, c.want)
		}
		// Nothing in a lab configuration may name a public server.
		if strings.Contains(c.conf, "remlab") || strings.Contains(c.conf, "microsoft") {
			t.Errorf("configuration names a public server: %q", c.conf)
		}
	}
}

func TestParseSSUDP(t *testing.T) {
	out := `UNCONN 0      0        203.0.113.10:3544      0.0.0.0:*    users:(("miredo-server",pid=27357,fd=3))
UNCONN 0      0             0.0.0.0:35268      0.0.0.0:*    users:(("miredo",pid=27376,fd=4))
UNCONN 0      0      0.0.0.0%to-nat:68         0.0.0.0:*
garbage
`
	got := parseSSUDP(out)
	want := []UDPSocket{
		{Local: netip.MustParseAddrPort("203.0.113.10:3544"), Process: "miredo-server"},
		{Local: netip.MustParseAddrPort("0.0.0.0:35268"), Process: "miredo"},
		{Local: netip.MustParseAddrPort("0.0.0.0:68")},
	}
	if len(got) != len(want) {
		t.Fatalf("parseSSUDP = %+v, want %+v", got, want)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("socket %d: %+v, want %+v", k, got[k], want[k])
		}
	}
}

func TestParseTeredoAddrShow(t *testing.T) {
	out := "7: teredo    inet6 2001:0:cb00:710a:1cee:763b:39cc:9bf4/32 scope global \\       valid_lft forever preferred_lft forever\n"
	a, ok := parseTeredoAddrShow(out)
	if !ok || a.String() != "2001:0:cb00:710a:1cee:763b:39cc:9bf4" {
		t.Errorf("parseTeredoAddrShow = %s, %v", a, ok)
	}
	if _, ok := parseTeredoAddrShow("7: teredo    inet6 fe80::ffff:ffff:ffff/64 scope link \n"); ok {
		t.Error("a link-local address taken for a Teredo address")
	}
}

func TestParseMiredoLogAddrs(t *testing.T) {
	log := `miredo[28387]: Starting...
miredo[28388]: New Teredo address/MTU
miredo[28388]: Teredo pseudo-tunnel started
miredo[28388]:  (address: 2001:0:cb00:710a:3445:3d9b:39cc:9bf4, MTU: 1280)
miredo[28388]: New Teredo address/MTU
miredo[28388]: Teredo pseudo-tunnel started
miredo[28388]:  (address: 2001:0:cb00:710a:1111:3d9b:39cc:9bf4, MTU: 1280)
`
	got := parseMiredoLogAddrs(log)
	if len(got) != 2 || got[1].String() != "2001:0:cb00:710a:1111:3d9b:39cc:9bf4" {
		t.Errorf("parseMiredoLogAddrs = %v", got)
	}
}
