package scale

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iphttps/iphttps/internal/lab"
)

// The benchmark's network, documentation addresses only:
//
//	ipbs-cli  to-srv 198.51.100.2.../24  2001:db8:5::2/64    load generator
//	   |veth
//	ipbs-srv  to-cli 198.51.100.1/24     2001:db8:5::1/64    iphttps server, TUN iphttps-srv
//	          to-int                     2001:db8:7::1/64    (link prefix 2001:db8:6::/64 on the TUN)
//	   |veth
//	ipbs-int  to-srv                     2001:db8:7::2/64    intranet host, the trickle's target
//
// ipbs-srv forwards IPv6; ipbs-int routes the link prefix and ipbs-cli's
// 2001:db8:5::/64 back through it, and ipbs-cli routes 2001:db8:7::/64
// through it, so the baseline pings take the path of the tunnel minus the
// tunnel.
const (
	nsSrv = "ipbs-srv"
	nsCli = "ipbs-cli"
	nsInt = "ipbs-int"

	serverIPv4   = "198.51.100.1"
	serverPort   = "443"
	cliNet       = "198.51.100.0/24"
	srvVethV6    = "2001:db8:5::1"
	cliVethV6    = "2001:db8:5::2"
	vethV6Net    = "2001:db8:5::/64"
	srvIntV6     = "2001:db8:7::1"
	intranetV6   = "2001:db8:7::2"
	intranetNet  = "2001:db8:7::/64"
	linkPrefix   = "2001:db8:6::/64"
	tunName      = "iphttps-srv" // the server's default --interface
	maxSources   = 50
	portRangeKey = "net.ipv4.ip_local_port_range"
)

// namespaces returns the benchmark's namespaces, in creation order.
func namespaces() []string { return []string{nsSrv, nsCli, nsInt} }

// sourceAddrs are the load generator's n source addresses.
func sourceAddrs(n int) []string {
	base := netip.MustParseAddr("198.51.100.2")
	out := make([]string, n)
	for i := range out {
		out[i] = base.String()
		base = base.Next()
	}
	return out
}

// removeNamespaces deletes the benchmark's namespaces and every process in
// them; missing ones are fine.
func removeNamespaces(ctx context.Context) error {
	var errs []error
	for _, ns := range namespaces() {
		if err := lab.DeleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// buildTopology creates the namespaces, links, addresses, routes and
// sysctls, with sources client addresses and room for ports ephemeral
// ports per source address on the client side.
func buildTopology(ctx context.Context, sources, ports int) (portRange string, err error) {
	if sources < 1 || sources > maxSources {
		return "", fmt.Errorf("%d source addresses: want 1 to %d", sources, maxSources)
	}
	for _, ns := range namespaces() {
		if err := lab.AddNetns(ctx, ns); err != nil {
			return "", err
		}
	}
	if err := lab.AddVeth(ctx, nsSrv, "to-cli", nsCli, "to-srv"); err != nil {
		return "", err
	}
	if err := lab.AddVeth(ctx, nsSrv, "to-int", nsInt, "to-srv"); err != nil {
		return "", err
	}
	addrs := [][3]string{
		{nsSrv, "to-cli", serverIPv4 + "/24"},
		{nsSrv, "to-cli", srvVethV6 + "/64"},
		{nsCli, "to-srv", cliVethV6 + "/64"},
		{nsSrv, "to-int", srvIntV6 + "/64"},
		{nsInt, "to-srv", intranetV6 + "/64"},
	}
	for _, a := range sourceAddrs(sources) {
		addrs = append(addrs, [3]string{nsCli, "to-srv", a + "/24"})
	}
	for _, a := range addrs {
		if err := lab.AddAddr(ctx, a[0], a[1], a[2]); err != nil {
			return "", err
		}
	}
	routes := [][3]string{
		{nsCli, intranetNet, srvVethV6},
		{nsInt, linkPrefix, srvIntV6},
		{nsInt, vethV6Net, srvIntV6},
	}
	for _, r := range routes {
		if err := lab.AddRoute(ctx, r[0], r[1], r[2]); err != nil {
			return "", err
		}
	}
	sysctls := [][3]string{
		{nsSrv, "net.ipv6.conf.all.forwarding", "1"},
		// Echo replies are not rate limited by default; make sure.
		{nsInt, "net.ipv6.icmp.ratelimit", "0"},
		{nsSrv, "net.ipv6.icmp.ratelimit", "0"},
	}
	for _, s := range sysctls {
		if err := lab.SetSysctl(s[0], s[1], s[2]); err != nil {
			return "", err
		}
	}
	return widenPortRange(nsCli, ports)
}

// widenPortRange makes sure ns has at least need ephemeral ports, widening
// net.ipv4.ip_local_port_range (which also serves IPv6) down to 1024 if
// needed, and returns the range in force.
func widenPortRange(ns string, need int) (string, error) {
	cur, err := lab.GetSysctl(ns, portRangeKey)
	if err != nil {
		return "", err
	}
	lo, hi, err := parsePortRange(cur)
	if err != nil {
		return "", fmt.Errorf("namespace %s: %s %q: %w", ns, portRangeKey, cur, err)
	}
	if hi-lo+1 >= need {
		return fmt.Sprintf("%d-%d", lo, hi), nil
	}
	lo, hi = 1024, 65535
	if hi-lo+1 < need {
		return "", fmt.Errorf("%d ports per source address needed, more than a port range holds: use more --sources", need)
	}
	if err := lab.SetSysctl(ns, portRangeKey, fmt.Sprintf("%d %d", lo, hi)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d-%d", lo, hi), nil
}

// parsePortRange parses "32768\t60999".
func parsePortRange(s string) (lo, hi int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, errors.New("want two numbers")
	}
	if lo, err = strconv.Atoi(f[0]); err == nil {
		hi, err = strconv.Atoi(f[1])
	}
	if err != nil || lo > hi {
		return 0, 0, errors.New("not a port range")
	}
	return lo, hi, nil
}
