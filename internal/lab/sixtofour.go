package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/sixtofour"
)

// The 6to4 lab: a topology of its own, for 6to4 (RFC 3056, IPv6 straight
// inside IPv4 protocol 41) between clients on the IPv4 Internet and
// iphttps's server as a DirectAccess server's 6to4 relay. Names are
// prefix+role, the prefix chosen by the caller; clients are of five kinds
// (SixToFourOptions.Clients), for example:
//
//	cli1 ─────────────────────┐ 198.51.100.11      public
//	cli2 ── nat2 ─────────────┤ 192.0.2.102        behind a NAT, inside
//	 198.51.100.134/30        │                    198.51.100.132/30
//	cli3 ─────────────────────┤ 198.51.100.13      filtered
//	                        inet ── 203.0.113.0/24 ── da ── corp
//	                                          203.0.113.10   2001:db8:c0::10
//	                                     (iphttps server,    (intranet host,
//	                                      6to4 relay,        web server :80)
//	                                      2001:db8:c0::1)
//
// The roles:
//
//   - inet is the IPv4 Internet, a router. The server's host sits on
//     203.0.113.0/24 (inet is 203.0.113.1 there); each client or NAT hangs
//     off it on a point-to-point link (inet is 198.51.100.1 towards the
//     clients, 203.0.113.1 towards the NATs).
//   - da is the DirectAccess server's host: SixToFourServerIPv4, where
//     `iphttps server --6to4 203.0.113.10 --6to4-lab` runs (StartServer),
//     and the intranet towards corp, with IPv6 forwarding on.
//   - corp is the intranet host 2001:db8:c0::10 (default route via da),
//     with the lab's little web server on port 80.
//   - cliN is client N, with the client's 6to4 address made from its own
//     IPv4 address (Client6to4). A public client (SixToFourPublic) has
//     SixToFourPublicIPv4(N), routed by inet. A client behind a NAT
//     (SixToFourNAT) has an address from 198.51.100.128/25, which looks
//     public but is not routed on the Internet: natN, the Teredo lab's
//     home router (TeredoNATRuleset), masquerades it as
//     sixToFourNATOutsideIPv4(N), so the server sees an outer source its
//     6to4 address does not embed (the pseudo-public case a 6to4 client
//     must detect). A filtered client (SixToFourFiltered) is public, but
//     inet drops IPv4 protocol 41 to and from it, counting the packets
//     (SixToFourFilterRuleset, FilterDrops), as a firewall that only lets
//     TCP, UDP and ICMP through would. A client behind a NAT with a
//     private address (SixToFourPrivateNAT) has 10.N.0.2/24 behind natN,
//     masqueraded the same way: the range test refuses 6to4 for it. A
//     client in a "hotel" (SixToFourHotel) is public, but inet drops its
//     protocol 41 and its UDP to and from port 3544 (Teredo), counted in
//     the same filter.
//
// Everything stays inside the namespaces; the addresses are documentation
// ranges and 6to4 addresses made from them.
const (
	// SixToFourDefaultPrefix is the namespace prefix when SixToFourOptions
	// gives none.
	SixToFourDefaultPrefix = "6to4-"

	// SixToFourServerIPv4 is the server's public address: its 6to4
	// address is 2002:cb00:710a::cb00:710a.
	SixToFourServerIPv4 = "203.0.113.10"
	// SixToFourInetIPv4 is inet's address on the server's network and on
	// the NATs' links.
	SixToFourInetIPv4 = "203.0.113.1"
	// SixToFourClientGateway is inet's address on the public and filtered
	// clients' links.
	SixToFourClientGateway = "198.51.100.1"
	// SixToFourNATInside holds the NATs' inside links: public-looking
	// addresses the Internet does not route.
	SixToFourNATInside = "198.51.100.128/25"

	// SixToFourIntranetPrefix, SixToFourIntranetRouter and
	// SixToFourIntranetHost are the intranet behind da (the same addresses
	// as the IP-HTTPS lab's).
	SixToFourIntranetPrefix = IntranetPrefix
	SixToFourIntranetRouter = IntranetRouter
	SixToFourIntranetHost   = IntranetHost

	// SixToFourFilterTable is inet's nftables table that drops the
	// filtered clients' protocol 41.
	SixToFourFilterTable = "sixtofour_lab_filter"

	maxSixToFourClients = 20
	vethToDA            = "to-da"
)

// 6to4 lab roles (namespace prefix+role; clients and NATs are "cli1",
// "nat2", ..., NAT N being client N's).
const (
	SixToFourRoleInet   = "inet"
	SixToFourRoleServer = "da"
	SixToFourRoleCorp   = "corp"
)

// SixToFourKind is how a lab client reaches the Internet.
type SixToFourKind int

// The kinds of 6to4 lab clients.
const (
	// SixToFourPublic: a public address, routed to the server.
	SixToFourPublic SixToFourKind = iota
	// SixToFourNAT: behind a NAT, with an inside address that looks public.
	SixToFourNAT
	// SixToFourFiltered: a public address, but protocol 41 dropped on the
	// way.
	SixToFourFiltered
	// SixToFourPrivateNAT: behind a NAT, with a private inside address
	// (10.N.0.2/24).
	SixToFourPrivateNAT
	// SixToFourHotel: a public address, but protocol 41 and UDP port
	// 3544 dropped on the way (only TCP gets through to the server).
	SixToFourHotel
)

func (k SixToFourKind) String() string {
	switch k {
	case SixToFourPublic:
		return "public"
	case SixToFourNAT:
		return "nat"
	case SixToFourFiltered:
		return "filtered"
	case SixToFourPrivateNAT:
		return "private-nat"
	case SixToFourHotel:
		return "hotel"
	}
	return "kind" + strconv.Itoa(int(k))
}

// SixToFourClientRole is the role of client i: "cli1", ...
func SixToFourClientRole(i int) string { return "cli" + strconv.Itoa(i) }

// SixToFourNATRole is the role of client i's NAT: "nat1", ...
func SixToFourNATRole(i int) string { return "nat" + strconv.Itoa(i) }

// SixToFourPublicIPv4 is the address of a public or filtered client i:
// 198.51.100.(10+i).
func SixToFourPublicIPv4(i int) string { return fmt.Sprintf("198.51.100.%d", 10+i) }

// sixToFourNATOutsideIPv4 is client i's NAT's outside address:
// 192.0.2.(100+i). It must not be in the server's 203.0.113.0/24, which
// the server takes for its own link and would look for there rather than
// through inet.
func sixToFourNATOutsideIPv4(i int) string { return fmt.Sprintf("192.0.2.%d", 100+i) }

// sixToFourNATInsideIPv4 is the NAT's (host 1) or the client's (host 2)
// address on client i's inside link, a /30 of SixToFourNATInside.
func sixToFourNATInsideIPv4(i, host int) string {
	return fmt.Sprintf("198.51.100.%d", 128+4*(i-1)+host)
}

// behindNAT reports whether a client of kind k is behind a NAT.
func (k SixToFourKind) behindNAT() bool { return k == SixToFourNAT || k == SixToFourPrivateNAT }

// filtered reports whether inet filters a client of kind k
// (SixToFourFilterRuleset).
func (k SixToFourKind) filtered() bool { return k == SixToFourFiltered || k == SixToFourHotel }

// sixToFourPrivateIPv4 is the NAT's (host 1) or the client's (host 2)
// address on a private-NAT client i's inside link 10.i.0.0/24.
func sixToFourPrivateIPv4(i, host int) string { return fmt.Sprintf("10.%d.0.%d", i, host) }

// sixToFourRoleRE matches the roles of the 6to4 lab; stale clean-up only
// touches prefix+role names.
var sixToFourRoleRE = regexp.MustCompile(`^(inet|corp|da|cli[0-9]+|nat[0-9]+)$`)

// IsSixToFourLabNamespace reports whether name is a 6to4 lab namespace of
// prefix.
func IsSixToFourLabNamespace(prefix, name string) bool {
	if prefix == "" || !strings.HasPrefix(name, prefix) {
		return false
	}
	return sixToFourRoleRE.MatchString(strings.TrimPrefix(name, prefix))
}

// RemoveStaleSixToFour deletes every namespace named like a 6to4 lab
// namespace of prefix (killing its processes first).
func RemoveStaleSixToFour(ctx context.Context, prefix string) error {
	return removeStaleNamespaces(ctx, prefix, IsSixToFourLabNamespace)
}

// SixToFourOptions configure SixToFourUp.
type SixToFourOptions struct {
	// Prefix starts every namespace name (SixToFourDefaultPrefix if
	// empty).
	Prefix string
	// Clients are the kinds of the client namespaces, client i+1 of kind
	// Clients[i] (default: one public client; at most 20).
	Clients []SixToFourKind
	// Dir holds the logs, the nftables rulesets and the server's control
	// socket. Empty: a new temporary directory, removed by Down; a given
	// one is kept.
	Dir string
	// Binary is the iphttps executable StartServer runs.
	Binary string
	// Log receives the lab's progress messages. Nil discards them.
	Log io.Writer
}

// SixToFourTools are the programs the 6to4 lab runs, with their Debian
// packages.
func SixToFourTools() []Tool {
	return []Tool{
		{Name: "ip", Package: "iproute2"},
		{Name: "nft", Package: "nftables"},
	}
}

// CheckSixToFourTools reports missing tools of the 6to4 lab.
func CheckSixToFourTools() error { return checkTools(SixToFourTools()) }

// SixToFourLab is a running 6to4 topology. Its methods are safe for
// concurrent use.
type SixToFourLab struct {
	*procLab // namespaces, processes, web server, Down
	opts     SixToFourOptions

	// Under procLab.mu:
	etcDirs    []string // /etc/netns directories made by SetHosts
	savedState bool     // SaveState wrote the state file
}

// SixToFourUp builds the 6to4 topology: namespaces, links, addresses,
// routes, sysctls, the NATs' and the filter's nftables rulesets and the
// intranet web server, and waits until every link has its carrier and a
// usable IPv6 link-local address (duplicate address detection is off in
// the lab: see disableDAD). It does not start the server (StartServer).
// Namespaces left over from an earlier lab with the same prefix are
// removed first; on error everything created is removed.
func SixToFourUp(ctx context.Context, o SixToFourOptions) (*SixToFourLab, error) {
	if o.Prefix == "" {
		o.Prefix = SixToFourDefaultPrefix
	}
	if err := validPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if len(o.Clients) == 0 {
		o.Clients = []SixToFourKind{SixToFourPublic}
	}
	if err := checkSixToFourClients(o.Clients); err != nil {
		return nil, err
	}
	if err := CheckRoot(); err != nil {
		return nil, err
	}
	if err := CheckSixToFourTools(); err != nil {
		return nil, fmt.Errorf("6to4 lab: %w", err)
	}
	pl, err := newProcLab("6to4 lab", o.Prefix, o.Dir, "iphttps-6to4-lab-", o.Log)
	if err != nil {
		return nil, err
	}
	l := &SixToFourLab{procLab: pl, opts: o}
	start := time.Now()
	if err := l.build(ctx); err != nil {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean-up after failed start: %w", derr))
		}
		return nil, err
	}
	l.log.Info("6to4 lab is up", "prefix", o.Prefix, "dir", l.dir, "clients", o.Clients,
		"after", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// checkSixToFourClients checks the number and kinds of the clients.
func checkSixToFourClients(kinds []SixToFourKind) error {
	if len(kinds) > maxSixToFourClients {
		return fmt.Errorf("6to4 lab: %d clients: want 1 to %d", len(kinds), maxSixToFourClients)
	}
	for i, k := range kinds {
		if k < SixToFourPublic || k > SixToFourHotel {
			return fmt.Errorf("6to4 lab: client %d: unknown kind %d", i+1, int(k))
		}
	}
	return nil
}

func (l *SixToFourLab) build(ctx context.Context) error {
	if err := RemoveStaleSixToFour(ctx, l.opts.Prefix); err != nil {
		return fmt.Errorf("6to4 lab: remove stale namespaces: %w", err)
	}
	if err := l.makeTopology(ctx); err != nil {
		return fmt.Errorf("6to4 lab topology: %w", err)
	}
	return l.startWeb(l.NS(SixToFourRoleCorp), SixToFourIntranetHost, ", through 6to4")
}

func (l *SixToFourLab) makeTopology(ctx context.Context) error {
	inet, da, corp := l.NS(SixToFourRoleInet), l.NS(SixToFourRoleServer), l.NS(SixToFourRoleCorp)
	names := []string{inet, da, corp}
	for i := 1; i <= l.Clients(); i++ {
		if l.Kind(i).behindNAT() {
			names = append(names, l.NATNS(i))
		}
		names = append(names, l.ClientNS(i))
	}
	for _, ns := range names {
		// addNetns turns duplicate address detection off before the
		// veths exist: da forwards the clients' packets to corp, which it
		// cannot solicit while its link-local address there is tentative
		// (see disableDAD).
		if err := l.addNetns(ctx, ns); err != nil {
			return err
		}
	}
	steps := []func() error{
		// The Internet.
		func() error { return SetSysctl(inet, "net.ipv4.ip_forward", "1") },
		// The server's host and the intranet behind it.
		func() error { return AddVeth(ctx, inet, vethToDA, da, vethToInet) },
		func() error { return AddAddr(ctx, inet, vethToDA, SixToFourInetIPv4+"/24") },
		func() error { return AddAddr(ctx, da, vethToInet, SixToFourServerIPv4+"/24") },
		func() error { return AddRoute(ctx, da, "default", SixToFourInetIPv4) },
		func() error { return SetSysctl(da, "net.ipv6.conf.all.forwarding", "1") },
		func() error { return AddVeth(ctx, da, vethToCorp, corp, vethToDA) },
		func() error { return AddAddr(ctx, da, vethToCorp, SixToFourIntranetRouter+"/64") },
		func() error { return AddAddr(ctx, corp, vethToDA, SixToFourIntranetHost+"/64") },
		func() error { return AddRoute(ctx, corp, "default", SixToFourIntranetRouter) },
	}
	var filtered, hotels []string
	for i := 1; i <= l.Clients(); i++ {
		cli, role := l.ClientNS(i), SixToFourClientRole(i)
		switch l.Kind(i) {
		case SixToFourPublic, SixToFourFiltered, SixToFourHotel:
			toCli, addr := "to-"+role, SixToFourPublicIPv4(i)
			steps = append(steps,
				func() error { return AddVeth(ctx, inet, toCli, cli, vethToInet) },
				func() error { return addPeer(ctx, inet, toCli, SixToFourClientGateway, addr) },
				func() error { return addPeer(ctx, cli, vethToInet, addr, SixToFourClientGateway) },
				func() error { return AddRoute(ctx, cli, "default", SixToFourClientGateway) },
			)
			if l.Kind(i).filtered() {
				filtered = append(filtered, role)
			}
			if l.Kind(i) == SixToFourHotel {
				hotels = append(hotels, role)
			}
		case SixToFourNAT, SixToFourPrivateNAT:
			nat, toNAT, outside := l.NATNS(i), "to-"+SixToFourNATRole(i), sixToFourNATOutsideIPv4(i)
			toCli, gw, addr, bits := "to-"+role, sixToFourNATInsideIPv4(i, 1), sixToFourNATInsideIPv4(i, 2), "/30"
			if l.Kind(i) == SixToFourPrivateNAT {
				gw, addr, bits = sixToFourPrivateIPv4(i, 1), sixToFourPrivateIPv4(i, 2), "/24"
			}
			steps = append(steps,
				func() error { return AddVeth(ctx, inet, toNAT, nat, vethToInet) },
				func() error { return addPeer(ctx, inet, toNAT, SixToFourInetIPv4, outside) },
				func() error { return addPeer(ctx, nat, vethToInet, outside, SixToFourInetIPv4) },
				func() error { return AddRoute(ctx, nat, "default", SixToFourInetIPv4) },
				func() error { return SetSysctl(nat, "net.ipv4.ip_forward", "1") },
				func() error { return l.loadRuleset(ctx, nat, TeredoNATRuleset(vethToInet, false)) },
				func() error { return AddVeth(ctx, nat, toCli, cli, vethToNAT) },
				func() error { return AddAddr(ctx, nat, toCli, gw+bits) },
				func() error { return AddAddr(ctx, cli, vethToNAT, addr+bits) },
				func() error { return AddRoute(ctx, cli, "default", gw) },
			)
		}
	}
	if len(filtered) > 0 {
		steps = append(steps, func() error { return l.loadRuleset(ctx, inet, SixToFourFilterRuleset(filtered, hotels...)) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	// Every link has its carrier and its link-local address before the
	// first packet: the lab is up when it can carry traffic.
	return l.waitLinksReady(ctx, linksReadyTimeout)
}

// SixToFourFilterRuleset is inet's nftables ruleset for the filtered
// clients (their roles, "cli3", ...): IPv4 protocol 41 forwarded to or
// from a client's link is dropped and counted in a counter named after the
// client. For the hotels among them (their roles, a subset of roles), UDP
// to and from port 3544 (Teredo) is dropped and counted too.
func SixToFourFilterRuleset(roles []string, hotels ...string) string {
	var counters, rules strings.Builder
	for _, r := range roles {
		what := "protocol 41"
		if slices.Contains(hotels, r) {
			what += " and UDP port 3544"
			fmt.Fprintf(&rules, "\t\tiifname \"to-%[1]s\" udp dport 3544 counter name \"%[1]s\" drop\n", r)
			fmt.Fprintf(&rules, "\t\toifname \"to-%[1]s\" udp sport 3544 counter name \"%[1]s\" drop\n", r)
		}
		fmt.Fprintf(&counters, "\tcounter %s {\n\t\tcomment \"%s dropped to and from %s\"\n\t}\n", r, what, r)
		fmt.Fprintf(&rules, "\t\tiifname \"to-%[1]s\" ip protocol 41 counter name \"%[1]s\" drop\n", r)
		fmt.Fprintf(&rules, "\t\toifname \"to-%[1]s\" ip protocol 41 counter name \"%[1]s\" drop\n", r)
	}
	return fmt.Sprintf(`table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
%[2]s	# A firewall on the way that lets TCP, UDP and ICMP through, but
	# not 6to4.
	chain forward {
		type filter hook forward priority filter; policy accept;
%[3]s	}
}
`, SixToFourFilterTable, counters.String(), rules.String())
}

// FilterDrops is how many protocol-41 packets (and for a hotel, UDP
// port-3544 ones) inet dropped to and from filtered or hotel client i.
func (l *SixToFourLab) FilterDrops(ctx context.Context, i int) (uint64, error) {
	if !l.Kind(i).filtered() {
		return 0, fmt.Errorf("6to4 lab: client %d is not filtered", i)
	}
	out, err := l.ExecContext(ctx, l.NS(SixToFourRoleInet), "nft", "list", "counter", "ip", SixToFourFilterTable, SixToFourClientRole(i))
	if err != nil {
		return 0, fmt.Errorf("6to4 lab: filter counter of client %d: %w: %s", i, err, strings.TrimSpace(string(out)))
	}
	n, ok := parseNFTCounterPackets(string(out))
	if !ok {
		return 0, fmt.Errorf("6to4 lab: filter counter of client %d: no packet count in %q", i, out)
	}
	return n, nil
}

// nftPacketsRE matches the packet count of `nft list counter`'s
// "packets 3 bytes 312".
var nftPacketsRE = regexp.MustCompile(`\bpackets (\d+) bytes \d+`)

func parseNFTCounterPackets(s string) (uint64, bool) {
	m := nftPacketsRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	return n, err == nil
}

// Clients is the number of client namespaces.
func (l *SixToFourLab) Clients() int { return len(l.opts.Clients) }

// Kind is client i's kind (1-based).
func (l *SixToFourLab) Kind(i int) SixToFourKind { return l.opts.Clients[i-1] }

// ClientNS is client i's namespace (1-based).
func (l *SixToFourLab) ClientNS(i int) string { return l.NS(SixToFourClientRole(i)) }

// NATNS is the namespace of the NAT client i is behind ("" for a client
// not behind a NAT).
func (l *SixToFourLab) NATNS(i int) string {
	if !l.Kind(i).behindNAT() {
		return ""
	}
	return l.NS(SixToFourNATRole(i))
}

// ClientIPv4 is client i's own IPv4 address, the one its 6to4 address
// embeds (for a client behind a NAT, an inside address).
func (l *SixToFourLab) ClientIPv4(i int) netip.Addr {
	switch l.Kind(i) {
	case SixToFourNAT:
		return netip.MustParseAddr(sixToFourNATInsideIPv4(i, 2))
	case SixToFourPrivateNAT:
		return netip.MustParseAddr(sixToFourPrivateIPv4(i, 2))
	}
	return netip.MustParseAddr(SixToFourPublicIPv4(i))
}

// ClientPublicIPv4 is the source address client i's packets reach the
// server with (for a client behind a NAT, the NAT's outside address).
func (l *SixToFourLab) ClientPublicIPv4(i int) netip.Addr {
	if l.Kind(i).behindNAT() {
		return netip.MustParseAddr(sixToFourNATOutsideIPv4(i))
	}
	return l.ClientIPv4(i)
}

// Client6to4 is the 6to4 address client i makes from its own IPv4
// address: 2002:WWXX:YYZZ::WWXX:YYZZ.
func (l *SixToFourLab) Client6to4(i int) netip.Addr { return sixtofour.Address(l.ClientIPv4(i)) }

// ServerIPv4 is the server's public IPv4 address.
func (l *SixToFourLab) ServerIPv4() netip.Addr { return netip.MustParseAddr(SixToFourServerIPv4) }

// Server6to4 is the server's 6to4 address, which answers ping.
func (l *SixToFourLab) Server6to4() netip.Addr { return sixtofour.Address(l.ServerIPv4()) }

// IntranetHost is the intranet host's address (web server on port 80).
func (l *SixToFourLab) IntranetHost() netip.Addr { return netip.MustParseAddr(SixToFourIntranetHost) }

// ServerSocket is the server's control socket (for `iphttps show ...
// --socket`).
func (l *SixToFourLab) ServerSocket() string { return l.SocketFile(IPHTTPSServerName) }

// ServerArgs is the command line StartServer runs (before its extra
// arguments): iphttps's server on SixToFourServerIPv4 with a self-signed
// certificate, serving the intranet, and its 6to4 relay there,
// documentation ranges allowed.
func (l *SixToFourLab) ServerArgs() []string {
	return []string{l.opts.Binary, "server",
		"--listen", net.JoinHostPort(SixToFourServerIPv4, "443"),
		"--self-signed", ServerName,
		"--prefix", LinkPrefix,
		"--route", SixToFourIntranetPrefix,
		"--6to4", SixToFourServerIPv4, "--6to4-lab",
		"--control-socket", l.ServerSocket(),
		"--log-level", "debug"}
}

// StartServer starts ServerArgs()+extra in da as IPHTTPSServerName and
// waits (up to 15 s) until its status shows the 6to4 relay on the
// server's 6to4 address.
func (l *SixToFourLab) StartServer(ctx context.Context, extra ...string) error {
	if l.opts.Binary == "" {
		return errors.New("6to4 lab: no iphttps binary configured (SixToFourOptions.Binary)")
	}
	if err := l.Start(IPHTTPSServerName, l.NS(SixToFourRoleServer), append(l.ServerArgs(), extra...)...); err != nil {
		return err
	}
	want := l.Server6to4().String()
	return l.poll(ctx, IPHTTPSServerName, 15*time.Second, func() (bool, string) {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err := control.Fetch(fctx, l.ServerSocket())
		switch {
		case err != nil:
			return false, err.Error()
		case st.SixToFourRelay == nil:
			return false, "no 6to4 relay in the server's status"
		case st.SixToFourRelay.Address != want:
			return false, fmt.Sprintf("6to4 relay on %s, want %s", st.SixToFourRelay.Address, want)
		}
		return true, ""
	})
}
