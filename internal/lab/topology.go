package lab

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Names and addresses of the lab topology. All of them are documentation
// ranges (RFC 5737, RFC 3849) living only inside the lab's namespaces.
const (
	// DefaultPrefix is the namespace name prefix of `iphttps lab`.
	DefaultPrefix = "iphttps-"

	// ServerName is the IP-HTTPS server's DNS name, in its certificate and
	// in the clients' URL.
	ServerName = "da.example.test"
	// ServerIPv4 is the server's public ("Internet") address.
	ServerIPv4 = "203.0.113.10"
	// ServerURL is the URL the clients connect to.
	ServerURL = "https://" + ServerName + "/IPHTTPS"
	// InetEdgeIPv4 is the Internet router's address towards the server.
	InetEdgeIPv4 = "203.0.113.1"
	// DNSAddr is where dnsmasq answers, on the Internet router's loopback.
	DNSAddr = "192.0.2.53"

	// LinkPrefix is the IP-HTTPS link prefix the server advertises.
	LinkPrefix = "2001:db8:1::/64"
	// IntranetPrefix is the corporate network behind the server.
	IntranetPrefix = "2001:db8:c0::/64"
	// IntranetRouter is the server host's address on the intranet.
	IntranetRouter = "2001:db8:c0::1"
	// IntranetHost is the intranet host (web server on port 80).
	IntranetHost = "2001:db8:c0::10"

	// ClientDevice is the clients' default TUN device name.
	ClientDevice = "iphttps0"
	// ServerDevice is the server's default TUN device name.
	ServerDevice = "iphttps-srv"

	// StatusActive is the InterfaceStatus of a client that is up.
	StatusActive = "IPHTTPS interface active"
	// StatusFailed is the InterfaceStatus of a client that cannot connect.
	StatusFailed = "Failed to connect to the IPHTTPS server; waiting to reconnect"
)

// Namespace roles. A namespace is named prefix+role; clients are "cli1",
// "cli2", ...
const (
	RoleInet = "inet"
	RoleEdge = "edge"
	RoleCorp = "corp"
)

// Veth names inside the namespaces: each end is named after the namespace
// it leads to.
const (
	vethToInet = "to-inet"
	vethToEdge = "to-edge"
	vethToCorp = "to-corp"
)

// maxClients keeps client subnets (198.51.100.8i/29) inside 198.51.100.0/24.
const maxClients = 30

// ClientName is the daemon and namespace-role name of client i (1-based).
func ClientName(i int) string { return "cli" + strconv.Itoa(i) }

// clientInetIPv4 is the Internet router's address towards client i.
func clientInetIPv4(i int) string { return fmt.Sprintf("198.51.100.%d", 8*i+1) }

// ClientIPv4 is client i's public ("Internet") address.
func ClientIPv4(i int) string { return fmt.Sprintf("198.51.100.%d", 8*i+2) }

// LinkPrefixValue is LinkPrefix parsed.
func LinkPrefixValue() netip.Prefix { return netip.MustParsePrefix(LinkPrefix) }

// roleRE matches the role part of a lab namespace name.
var roleRE = regexp.MustCompile(`^(inet|edge|corp|cli[0-9]+|srv[0-9]+)$`)

// IsLabNamespace reports whether name is a lab namespace of prefix: the
// prefix followed by one of the lab's roles. Clean-up only ever touches
// such names.
func IsLabNamespace(prefix, name string) bool {
	if prefix == "" || !strings.HasPrefix(name, prefix) {
		return false
	}
	return roleRE.MatchString(strings.TrimPrefix(name, prefix))
}

// validPrefix checks a namespace name prefix: short, and made only of
// characters that are safe in file names and ip(8) arguments.
func validPrefix(p string) error {
	if p == "" || len(p) > 24 {
		return fmt.Errorf("lab prefix %q: want 1 to 24 characters", p)
	}
	for _, r := range p {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
		if !ok {
			return fmt.Errorf("lab prefix %q: only letters, digits, '-' and '_' are allowed", p)
		}
	}
	return nil
}
