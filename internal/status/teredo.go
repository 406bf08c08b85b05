package status

import (
	"fmt"
	"io"
	"strings"
)

// The layout of Windows' `netsh interface teredo show state`: the header
// "Teredo Parameters", 45 dashes, then "label : value" lines whose label
// column is 23 characters wide (the width of "Client Refresh Interval").
const (
	teredoDashes   = 45
	teredoLabelPad = 23
)

// TeredoDefaultRefresh is the client refresh interval, in seconds, that
// Windows and RFC 4380 use when none is configured.
const TeredoDefaultRefresh = 30

// TeredoDisabled is the state shown when no daemon on this machine runs a
// Teredo client or server: Windows' "Type : disabled" shape. iphttps has no
// built-in Teredo server name (Windows shows its default, e.g.
// teredo.ipv6.microsoft.com.), so Server Name is "unspecified", the word
// Windows uses for a Client Port nobody set.
var TeredoDisabled = TeredoState{
	Type:            "disabled",
	ServerName:      "unspecified",
	RefreshInterval: TeredoDefaultRefresh,
	ClientPort:      "unspecified",
	State:           "offline",
	Error:           "none",
}

// TeredoServerState is a Teredo server's side in `iphttps show teredo
// --json`. Windows shows only "Type : server" for a Teredo server; the
// other fields are iphttps' own, named in the same style as TeredoState.
type TeredoServerState struct {
	Type      string `json:"Type"` // "server"
	Primary   string `json:"PrimaryAddress"`
	Secondary string `json:"SecondaryAddress"`
	Prefix    string `json:"Prefix"`
}

// Normalized returns t with Windows' defaults for what a daemon left
// empty: Type "client", a 30-second refresh interval, Client Port
// "unspecified", State "offline", and Error "none" while offline.
func (t TeredoState) Normalized() TeredoState {
	if t.Type == "" {
		t.Type = "client"
	}
	if t.RefreshInterval <= 0 {
		t.RefreshInterval = TeredoDefaultRefresh
	}
	if t.ClientPort == "" {
		t.ClientPort = "unspecified"
	}
	if t.State == "" {
		t.State = "offline"
	}
	if t.State == "offline" && t.Error == "" {
		t.Error = "none"
	}
	return t
}

// TeredoJSON is the data of `iphttps show teredo --json`: one object per
// daemon that runs Teredo, in the order given. A client's is its
// TeredoState (Normalized; PowerShell's property names); a server's is a
// TeredoServerState. Like Get-NetTeredoState when Teredo is not active,
// it is empty when no daemon runs Teredo.
func TeredoJSON(ifs []Interface) []any {
	out := []any{}
	for _, s := range ifs {
		switch {
		case s.TeredoClient != nil:
			out = append(out, s.TeredoClient.Normalized())
		case s.Teredo != nil:
			out = append(out, TeredoServerState{Type: "server", Primary: s.Teredo.Primary, Secondary: s.Teredo.Secondary, Prefix: s.Teredo.Prefix})
		}
	}
	return out
}

// WriteTeredo prints the Teredo state of the daemons in ifs in the layout
// of `netsh interface teredo show state`, one block per daemon that runs
// Teredo, blocks separated by a blank line. As in the Windows captures,
// the header is the first line (no blank line before it, unlike
// `show interfaces`) and nothing follows the last value line.
//
// A client's block follows Windows line for line: Type, Server Name,
// Client Refresh Interval, Client Port, State; then, when State is
// "offline", Error and nothing more; while probing ("probe (...)"),
// Client Type and Network and nothing more; otherwise Client Type,
// Network, NAT, NAT Special Behaviour (only with NAT), Local Mapping and
// External NAT Mapping. A line whose value is not known (empty) is left
// out.
//
// A server's block is "Type : server" (what Windows shows) followed by
// iphttps' own lines: Primary Address, Secondary Address, Prefix.
//
// When no daemon runs Teredo, the block is TeredoDisabled.
func WriteTeredo(w io.Writer, ifs []Interface) error {
	return writeBlocks(w, "Teredo Parameters", ifs, func(b *strings.Builder, s Interface) bool {
		switch {
		case s.TeredoClient != nil:
			writeTeredoClient(b, s.TeredoClient.Normalized())
		case s.Teredo != nil:
			teredoLine(b, "Type", "server")
			teredoLine(b, "Primary Address", s.Teredo.Primary)
			teredoLine(b, "Secondary Address", s.Teredo.Secondary)
			teredoLine(b, "Prefix", s.Teredo.Prefix)
		default:
			return false
		}
		return true
	}, func(b *strings.Builder) { writeTeredoClient(b, TeredoDisabled) })
}

// writeBlocks writes, in the layout of netsh's transition-technology
// output, one block per daemon of ifs that block fills: the header line,
// 45 dashes, then the lines block writes (it returns false, having written
// nothing, for a daemon without this technology); blocks are separated by
// a blank line. With no block at all, one block of none's lines.
func writeBlocks(w io.Writer, header string, ifs []Interface, block func(*strings.Builder, Interface) bool, none func(*strings.Builder)) error {
	var out, b strings.Builder
	n := 0
	add := func() {
		if n > 0 {
			out.WriteString("\n")
		}
		n++
		out.WriteString(header + "\n" + strings.Repeat("-", teredoDashes) + "\n" + b.String())
		b.Reset()
	}
	for _, s := range ifs {
		if block(&b, s) {
			add()
		}
	}
	if n == 0 {
		none(&b)
		add()
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func writeTeredoClient(b *strings.Builder, t TeredoState) {
	teredoLine(b, "Type", t.Type)
	teredoLine(b, "Server Name", nonEmpty(t.ServerName, "unspecified"))
	teredoLine(b, "Client Refresh Interval", fmt.Sprintf("%d seconds", t.RefreshInterval))
	teredoLine(b, "Client Port", t.ClientPort)
	teredoLine(b, "State", t.State)
	if t.State == "offline" {
		teredoLine(b, "Error", t.Error)
		return
	}
	teredoLine(b, "Client Type", t.ClientType)
	teredoLine(b, "Network", t.Network)
	if strings.HasPrefix(t.State, "probe") {
		return
	}
	if t.NAT != "" {
		teredoLine(b, "NAT", t.NAT)
		teredoLine(b, "NAT Special Behaviour", t.NATSpecialBehaviour)
	}
	teredoLine(b, "Local Mapping", t.LocalMapping)
	teredoLine(b, "External NAT Mapping", t.ExternalNATMapping)
}

// teredoLine writes "label<pad to 23> : value", or nothing when value is
// empty (not known).
func teredoLine(b *strings.Builder, label, value string) {
	if value == "" {
		return
	}
	fmt.Fprintf(b, "%-*s : %s\n", teredoLabelPad, label, value)
}
