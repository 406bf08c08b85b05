package status

import (
	"encoding/json"
	"strings"
	"testing"
)

// The expected outputs below are written by hand from Windows'
// `netsh interface teredo show state` captures: the header, 45 dashes, the
// label column 23 characters wide, " : ", the value.

func TestWriteTeredoShapes(t *testing.T) {
	qualified := TeredoState{
		Type: "client", ServerName: "203.0.113.10", RefreshInterval: 30, ClientPort: "unspecified",
		State: "qualified", ClientType: "teredo client", Network: "unmanaged",
		NAT: "restricted", NATSpecialBehaviour: "UPNP: No, PortPreserving: Yes",
		LocalMapping: "10.1.0.2:52865", ExternalNATMapping: "198.51.100.11:52865",
		Address: "2001:0:cb00:710a::1", Server: "203.0.113.10", Secondary: "203.0.113.11", Peers: 3,
	}
	cases := []struct {
		name string
		ifs  []Interface
		want string
	}{
		{"qualified", []Interface{{Role: "client", TeredoClient: &qualified}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : qualified\n" +
			"Client Type             : teredo client\n" +
			"Network                 : unmanaged\n" +
			"NAT                     : restricted\n" +
			"NAT Special Behaviour   : UPNP: No, PortPreserving: Yes\n" +
			"Local Mapping           : 10.1.0.2:52865\n" +
			"External NAT Mapping    : 198.51.100.11:52865\n"},
		// What the daemon knows while probing (NAT, mappings) is not shown:
		// Windows stops after Network.
		{"probe primary", []Interface{{Role: "client", TeredoClient: &TeredoState{
			Type: "client", ServerName: "teredo.example.net", RefreshInterval: 30, ClientPort: "unspecified",
			State: "probe (primary server)", ClientType: "teredo client", Network: "unmanaged",
			NAT: "cone", NATSpecialBehaviour: "UPNP: No, PortPreserving: Yes", LocalMapping: "10.1.0.2:52865",
		}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : teredo.example.net\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : probe (primary server)\n" +
			"Client Type             : teredo client\n" +
			"Network                 : unmanaged\n"},
		{"probe secondary", []Interface{{Role: "client", TeredoClient: &TeredoState{
			Type: "client", ServerName: "203.0.113.10", RefreshInterval: 60, ClientPort: "34567",
			State: "probe (secondary server)", ClientType: "teredo client", Network: "unmanaged",
		}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 60 seconds\n" +
			"Client Port             : 34567\n" +
			"State                   : probe (secondary server)\n" +
			"Client Type             : teredo client\n" +
			"Network                 : unmanaged\n"},
		// Offline: Error, and nothing after it.
		{"offline with error", []Interface{{Role: "client", TeredoClient: &TeredoState{
			Type: "client", ServerName: "203.0.113.10", RefreshInterval: 30, ClientPort: "unspecified",
			State: "offline", Error: "client is in a managed network", ClientType: "teredo client", Network: "managed",
		}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : offline\n" +
			"Error                   : client is in a managed network\n"},
		// Offline with no error given: "none", as Windows prints.
		{"offline no error", []Interface{{Role: "client", TeredoClient: &TeredoState{
			Type: "client", ServerName: "203.0.113.10", RefreshInterval: 30, ClientPort: "unspecified", State: "offline",
		}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : offline\n" +
			"Error                   : none\n"},
		// No daemon runs Teredo (an IP-HTTPS client only): Windows' disabled shape.
		{"disabled", []Interface{{Role: "client", URL: "https://da.example.test/IPHTTPS"}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : disabled\n" +
			"Server Name             : unspecified\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : offline\n" +
			"Error                   : none\n"},
		{"no daemons", nil, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : disabled\n" +
			"Server Name             : unspecified\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : offline\n" +
			"Error                   : none\n"},
		// Qualified, mappings not known yet, no NAT: lines left out, and no
		// NAT Special Behaviour without NAT.
		{"qualified partial", []Interface{{Role: "client", TeredoClient: &TeredoState{
			Type: "client", ServerName: "203.0.113.10", RefreshInterval: 30, ClientPort: "unspecified",
			State: "qualified", ClientType: "teredo client", Network: "unmanaged",
			NATSpecialBehaviour: "UPNP: No, PortPreserving: Yes", LocalMapping: "10.1.0.2:52865",
		}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : qualified\n" +
			"Client Type             : teredo client\n" +
			"Network                 : unmanaged\n" +
			"Local Mapping           : 10.1.0.2:52865\n"},
		{"dormant", []Interface{{Role: "client", TeredoClient: &TeredoState{
			Type: "client", ServerName: "203.0.113.10", RefreshInterval: 30, ClientPort: "unspecified",
			State: "dormant", ClientType: "teredo client", Network: "unmanaged", NAT: "none (global connectivity)",
		}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : dormant\n" +
			"Client Type             : teredo client\n" +
			"Network                 : unmanaged\n" +
			"NAT                     : none (global connectivity)\n"},
		// What a daemon left empty gets Windows' defaults.
		{"defaults", []Interface{{Role: "client", TeredoClient: &TeredoState{ServerName: "203.0.113.10"}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : offline\n" +
			"Error                   : none\n"},
		{"server", []Interface{{Role: "server", Teredo: &TeredoServer{
			Primary: "203.0.113.10", Secondary: "203.0.113.11", Prefix: "2001:0:cb00:710a::/64",
		}}}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : server\n" +
			"Primary Address         : 203.0.113.10\n" +
			"Secondary Address       : 203.0.113.11\n" +
			"Prefix                  : 2001:0:cb00:710a::/64\n"},
		// Several daemons: one block each, in order, a blank line between
		// blocks; daemons without Teredo print nothing.
		{"several", []Interface{
			{Role: "client", TeredoClient: &qualified},
			{Role: "client", URL: "https://da.example.test/IPHTTPS"},
			{Role: "client", TeredoClient: &TeredoState{
				Type: "client", ServerName: "203.0.113.20", RefreshInterval: 30, ClientPort: "unspecified",
				State: "probe (primary server)", ClientType: "teredo client", Network: "unmanaged",
			}},
			{Role: "server", Teredo: &TeredoServer{Primary: "203.0.113.10", Secondary: "203.0.113.11", Prefix: "2001:0:cb00:710a::/64"}},
		}, "" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.10\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : qualified\n" +
			"Client Type             : teredo client\n" +
			"Network                 : unmanaged\n" +
			"NAT                     : restricted\n" +
			"NAT Special Behaviour   : UPNP: No, PortPreserving: Yes\n" +
			"Local Mapping           : 10.1.0.2:52865\n" +
			"External NAT Mapping    : 198.51.100.11:52865\n" +
			"\n" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : client\n" +
			"Server Name             : 203.0.113.20\n" +
			"Client Refresh Interval : 30 seconds\n" +
			"Client Port             : unspecified\n" +
			"State                   : probe (primary server)\n" +
			"Client Type             : teredo client\n" +
			"Network                 : unmanaged\n" +
			"\n" +
			"Teredo Parameters\n" +
			"---------------------------------------------\n" +
			"Type                    : server\n" +
			"Primary Address         : 203.0.113.10\n" +
			"Secondary Address       : 203.0.113.11\n" +
			"Prefix                  : 2001:0:cb00:710a::/64\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteTeredo(&b, c.ifs); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != c.want {
				t.Errorf("output differs\ngot:\n%s\nwant:\n%s\ngot  %q\nwant %q", got, c.want, got, c.want)
			}
		})
	}
}

// TestWriteTeredoLabelColumn checks every value line of every shape: the
// label is one of Windows' (or, for the server block, iphttps' own) and
// ends in a 23-character column followed by " : ".
func TestWriteTeredoLabelColumn(t *testing.T) {
	labels := map[string]bool{
		"Type": true, "Server Name": true, "Client Refresh Interval": true, "Client Port": true,
		"State": true, "Error": true, "Client Type": true, "Network": true, "NAT": true,
		"NAT Special Behaviour": true, "Local Mapping": true, "External NAT Mapping": true,
		"Primary Address": true, "Secondary Address": true, "Prefix": true,
	}
	full := TeredoState{
		Type: "client", ServerName: "s", RefreshInterval: 30, ClientPort: "unspecified", State: "qualified",
		ClientType: "teredo client", Network: "unmanaged", NAT: "cone", NATSpecialBehaviour: "UPNP: No, PortPreserving: Yes",
		LocalMapping: "10.1.0.2:1", ExternalNATMapping: "198.51.100.1:1",
	}
	offline := TeredoState{State: "offline", Error: "client is in a managed network"}
	ifs := []Interface{
		{TeredoClient: &full}, {TeredoClient: &offline},
		{Teredo: &TeredoServer{Primary: "203.0.113.10", Secondary: "203.0.113.11", Prefix: "2001:0:cb00:710a::/64"}},
	}
	var b strings.Builder
	if err := WriteTeredo(&b, ifs); err != nil {
		t.Fatal(err)
	}
	if err := WriteTeredo(&b, nil); err != nil { // the disabled block
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if l == "" || l == "Teredo Parameters" || l == strings.Repeat("-", 45) {
			continue
		}
		if len(l) < 26 || l[23:26] != " : " {
			t.Errorf("line %q: no \" : \" after a 23-character label column", l)
			continue
		}
		label := strings.TrimRight(l[:23], " ")
		if !labels[label] {
			t.Errorf("line %q: unknown label %q", l, label)
		}
		seen[label] = true
	}
	for l := range labels {
		if !seen[l] {
			t.Errorf("label %q never printed", l)
		}
	}
}

func TestTeredoJSON(t *testing.T) {
	// No daemon runs Teredo: nothing, as Get-NetTeredoState returns no
	// object when Teredo is not active.
	j, err := json.Marshal(TeredoJSON([]Interface{{Role: "client"}}))
	if err != nil {
		t.Fatal(err)
	}
	if string(j) != "[]" {
		t.Errorf("no Teredo: %s, want []", j)
	}
	j, err = json.Marshal(TeredoJSON([]Interface{
		{Role: "client"},
		{Role: "client", TeredoClient: &TeredoState{
			ServerName: "203.0.113.10", State: "qualified", ClientType: "teredo client", Network: "unmanaged",
			NAT: "cone", LocalMapping: "10.1.0.2:52865", ExternalNATMapping: "198.51.100.11:52865", Peers: 2,
		}},
		{Role: "server", Teredo: &TeredoServer{Primary: "203.0.113.10", Secondary: "203.0.113.11", Prefix: "2001:0:cb00:710a::/64"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"Type":"client","ServerName":"203.0.113.10","RefreshIntervalSeconds":30,"ClientPort":"unspecified",` +
		`"State":"qualified","ClientType":"teredo client","Network":"unmanaged","NAT":"cone",` +
		`"LocalMapping":"10.1.0.2:52865","ExternalNATMapping":"198.51.100.11:52865","Peers":2},` +
		`{"Type":"server","PrimaryAddress":"203.0.113.10","SecondaryAddress":"203.0.113.11","Prefix":"2001:0:cb00:710a::/64"}]`
	if string(j) != want {
		t.Errorf("JSON differs\ngot  %s\nwant %s", j, want)
	}
}
