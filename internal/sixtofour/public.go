package sixtofour

import (
	"fmt"
	"net/netip"
)

// nonPublic are the IPv4 ranges no 6to4 host can have as its address: a
// host numbered from them is behind a NAT (or not on the Internet at
// all), where protocol 41, which has no ports, cannot come back to it.
var nonPublic = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (RFC 791)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT shared space (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (RFC 3927)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (RFC 6890)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "the retired 6to4 relay anycast range (RFC 7526)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (RFC 2544)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (including the broadcast address)"},
}

// documentation are the ranges RFC 5737 sets aside for examples; the lab
// and the tests use them as public addresses, so they count as public only
// with the lab switch.
var documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
}

// CheckPublic is the range test of 6to4's pseudo-public detection: nil
// when a may be a public IPv4 address, else an error naming the range that
// rules it out. Documentation addresses pass only when lab is set.
func CheckPublic(a netip.Addr, lab bool) error {
	if !a.Is4() {
		return fmt.Errorf("%v is not an IPv4 address", a)
	}
	if p, what := notPublic(a, lab); p.IsValid() {
		return fmt.Errorf("%v is in %v, %s: not a public address", a, p, what)
	}
	return nil
}

// IsPublic is CheckPublic without the reason, for the per-packet checks
// (it does not allocate).
func IsPublic(a netip.Addr, lab bool) bool {
	p, _ := notPublic(a, lab)
	return a.Is4() && !p.IsValid()
}

// notPublic returns the range that rules the IPv4 address a out, and what
// that range is; an invalid prefix when none does.
func notPublic(a netip.Addr, lab bool) (netip.Prefix, string) {
	for _, r := range nonPublic {
		if r.prefix.Contains(a) {
			return r.prefix, r.what
		}
	}
	if !lab {
		for _, p := range documentation {
			if p.Contains(a) {
				return p, "a documentation range (RFC 5737), public only in a lab (--6to4-lab)"
			}
		}
	}
	return netip.Prefix{}, ""
}
