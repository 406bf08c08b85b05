package diagnose

import (
	"slices"

	"github.com/iphttps/iphttps/internal/winerr"
)

// MethodNote is what a code means when a 6to4 or Teredo check reports it,
// and the general remedies there: those checks give them as their
// remedies (a code's IP-HTTPS remedies do not apply to them), and
// `iphttps errcode` prints them after the code's explanation.
type MethodNote struct {
	Check    string   `json:"check"`
	Meaning  string   `json:"meaning"`
	Remedies []string `json:"remedies"`
}

// Shared texts of the notes.
const (
	noteFallback = "Nothing to repair for DirectAccess as a whole: it uses Teredo or IP-HTTPS on such a network " +
		"(`iphttps diagnose --teredo-server ADDR URL` checks them; the verdict says which would carry the traffic)."
	noteUDP3544 = "Let UDP to and from port 3544 of both Teredo server addresses (the primary and, unless " +
		"--teredo-secondary says otherwise, the next address) through every firewall on the path and on the " +
		"server; `tcpdump -ni any udp port 3544` on both ends shows where the solicitations stop."
)

// methodNotes are the notes by code, in the order of the checks.
var methodNotes = []struct {
	code uint32
	MethodNote
}{
	{winerr.NetUnreach, MethodNote{Check: Check6to4Address,
		Meaning: "This host's IPv4 address towards the relay is not public (private, carrier-grade NAT shared " +
			"space, or another special range), or there is no route to the relay: 6to4 needs a public IPv4 " +
			"address on the host itself (docs/6to4.md, \"Public addresses\").",
		Remedies: []string{
			noteFallback,
			"For 6to4, give the host a public IPv4 address (a router in bridge mode, or the public address on " +
				"this host); `ip route get RELAY` shows the address the host uses towards the relay.",
			"In a lab numbered from the documentation ranges, add --6to4-lab.",
		}}},
	{winerr.NetUnreach, MethodNote{Check: Check6to4Mapping,
		Meaning: "The relay's Teredo server sees this host at another address than its own: a public-looking " +
			"address behind a NAT, where protocol 41, which has no ports, cannot come back (the 6to4 client's " +
			"mapping test, docs/6to4.md).",
		Remedies: []string{
			noteFallback,
			"For 6to4, the public address must be on this host, with no NAT between it and the Internet.",
		}}},
	{winerr.TimedOut, MethodNote{Check: Check6to4Reachability,
		Meaning: "No echo came back over IPv4 protocol 41 from the relay's 6to4 address in 3 tries of 2 s: " +
			"something on the path drops protocol 41 (a firewall that lets only TCP, UDP and ICMP through), or " +
			"the relay does not answer.",
		Remedies: []string{
			"Let IPv4 protocol 41 to and from the relay through the firewalls on the path and on the server " +
				"(`nft list ruleset`); `tcpdump -ni any ip proto 41` on both ends shows where it stops.",
			"On the server, `iphttps show 6to4` shows the relay (`iphttps server --6to4 ADDR`, on the server's " +
				"public address).",
			noteFallback,
		}}},
	{winerr.HostNotFound, MethodNote{Check: CheckTeredoPrimary,
		Meaning: "The Teredo server's name does not resolve to an IPv4 address.",
		Remedies: []string{
			"`getent ahostsv4 NAME` shows what the name resolves to; give --teredo-server the server's IPv4 " +
				"address instead.",
		}}},
	{winerr.TimedOut, MethodNote{Check: CheckTeredoPrimary,
		Meaning: "No valid router advertisement came from the Teredo server's primary address within the " +
			"client's 8 s (docs/teredo.md, \"Client\"): UDP port 3544 is blocked on the path, or no Teredo " +
			"server runs there.",
		Remedies: []string{
			noteUDP3544,
			"On the server, `iphttps show teredo` shows the Teredo server (`iphttps server --teredo ADDR`; its " +
				"second address must be on the host too).",
			"DirectAccess falls back to IP-HTTPS: give the URL to check it.",
		}}},
	{winerr.NoData, MethodNote{Check: CheckTeredoPrimary,
		Meaning: "The server saw this client at an address that is not global: the client is behind the same " +
			"NAT as the server, or behind a carrier-grade NAT. Teredo peers could not reach such a mapping.",
		Remedies: []string{
			"Reach the server over the Internet, not from inside its own network.",
			"Behind a carrier-grade NAT (100.64.0.0/10), use IP-HTTPS.",
		}}},
	{winerr.TimedOut, MethodNote{Check: CheckTeredoSecondary,
		Meaning: "The primary address answered but the secondary did not within 4 s: the NAT type cannot be " +
			"told from a symmetric one, and the Teredo client does not qualify (RFC 4380; its Error line: " +
			"secondary server unreachable over UDP).",
		Remedies: []string{
			noteUDP3544,
			"Give --teredo-secondary when the server's second address is not the primary plus one.",
		}}},
	{winerr.TimedOut, MethodNote{Check: CheckTeredoNAT,
		Meaning: "The NAT type is unknown because the secondary address did not answer (see teredo-secondary): " +
			"the Teredo client stays offline.",
		Remedies: []string{
			noteUDP3544,
			"Give --teredo-secondary when the server's second address is not the primary plus one.",
		}}},
	{winerr.NoData, MethodNote{Check: CheckTeredoNAT,
		Meaning: "The NAT is symmetric: it maps this client to another address or port towards each server " +
			"address, and Teredo needs a cone or restricted NAT (docs/teredo.md, NAT type).",
		Remedies: []string{
			"Use IP-HTTPS: DirectAccess falls back to it (give the URL to check it).",
			"Or forward a fixed UDP port on the NAT to this host and have the client use it " +
				"(--teredo-client-port): the forward makes the NAT a cone for Teredo (RFC 4380 section 5.2.10).",
		}}},
	{winerr.TimedOut, MethodNote{Check: CheckTeredoRelay,
		Meaning: "No echo reply came back from the intranet host through the server in 3 tries of 2 s: the " +
			"server does not relay to the host, or the host does not answer ICMPv6 echo requests. DirectAccess " +
			"needs intranet hosts to answer them for Teredo clients: a client finds a host's relay with this " +
			"test before it sends the host anything (docs/teredo.md, \"Data path\").",
		Remedies: []string{
			"On the intranet host, let ICMPv6 echo requests in and the replies out (its firewall).",
			"On the server, the host's prefix must be routed into the tunnel (`--route`), and the intranet must " +
				"route the replies to Teredo addresses (2001::/32) back to the server.",
		}}},
}

// MethodNotes returns what code means in the 6to4 and Teredo checks that
// report it (none for a code they do not report).
func MethodNotes(code uint32) []MethodNote {
	var out []MethodNote
	for _, n := range methodNotes {
		if n.code == code {
			m := n.MethodNote
			m.Remedies = slices.Clone(m.Remedies)
			out = append(out, m)
		}
	}
	return out
}

// methodRemedies are the remedies of the note for check and code (nil when
// there is none).
func methodRemedies(check string, code uint32) []string {
	for _, n := range methodNotes {
		if n.code == code && n.Check == check {
			return slices.Clone(n.Remedies)
		}
	}
	return nil
}
