package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Teredo lab: a topology of its own (not an extension of Up's), for
// Teredo interop between Miredo (Debian's miredo and miredo-server) and
// iphttps's Teredo client and server. Names are prefix+role, the prefix
// chosen by the caller:
//
//	tcli1 ── tnat1 ──┐                                  ┌── tsrv ── corp
//	 10.1.0.2        │ 198.51.100.11                    │ 203.0.113.10+.11/24     2001:db8:c0::10
//	tcli2 ── tnat2 ──┼───────────── inet ───────────────┤ (Teredo server;         (intranet host,
//	 10.2.0.2        │ 198.51.100.12   IPv4+IPv6 router │  2001:db8:c0::1)         web server :80)
//	  ...            │                                  └── trel ── v6host
//	                                                      203.0.113.20            2001:db8:f::10
//	                                                      (Teredo relay,          (native IPv6 host)
//	                                                       2001:db8:f::1)
//
// The roles:
//
//   - inet is the Internet: an IPv4 and IPv6 router. Each NAT and the relay
//     hang off it on point-to-point links (inet is 198.51.100.1 or
//     203.0.113.1 on each); the Teredo server sits on 203.0.113.0/24
//     (gateway 203.0.113.1). For IPv6, inet reaches tsrv on 2001:db8:e1::/64
//     and trel on 2001:db8:e2::/64, and routes 2001:db8:f::/64 and the
//     Teredo prefix 2001::/32 to trel: a relay announces the Teredo prefix
//     to the IPv6 Internet.
//   - tsrv holds the two consecutive public addresses a Teredo server needs
//     (TeredoServerIPv4 and TeredoServerIPv4Secondary, on one interface), a
//     native IPv6 default route to inet (a Teredo server sends the clients'
//     echo tests out natively) and the intranet 2001:db8:c0::/64 towards
//     corp, with IPv4 and IPv6 forwarding on: the DirectAccess server's
//     place, where `iphttps server --teredo 203.0.113.10` runs (it is relay
//     for the intranet too: it routes 2001::/32 to its own device).
//   - corp is the intranet host 2001:db8:c0::10 (default route via tsrv),
//     with the lab's little web server on port 80; it answers ping.
//   - tnatN is a home router: inside, one veth per client (10.i.0.1/24 for
//     client i); outside, TeredoNATIPv4(N). nftables masquerades on the
//     outside and drops inbound packets of new connections there (input
//     and forward): plain masquerade breaks Teredo between two NATs (see
//     docs/teredo.md). Symmetric makes the mapping
//     depend on the destination (masquerade fully-random). The NATs do no
//     hairpinning.
//   - tcliN is client N, 10.N.0.2/24 behind its NAT (with SameNAT every
//     client is behind tnat1). Private addresses never leave the NATs.
//   - trel runs the Teredo relay (Miredo, RelayType cone, on
//     TeredoRelayIPv4:TeredoRelayPort) and is the only way to v6host, a
//     native IPv6 host whose default route points at trel: a client's
//     packets to v6host go through the relay, v6host's answers to a Teredo
//     address come back through it. The relay has a namespace of its own
//     rather than sharing tsrv (which Miredo allows, §10.3) so that the
//     server's place stays free for iphttps's server, which is relay for
//     the intranet itself and routes 2001::/32 to its own device.
//
// Everything stays inside the namespaces; the addresses are documentation
// ranges and Teredo addresses made from them.
const (
	// TeredoDefaultPrefix is the namespace prefix when TeredoOptions gives
	// none.
	TeredoDefaultPrefix = "teredo-"

	// TeredoServerIPv4 is the Teredo server's primary address (the one in
	// every client's Teredo address: 2001:0:cb00:710a::/64).
	TeredoServerIPv4 = "203.0.113.10"
	// TeredoServerIPv4Secondary is the server's second, consecutive address.
	TeredoServerIPv4Secondary = "203.0.113.11"
	// TeredoInetIPv4 is inet's address on the servers' side (tsrv's and
	// trel's gateway).
	TeredoInetIPv4 = "203.0.113.1"
	// TeredoNATGateway is inet's address on every NAT's point-to-point link.
	TeredoNATGateway = "198.51.100.1"
	// TeredoRelayIPv4 is the Teredo relay's public address.
	TeredoRelayIPv4 = "203.0.113.20"
	// TeredoRelayPort is the relay's UDP port (BindPort): not 3544, so the
	// same configuration also works next to a Teredo server on one address.
	TeredoRelayPort = 3545
	// TeredoPort is the Teredo server's UDP port.
	TeredoPort = 3544

	// TeredoPrefix is the Teredo service prefix.
	TeredoPrefix = "2001::/32"
	// TeredoDevice is the interface name Miredo is configured with in
	// every namespace (the client hook runs inside the namespace, so the
	// name can repeat).
	TeredoDevice = "teredo"

	// TeredoIntranetPrefix, TeredoIntranetRouter and TeredoIntranetHost are
	// the intranet behind tsrv (the same addresses as the IP-HTTPS lab's).
	TeredoIntranetPrefix = IntranetPrefix
	TeredoIntranetRouter = IntranetRouter
	TeredoIntranetHost   = IntranetHost

	// V6HostPrefix, V6HostAddr: the native IPv6 network behind the relay.
	V6HostPrefix = "2001:db8:f::/64"
	V6HostAddr   = "2001:db8:f::10"
	// TeredoRelayV6 is trel's address on v6host's network (its gateway).
	TeredoRelayV6 = "2001:db8:f::1"

	// inet's IPv6 links: to tsrv (inet ::1, tsrv ::10), to trel (inet ::1,
	// trel ::20).
	teredoV6Tsrv     = "2001:db8:e1::"
	teredoV6Trel     = "2001:db8:e2::"
	maxTeredoClients = 20
	teredoNFTable    = "teredo_lab_nat"
	vethToNAT        = "to-nat"
	vethToTsrv       = "to-tsrv"
	vethToTrel       = "to-trel"
	vethToV6host     = "to-v6host"
	miredoUser       = "miredo"
	miredoServerUser = "miredo-server"
	miredoPrivproc   = "/usr/libexec/miredo/miredo-privproc"
	miredoClientHook = "/etc/miredo/client-hook"
)

// Teredo lab roles (namespace prefix+role; NATs and clients are "tnat1",
// "tcli1", ...).
const (
	TeredoRoleInet   = "inet"
	TeredoRoleServer = "tsrv"
	TeredoRoleCorp   = "corp"
	TeredoRoleRelay  = "trel"
	TeredoRoleV6Host = "v6host"
	// TeredoRoleAttacker is the hostile host AddAttacker adds.
	TeredoRoleAttacker = "tatk"
)

// Names of the Teredo lab's processes (their logs are LogFile(name)).
const (
	MiredoServerName  = "miredo-server"
	MiredoRelayName   = "miredo-relay"
	IPHTTPSServerName = "iphttps-server"
)

// MiredoClientName is the process name of the Miredo client in client i.
func MiredoClientName(i int) string { return "miredo-" + TeredoClientRole(i) }

// IPHTTPSClientName is the process name of iphttps's client in client i.
func IPHTTPSClientName(i int) string { return "iphttps-" + TeredoClientRole(i) }

// TeredoClientRole is the role (namespace suffix) of client i: "tcli1", ...
func TeredoClientRole(i int) string { return "tcli" + strconv.Itoa(i) }

// TeredoNATRole is the role of NAT n: "tnat1", ...
func TeredoNATRole(n int) string { return "tnat" + strconv.Itoa(n) }

// TeredoNATIPv4 is NAT n's outside (public) address: 198.51.100.(10+n).
func TeredoNATIPv4(n int) string { return fmt.Sprintf("198.51.100.%d", 10+n) }

// TeredoClientIPv4 is client i's private address, 10.i.0.2 (its NAT is
// 10.i.0.1 on the link to it).
func TeredoClientIPv4(i int) string { return fmt.Sprintf("10.%d.0.2", i) }

// teredoNATInsideIPv4 is the NAT's address on the link to client i.
func teredoNATInsideIPv4(i int) string { return fmt.Sprintf("10.%d.0.1", i) }

// teredoRoleRE matches the roles of the Teredo lab; stale clean-up only
// touches prefix+role names.
var teredoRoleRE = regexp.MustCompile(`^(inet|corp|tsrv|trel|v6host|tatk|tnat[0-9]+|tcli[0-9]+)$`)

// IsTeredoLabNamespace reports whether name is a Teredo lab namespace of
// prefix.
func IsTeredoLabNamespace(prefix, name string) bool {
	if prefix == "" || !strings.HasPrefix(name, prefix) {
		return false
	}
	return teredoRoleRE.MatchString(strings.TrimPrefix(name, prefix))
}

// TeredoOptions configure TeredoUp.
type TeredoOptions struct {
	// Prefix starts every namespace name (TeredoDefaultPrefix if empty).
	Prefix string
	// Clients is the number of client namespaces (default 1, at most 20).
	Clients int
	// SameNAT puts every client behind one NAT (tnat1) instead of one NAT
	// each.
	SameNAT bool
	// Symmetric makes the NATs symmetric: a new mapping (a random port) for
	// every destination, instead of the endpoint-independent, port
	// preserving mapping of plain masquerade.
	Symmetric bool
	// Dir holds the configuration files, PID files and logs. Empty: a new
	// temporary directory, removed by Down; a given one is kept.
	Dir string
	// Binary is the iphttps executable StartIPHTTPSServer and
	// StartIPHTTPSClient run.
	Binary string
	// Log receives the lab's progress messages. Nil discards them.
	Log io.Writer
}

// TeredoLab is a running Teredo topology. Its methods are safe for
// concurrent use.
type TeredoLab struct {
	*procLab // namespaces, processes, web server, Down
	opts     TeredoOptions
}

// TeredoTools are the programs the Teredo lab runs, with their Debian
// packages (scripts/install-miredo installs Miredo without starting it).
func TeredoTools() []Tool {
	return []Tool{
		{Name: "ip", Package: "iproute2"},
		{Name: "ss", Package: "iproute2"},
		{Name: "nft", Package: "nftables"},
		{Name: "ping", Package: "iputils-ping"},
	}
}

// MiredoTools are Miredo's programs and the files it runs from their
// installed paths.
func MiredoTools() []Tool {
	return []Tool{
		{Name: "miredo", Package: "miredo"},
		{Name: "miredo-server", Package: "miredo-server"},
		{Name: miredoPrivproc, Package: "miredo"},
		{Name: miredoClientHook, Package: "miredo"},
	}
}

// CheckTeredoTools reports missing tools of the Teredo lab, Miredo
// included, and its users.
func CheckTeredoTools() error {
	if err := checkTools(append(TeredoTools(), MiredoTools()...)); err != nil {
		return fmt.Errorf("%w (Miredo: run scripts/install-miredo, which keeps its daemon from starting on the host)", err)
	}
	for _, u := range []string{miredoUser, miredoServerUser} {
		if _, err := user.Lookup(u); err != nil {
			return fmt.Errorf("user %s is missing (the miredo packages create it: run scripts/install-miredo): %w", u, err)
		}
	}
	return nil
}

// TeredoUp builds the Teredo topology: namespaces, links, addresses,
// routes, sysctls, the NATs' nftables rulesets and the intranet web
// server. It starts no Teredo software (see StartMiredoServer,
// StartMiredoRelay, StartMiredoClient, StartIPHTTPSServer,
// StartIPHTTPSClient). Namespaces left over from an earlier lab with the
// same prefix are removed first; on error everything created is removed.
func TeredoUp(ctx context.Context, o TeredoOptions) (*TeredoLab, error) {
	if o.Prefix == "" {
		o.Prefix = TeredoDefaultPrefix
	}
	if err := validPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.Clients == 0 {
		o.Clients = 1
	}
	if o.Clients < 1 || o.Clients > maxTeredoClients {
		return nil, fmt.Errorf("teredo lab: %d clients: want 1 to %d", o.Clients, maxTeredoClients)
	}
	if err := CheckRoot(); err != nil {
		return nil, err
	}
	if err := checkTools(TeredoTools()); err != nil {
		return nil, fmt.Errorf("teredo lab: %w", err)
	}
	pl, err := newProcLab("teredo lab", o.Prefix, o.Dir, "iphttps-teredo-lab-", o.Log)
	if err != nil {
		return nil, err
	}
	t := &TeredoLab{procLab: pl, opts: o}
	start := time.Now()
	if err := t.build(ctx); err != nil {
		if derr := t.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean-up after failed start: %w", derr))
		}
		return nil, err
	}
	t.log.Info("teredo lab is up", "prefix", o.Prefix, "dir", t.dir, "clients", o.Clients,
		"same_nat", o.SameNAT, "symmetric", o.Symmetric, "after", time.Since(start).Round(time.Millisecond))
	return t, nil
}

// RemoveStaleTeredo deletes every namespace named like a Teredo lab
// namespace of prefix (killing its processes first).
func RemoveStaleTeredo(ctx context.Context, prefix string) error {
	return removeStaleNamespaces(ctx, prefix, IsTeredoLabNamespace)
}

func (t *TeredoLab) build(ctx context.Context) error {
	if err := RemoveStaleTeredo(ctx, t.opts.Prefix); err != nil {
		return fmt.Errorf("teredo lab: remove stale namespaces: %w", err)
	}
	if err := t.makeTopology(ctx); err != nil {
		return fmt.Errorf("teredo lab topology: %w", err)
	}
	return t.startWeb(t.NS(TeredoRoleCorp), TeredoIntranetHost, "")
}

// ClientNS is client i's namespace (1-based).
func (t *TeredoLab) ClientNS(i int) string { return t.NS(TeredoClientRole(i)) }

// NATOf is the number of the NAT client i is behind.
func (t *TeredoLab) NATOf(i int) int {
	if t.opts.SameNAT {
		return 1
	}
	return i
}

// NATNS is the namespace of the NAT client i is behind.
func (t *TeredoLab) NATNS(i int) string { return t.NS(TeredoNATRole(t.NATOf(i))) }

// ClientPublicIPv4 is the address client i's traffic leaves its NAT with:
// the address its Teredo address must embed.
func (t *TeredoLab) ClientPublicIPv4(i int) netip.Addr {
	return netip.MustParseAddr(TeredoNATIPv4(t.NATOf(i)))
}

// NATs is the number of NAT namespaces.
func (t *TeredoLab) NATs() int {
	if t.opts.SameNAT {
		return 1
	}
	return t.opts.Clients
}

// Clients is the number of client namespaces.
func (t *TeredoLab) Clients() int { return t.opts.Clients }

// Symmetric reports whether the NATs are symmetric.
func (t *TeredoLab) Symmetric() bool { return t.opts.Symmetric }

// ConfFile is the configuration file of process name.
func (t *TeredoLab) ConfFile(name string) string { return filepath.Join(t.dir, name+".conf") }

// PIDFile is the PID file of process name (Miredo's -p).
func (t *TeredoLab) PIDFile(name string) string { return filepath.Join(t.dir, name+".pid") }

// addPeer adds the point-to-point address local (peer remote) to dev in
// ns: the route to the peer comes with it.
func addPeer(ctx context.Context, ns, dev, local, remote string) error {
	if err := ip(ctx, "-n", ns, "addr", "add", local+"/32", "peer", remote+"/32", "dev", dev); err != nil {
		return fmt.Errorf("namespace %s: address %s peer %s on %s: %w", ns, local, remote, dev, err)
	}
	return nil
}

func (t *TeredoLab) makeTopology(ctx context.Context) error {
	inet, tsrv, corp := t.NS(TeredoRoleInet), t.NS(TeredoRoleServer), t.NS(TeredoRoleCorp)
	trel, v6host := t.NS(TeredoRoleRelay), t.NS(TeredoRoleV6Host)
	names := []string{inet, tsrv, corp, trel, v6host}
	for n := 1; n <= t.NATs(); n++ {
		names = append(names, t.NS(TeredoNATRole(n)))
	}
	for i := 1; i <= t.opts.Clients; i++ {
		names = append(names, t.ClientNS(i))
	}
	for _, ns := range names {
		if err := t.addNetns(ctx, ns); err != nil {
			return err
		}
	}
	steps := []func() error{
		// The Internet router.
		func() error { return SetSysctl(inet, "net.ipv4.ip_forward", "1") },
		func() error { return SetSysctl(inet, "net.ipv6.conf.all.forwarding", "1") },
		// The Teredo server's host: two consecutive addresses on one
		// interface, native IPv6, the intranet.
		func() error { return AddVeth(ctx, inet, vethToTsrv, tsrv, vethToInet) },
		func() error { return AddAddr(ctx, inet, vethToTsrv, TeredoInetIPv4+"/24") },
		func() error { return AddAddr(ctx, tsrv, vethToInet, TeredoServerIPv4+"/24") },
		func() error { return AddAddr(ctx, tsrv, vethToInet, TeredoServerIPv4Secondary+"/24") },
		func() error { return AddRoute(ctx, tsrv, "default", TeredoInetIPv4) },
		func() error { return AddAddr(ctx, inet, vethToTsrv, teredoV6Tsrv+"1/64") },
		func() error { return AddAddr(ctx, tsrv, vethToInet, teredoV6Tsrv+"10/64") },
		func() error { return AddRoute(ctx, tsrv, "default", teredoV6Tsrv+"1") },
		func() error { return SetSysctl(tsrv, "net.ipv4.ip_forward", "1") },
		func() error { return SetSysctl(tsrv, "net.ipv6.conf.all.forwarding", "1") },
		func() error { return AddVeth(ctx, tsrv, vethToCorp, corp, vethToTsrv) },
		func() error { return AddAddr(ctx, tsrv, vethToCorp, TeredoIntranetRouter+"/64") },
		func() error { return AddAddr(ctx, corp, vethToTsrv, TeredoIntranetHost+"/64") },
		func() error { return AddRoute(ctx, corp, "default", TeredoIntranetRouter) },
		// The relay and the native IPv6 host behind it.
		func() error { return AddVeth(ctx, inet, vethToTrel, trel, vethToInet) },
		func() error { return addPeer(ctx, inet, vethToTrel, TeredoInetIPv4, TeredoRelayIPv4) },
		func() error { return addPeer(ctx, trel, vethToInet, TeredoRelayIPv4, TeredoInetIPv4) },
		func() error { return AddRoute(ctx, trel, "default", TeredoInetIPv4) },
		func() error { return AddAddr(ctx, inet, vethToTrel, teredoV6Trel+"1/64") },
		func() error { return AddAddr(ctx, trel, vethToInet, teredoV6Trel+"20/64") },
		func() error { return AddRoute(ctx, trel, "default", teredoV6Trel+"1") },
		func() error { return SetSysctl(trel, "net.ipv6.conf.all.forwarding", "1") },
		func() error { return AddVeth(ctx, trel, vethToV6host, v6host, vethToTrel) },
		func() error { return AddAddr(ctx, trel, vethToV6host, TeredoRelayV6+"/64") },
		func() error { return AddAddr(ctx, v6host, vethToTrel, V6HostAddr+"/64") },
		func() error { return AddRoute(ctx, v6host, "default", TeredoRelayV6) },
		func() error { return AddRoute(ctx, inet, V6HostPrefix, teredoV6Trel+"20") },
		func() error { return AddRoute(ctx, inet, TeredoPrefix, teredoV6Trel+"20") },
	}
	for n := 1; n <= t.NATs(); n++ {
		nat, toNAT := t.NS(TeredoNATRole(n)), "to-"+TeredoNATRole(n)
		steps = append(steps,
			func() error { return AddVeth(ctx, inet, toNAT, nat, vethToInet) },
			func() error { return addPeer(ctx, inet, toNAT, TeredoNATGateway, TeredoNATIPv4(n)) },
			func() error { return addPeer(ctx, nat, vethToInet, TeredoNATIPv4(n), TeredoNATGateway) },
			func() error { return AddRoute(ctx, nat, "default", TeredoNATGateway) },
			func() error { return SetSysctl(nat, "net.ipv4.ip_forward", "1") },
			func() error { return t.loadNAT(ctx, nat) },
		)
	}
	for i := 1; i <= t.opts.Clients; i++ {
		nat, cli, toCli := t.NATNS(i), t.ClientNS(i), "to-"+TeredoClientRole(i)
		steps = append(steps,
			func() error { return AddVeth(ctx, nat, toCli, cli, vethToNAT) },
			func() error { return AddAddr(ctx, nat, toCli, teredoNATInsideIPv4(i)+"/24") },
			func() error { return AddAddr(ctx, cli, vethToNAT, TeredoClientIPv4(i)+"/24") },
			func() error { return AddRoute(ctx, cli, "default", teredoNATInsideIPv4(i)) },
		)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return t.waitLinksReady(ctx, linksReadyTimeout)
}

// TeredoNATRuleset is the nftables ruleset of a lab NAT whose outside
// interface is outside: masquerade (fully-random when symmetric) and a
// home router's refusal of inbound new connections.
func TeredoNATRuleset(outside string, symmetric bool) string {
	masq := "masquerade"
	if symmetric {
		// A random port for every new conntrack entry: a new mapping for
		// every destination (endpoint-dependent mapping, "symmetric").
		masq = "masquerade fully-random"
	}
	return fmt.Sprintf(`table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "%[2]s" %[3]s comment "iphttps teredo lab: the NAT"
	}
	# A home router: nothing from outside starts a connection. Plain
	# masquerade alone breaks Teredo between two NATs: a peer's early direct
	# bubble creates an inbound entry that the reply then clashes with.
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "%[2]s" ct state new counter drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "%[2]s" ct state new counter drop
	}
}
`, teredoNFTable, outside, masq)
}

// loadNAT loads the NAT ruleset into ns (kept as <ns>.nft in the lab
// directory, to repeat by hand).
func (t *TeredoLab) loadNAT(ctx context.Context, ns string) error {
	return t.loadRuleset(ctx, ns, TeredoNATRuleset(vethToInet, t.opts.Symmetric))
}

// MiredoServerConf is miredo-server.conf for the lab's server.
func MiredoServerConf() string {
	return "# iphttps teredo lab: Miredo's Teredo server; it also answers on the next address.\n" +
		"ServerBindAddress " + TeredoServerIPv4 + "\n"
}

// MiredoClientConf is miredo.conf for a lab client.
func MiredoClientConf() string {
	return "# iphttps teredo lab: a Miredo Teredo client.\n" +
		"RelayType client\n" +
		"ServerAddress " + TeredoServerIPv4 + "\n" +
		"InterfaceName " + TeredoDevice + "\n"
}

// MiredoRelayConf is miredo.conf for the lab's relay (cone relay: it
// routes 2001::/32 to its device itself).
func MiredoRelayConf() string {
	return "# iphttps teredo lab: a Miredo Teredo relay.\n" +
		"RelayType cone\n" +
		"InterfaceName " + TeredoDevice + "\n" +
		"BindAddress " + TeredoRelayIPv4 + "\n" +
		"BindPort " + strconv.Itoa(TeredoRelayPort) + "\n"
}

// startMiredo writes conf and starts argv, checking Miredo is installed.
func (t *TeredoLab) startMiredo(name, ns, conf string, argv ...string) error {
	if err := CheckTeredoTools(); err != nil {
		return fmt.Errorf("teredo lab: %w", err)
	}
	if err := os.WriteFile(t.ConfFile(name), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("teredo lab: %s: %w", name, err)
	}
	_ = os.Remove(t.PIDFile(name))
	return t.Start(name, ns, argv...)
}

// MiredoServerArgs is the command line StartMiredoServer runs.
func (t *TeredoLab) MiredoServerArgs() []string {
	return []string{"/usr/sbin/miredo-server", "-f", "-c", t.ConfFile(MiredoServerName),
		"-p", t.PIDFile(MiredoServerName), "-u", miredoServerUser}
}

// MiredoClientArgs is the command line StartMiredoClient(i) runs.
func (t *TeredoLab) MiredoClientArgs(i int) []string {
	name := MiredoClientName(i)
	return []string{"/usr/sbin/miredo", "-f", "-c", t.ConfFile(name), "-p", t.PIDFile(name), "-u", miredoUser}
}

// MiredoRelayArgs is the command line StartMiredoRelay runs.
func (t *TeredoLab) MiredoRelayArgs() []string {
	return []string{"/usr/sbin/miredo", "-f", "-c", t.ConfFile(MiredoRelayName),
		"-p", t.PIDFile(MiredoRelayName), "-u", miredoUser}
}

// StartMiredoServer starts miredo-server in tsrv on TeredoServerIPv4 (and
// the next address) and waits (up to 5 s) until it listens on UDP 3544 of
// both.
func (t *TeredoLab) StartMiredoServer(ctx context.Context) error {
	ns := t.NS(TeredoRoleServer)
	if err := t.startMiredo(MiredoServerName, ns, MiredoServerConf(), t.MiredoServerArgs()...); err != nil {
		return err
	}
	return t.waitUDP(ctx, MiredoServerName, ns, []string{
		net.JoinHostPort(TeredoServerIPv4, strconv.Itoa(TeredoPort)),
		net.JoinHostPort(TeredoServerIPv4Secondary, strconv.Itoa(TeredoPort)),
	})
}

// StartMiredoRelay starts the Miredo relay in trel and waits (up to 5 s)
// until it listens on TeredoRelayIPv4:TeredoRelayPort and routes the
// Teredo prefix to its device.
func (t *TeredoLab) StartMiredoRelay(ctx context.Context) error {
	ns := t.NS(TeredoRoleRelay)
	if err := t.startMiredo(MiredoRelayName, ns, MiredoRelayConf(), t.MiredoRelayArgs()...); err != nil {
		return err
	}
	if err := t.waitUDP(ctx, MiredoRelayName, ns, []string{net.JoinHostPort(TeredoRelayIPv4, strconv.Itoa(TeredoRelayPort))}); err != nil {
		return err
	}
	return t.poll(ctx, MiredoRelayName, 5*time.Second, func() (bool, string) {
		out, err := t.ExecContext(ctx, ns, "ip", "-6", "route", "show", TeredoPrefix, "dev", TeredoDevice)
		s := strings.TrimSpace(string(out))
		return err == nil && strings.HasPrefix(s, "2001::/32"), "ip -6 route show " + TeredoPrefix + ": " + s
	})
}

// StartMiredoClient starts a Miredo client in client i's namespace. It
// does not wait for qualification (see WaitMiredoQualified).
func (t *TeredoLab) StartMiredoClient(i int) error {
	if i < 1 || i > t.opts.Clients {
		return fmt.Errorf("teredo lab: no client %d", i)
	}
	return t.startMiredo(MiredoClientName(i), t.ClientNS(i), MiredoClientConf(), t.MiredoClientArgs(i)...)
}

// IPHTTPSServerArgs is the command line StartIPHTTPSServer runs (before
// its extra arguments): iphttps's server with its Teredo server and relay
// on TeredoServerIPv4 and the next address, documentation ranges allowed.
func (t *TeredoLab) IPHTTPSServerArgs() []string {
	return []string{t.opts.Binary, "server",
		"--teredo", TeredoServerIPv4, "--teredo-lab",
		"--control-socket", t.SocketFile(IPHTTPSServerName),
		"--log-level", "debug"}
}

// IPHTTPSClientArgs is the command line StartIPHTTPSClient(i) runs
// (before its extra arguments).
func (t *TeredoLab) IPHTTPSClientArgs(i int) []string {
	return []string{t.opts.Binary, "client",
		"--teredo-server", TeredoServerIPv4,
		"--control-socket", t.SocketFile(IPHTTPSClientName(i)),
		"--log-level", "debug"}
}

// StartIPHTTPSServer starts IPHTTPSServerArgs()+extra in tsrv. It does not
// wait for anything.
func (t *TeredoLab) StartIPHTTPSServer(extra ...string) error {
	if t.opts.Binary == "" {
		return errors.New("teredo lab: no iphttps binary configured (TeredoOptions.Binary)")
	}
	return t.Start(IPHTTPSServerName, t.NS(TeredoRoleServer), append(t.IPHTTPSServerArgs(), extra...)...)
}

// StartIPHTTPSClient starts IPHTTPSClientArgs(i)+extra in client i's
// namespace. It does not wait for anything.
func (t *TeredoLab) StartIPHTTPSClient(i int, extra ...string) error {
	if t.opts.Binary == "" {
		return errors.New("teredo lab: no iphttps binary configured (TeredoOptions.Binary)")
	}
	if i < 1 || i > t.opts.Clients {
		return fmt.Errorf("teredo lab: no client %d", i)
	}
	return t.Start(IPHTTPSClientName(i), t.ClientNS(i), append(t.IPHTTPSClientArgs(i), extra...)...)
}

// The attacker of the hostile tests (AddAttacker): a host on the Internet
// with no NAT in front of it.
const (
	// TeredoAttackerIPv4 is the attacker's address, on a point-to-point
	// link to inet (peer TeredoNATGateway).
	TeredoAttackerIPv4 = "198.51.100.66"
	// TeredoAttackerNet is routed to the attacker by inet and local to it
	// as a whole (an AnyIP route): it may bind, send from and receive at
	// any address in it, e.g. to play another Teredo server.
	TeredoAttackerNet = "192.0.2.0/24"
	// TeredoAttackerPrivateNet is a private network inet also routes to
	// the attacker: a source a Teredo server must refuse as not global
	// reaches the server from there.
	TeredoAttackerPrivateNet = "10.66.0.0/24"
)

// AddAttacker adds the attacker's namespace (prefix+TeredoRoleAttacker),
// attached to inet: TeredoAttackerIPv4 with a default route to inet,
// TeredoAttackerNet local to it and, like TeredoAttackerPrivateNet, routed
// to it by inet. Neither inet nor the attacker validates source addresses
// (rp_filter 0): a raw socket there reaches the Teredo server with any
// source. It returns the namespace; Down removes it.
func (t *TeredoLab) AddAttacker(ctx context.Context) (string, error) {
	inet, atk := t.NS(TeredoRoleInet), t.NS(TeredoRoleAttacker)
	toAtk := "to-" + TeredoRoleAttacker
	if err := t.addNetns(ctx, atk); err != nil {
		return "", fmt.Errorf("teredo lab: attacker: %w", err)
	}
	steps := []func() error{
		func() error { return AddVeth(ctx, inet, toAtk, atk, vethToInet) },
		func() error { return addPeer(ctx, inet, toAtk, TeredoNATGateway, TeredoAttackerIPv4) },
		func() error { return addPeer(ctx, atk, vethToInet, TeredoAttackerIPv4, TeredoNATGateway) },
		func() error { return AddRoute(ctx, atk, "default", TeredoNATGateway) },
		func() error { return AddRoute(ctx, inet, TeredoAttackerNet, TeredoAttackerIPv4) },
		func() error { return AddRoute(ctx, inet, TeredoAttackerPrivateNet, TeredoAttackerIPv4) },
		func() error {
			return ip(ctx, "-n", atk, "route", "add", "local", TeredoAttackerNet, "dev", "lo")
		},
	}
	for _, end := range [][2]string{{inet, toAtk}, {atk, vethToInet}} {
		for _, dev := range []string{"all", "default", end[1]} {
			steps = append(steps, func() error { return SetSysctl(end[0], "net.ipv4.conf."+dev+".rp_filter", "0") })
		}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return "", fmt.Errorf("teredo lab: attacker: %w", err)
		}
	}
	t.log.Info("attacker added", "namespace", atk, "address", TeredoAttackerIPv4,
		"routed", []string{TeredoAttackerNet, TeredoAttackerPrivateNet})
	return atk, nil
}

// waitUDP waits until every one of addrs (ip:port) has a UDP socket bound
// in ns.
func (t *TeredoLab) waitUDP(ctx context.Context, name, ns string, addrs []string) error {
	return t.poll(ctx, name, 5*time.Second, func() (bool, string) {
		socks, err := UDPSockets(ctx, ns)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range addrs {
			want := netip.MustParseAddrPort(a)
			if !slices.ContainsFunc(socks, func(s UDPSocket) bool { return s.Local == want }) {
				return false, fmt.Sprintf("nothing bound on %s", a)
			}
		}
		return true, ""
	})
}

// UDPSocket is one UDP socket seen by ss(8).
type UDPSocket struct {
	Local   netip.AddrPort
	Process string // the first process holding it, "" if unknown
}

// UDPSockets lists the IPv4 UDP sockets of namespace ns (`ss -4uanpH`).
func UDPSockets(ctx context.Context, ns string) ([]UDPSocket, error) {
	out, err := execIn(ctx, ns, "ss", "-4uanpH")
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return parseSSUDP(string(out)), nil
}

// ssProcRE picks the first process name of ss -p's users:(("name",...)).
var ssProcRE = regexp.MustCompile(`users:\(\("([^"]+)"`)

// parseSSUDP parses `ss -4uanpH` lines: "UNCONN 0 0 0.0.0.0:3544 0.0.0.0:*
// users:((...))" (a first State column is there for UDP).
func parseSSUDP(s string) []UDPSocket {
	var socks []UDPSocket
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		local := f[3]
		if i := strings.LastIndexByte(local, '%'); i >= 0 {
			// "0.0.0.0%dev:port": a socket bound to a device.
			if j := strings.LastIndexByte(local, ':'); j > i {
				local = local[:i] + local[j:]
			}
		}
		ap, err := netip.ParseAddrPort(local)
		if err != nil {
			continue
		}
		var sock = UDPSocket{Local: ap}
		if m := ssProcRE.FindStringSubmatch(line); m != nil {
			sock.Process = m[1]
		}
		socks = append(socks, sock)
	}
	return socks
}

// MiredoClientPort is the local UDP port of client i's Miredo (the port
// its NAT maps).
func (t *TeredoLab) MiredoClientPort(ctx context.Context, i int) (uint16, error) {
	socks, err := UDPSockets(ctx, t.ClientNS(i))
	if err != nil {
		return 0, err
	}
	var ports []uint16
	for _, s := range socks {
		if s.Process == "miredo" {
			ports = append(ports, s.Local.Port())
		}
	}
	if len(ports) != 1 {
		return 0, fmt.Errorf("teredo lab: %s: want one UDP socket of miredo, found %v (all: %v)", t.ClientNS(i), ports, socks)
	}
	return ports[0], nil
}

// TeredoAddr returns the global Teredo address (in 2001::/32) on dev in
// ns, read with `ip -6 addr show dev DEV`.
func TeredoAddr(ctx context.Context, ns, dev string) (netip.Addr, error) {
	out, err := execIn(ctx, ns, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "global")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	if a, ok := parseTeredoAddrShow(string(out)); ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no Teredo address on %s in %s: %q", dev, ns, strings.TrimSpace(string(out)))
}

// parseTeredoAddrShow finds the first address in 2001::/32 in `ip -6 -o
// addr show` output ("5: teredo    inet6 2001:0:.../32 scope global ...").
func parseTeredoAddrShow(s string) (netip.Addr, bool) {
	pfx := netip.MustParsePrefix(TeredoPrefix)
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		for k := 0; k+1 < len(f); k++ {
			if f[k] != "inet6" {
				continue
			}
			p, err := netip.ParsePrefix(f[k+1])
			if err == nil && pfx.Contains(p.Addr()) {
				return p.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}

// miredoAddrRE matches the address in Miredo's "Teredo pseudo-tunnel
// started" line: " (address: 2001:0:cb00:710a:..., MTU: 1280)".
var miredoAddrRE = regexp.MustCompile(`\(address: ([0-9a-fA-F:]+), MTU: \d+\)`)

// MiredoLogAddrs returns the Teredo addresses Miredo announced in the log
// of process name, in order.
func (t *TeredoLab) MiredoLogAddrs(name string) []netip.Addr {
	b, err := os.ReadFile(t.LogFile(name))
	if err != nil {
		return nil
	}
	return parseMiredoLogAddrs(string(b))
}

func parseMiredoLogAddrs(s string) []netip.Addr {
	var addrs []netip.Addr
	for _, m := range miredoAddrRE.FindAllStringSubmatch(s, -1) {
		if a, err := netip.ParseAddr(m[1]); err == nil {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// WaitMiredoQualified waits (up to timeout) until client i's Miredo has
// qualified: its client hook has put a Teredo address on the teredo device,
// the address Miredo logged as its new Teredo address. It returns that
// address. It fails early if Miredo exits.
func (t *TeredoLab) WaitMiredoQualified(ctx context.Context, i int, timeout time.Duration) (netip.Addr, error) {
	name, ns := MiredoClientName(i), t.ClientNS(i)
	if t.proc(name) == nil {
		return netip.Addr{}, fmt.Errorf("teredo lab: %s was never started", name)
	}
	var addr netip.Addr
	err := t.poll(ctx, name, timeout, func() (bool, string) {
		logged := t.MiredoLogAddrs(name)
		if len(logged) == 0 {
			return false, "no \"Teredo pseudo-tunnel started\" line in the log yet"
		}
		a, err := TeredoAddr(ctx, ns, TeredoDevice)
		if err != nil {
			return false, err.Error()
		}
		if a != logged[len(logged)-1] {
			return false, fmt.Sprintf("device has %s, the log announced %s", a, logged[len(logged)-1])
		}
		addr = a
		return true, ""
	})
	return addr, err
}

// NATMapping sends one UDP datagram from a single socket in client i's
// namespace (a fresh one on TeredoClientIPv4(i)) to each of dsts, which must be addresses
// of namespace dstNS (listeners are opened there on the same ports), and
// returns the socket's local address and the source address and port each
// destination saw: what the NAT mapped the one socket to, per destination.
// Equal results: an endpoint-independent mapping; different ports: a
// symmetric NAT.
func (t *TeredoLab) NATMapping(ctx context.Context, i int, dstNS string, dsts []netip.AddrPort) (local netip.AddrPort, seen []netip.AddrPort, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	err = Do(dstNS, func() error {
		for _, d := range dsts {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(d))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		return local, nil, fmt.Errorf("teredo lab: NAT mapping: listen in %s: %w", dstNS, err)
	}
	var src *net.UDPConn
	err = Do(t.ClientNS(i), func() error {
		var err error
		src, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(TeredoClientIPv4(i)), 0)))
		return err
	})
	if err != nil {
		return local, nil, fmt.Errorf("teredo lab: NAT mapping: socket in %s: %w", t.ClientNS(i), err)
	}
	defer src.Close()
	local = src.LocalAddr().(*net.UDPAddr).AddrPort()
	seen = make([]netip.AddrPort, len(dsts))
	dl, _ := ctx.Deadline()
	for k, d := range dsts {
		if _, err := src.WriteToUDPAddrPort([]byte("iphttps teredo lab NAT probe"), d); err != nil {
			return local, nil, fmt.Errorf("teredo lab: NAT mapping: send to %s: %w", d, err)
		}
		_ = conns[k].SetReadDeadline(dl)
		buf := make([]byte, 64)
		_, from, err := conns[k].ReadFromUDPAddrPort(buf)
		if err != nil {
			return local, nil, fmt.Errorf("teredo lab: NAT mapping: nothing arrived at %s: %w", d, err)
		}
		seen[k] = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	}
	return local, seen, nil
}
