package router

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
)

// Config describes the IP-HTTPS link the router serves. Zero values select
// the documented defaults.
type Config struct {
	// Mode is the server's authentication mode; it selects the link rules.
	Mode Mode
	// Prefix is the link's prefix; it must be a /64.
	Prefix netip.Prefix
	// LinkLocal is the server's link-local address on the link (the source
	// of its Router Advertisements). Default fe80::1.
	LinkLocal netip.Addr
	// HostAddrs are addresses the server host itself holds on the link
	// (for example prefix::1). Packets to them go to the host, and no
	// client may claim them.
	HostAddrs []netip.Addr
	// Routes are advertised to clients as RFC 4191 Route Information
	// options.
	Routes []netip.Prefix
	// DefaultRoute advertises the server as a default router (router
	// lifetime RouterLifetime); when false the advertised router lifetime
	// is 0 and clients only get the routes in Route Information options.
	DefaultRoute bool
	// RouterLifetime is the advertised router lifetime when DefaultRoute is
	// set, and the lifetime of every Route Information option. Default
	// 1800s; at most 9000s (RFC 4861).
	RouterLifetime time.Duration
	// PrefixValid and PrefixPreferred are the Prefix Information lifetimes.
	// Defaults 24h and 4h.
	PrefixValid     time.Duration
	PrefixPreferred time.Duration
	// MTU is advertised in the RA MTU option. Default 1280, the IP-HTTPS
	// link MTU.
	MTU int
	// Unpublished leaves the prefix out of the advertisements (no Prefix
	// Information option, no route for it): the Windows server's route
	// with publish=no, which leaves clients connected but without an
	// address. For troubleshooting labs; a real server publishes.
	Unpublished bool
	// IsolateClients forbids unicast between clients.
	IsolateClients bool
	// MaxAddrsPerClient bounds how many addresses (link-local included)
	// one client may own. Default 16.
	MaxAddrsPerClient int
}

// Defaults applied by New to zero fields.
const (
	DefaultRouterLifetime    = 1800 * time.Second
	DefaultPrefixValid       = 24 * time.Hour
	DefaultPrefixPreferred   = 4 * time.Hour
	DefaultMTU               = 1280
	DefaultMaxAddrsPerClient = 16
)

// maxRouterLifetime is the RFC 4861 upper bound (MaxRtrAdvInterval limit).
const maxRouterLifetime = 9000 * time.Second

// defaultLinkLocal is fe80::1.
func defaultLinkLocal() netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: 0x01})
}

// normalize returns cfg with defaults applied, addresses unzoned, slices
// copied and every field checked.
func (cfg Config) normalize() (Config, error) {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("router: config: %s %v: %s", field, v, why)
	}
	if cfg.Mode != ModeNone && cfg.Mode != ModeCertificates {
		return cfg, bad("Mode", cfg.Mode, "want none or certificates")
	}

	p := cfg.Prefix
	switch a := p.Addr(); {
	case !p.IsValid():
		return cfg, bad("Prefix", p, "missing or invalid (want an IPv6 /64)")
	case !is6(a):
		return cfg, bad("Prefix", p, "not an IPv6 prefix")
	case p.Bits() != 64:
		return cfg, bad("Prefix", p, "must be a /64")
	case a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsLoopback(), p.Masked().Addr().IsUnspecified():
		return cfg, bad("Prefix", p, "must be a unicast prefix beyond link-local")
	}
	cfg.Prefix = p.Masked()

	if !cfg.LinkLocal.IsValid() {
		cfg.LinkLocal = defaultLinkLocal()
	}
	cfg.LinkLocal = cfg.LinkLocal.WithZone("")
	if !is6(cfg.LinkLocal) || !cfg.LinkLocal.IsLinkLocalUnicast() {
		return cfg, bad("LinkLocal", cfg.LinkLocal, "must be an IPv6 link-local unicast address (fe80::/10)")
	}

	hosts := make([]netip.Addr, 0, len(cfg.HostAddrs))
	for _, a := range cfg.HostAddrs {
		a = a.WithZone("")
		if !is6(a) || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() {
			return cfg, bad("HostAddrs", a, "must be an IPv6 unicast address")
		}
		hosts = append(hosts, a)
	}
	cfg.HostAddrs = hosts

	routes := make([]netip.Prefix, 0, len(cfg.Routes))
	for _, rt := range cfg.Routes {
		if !rt.IsValid() || !is6(rt.Addr()) || rt.Addr().IsMulticast() {
			return cfg, bad("Routes", rt, "must be an IPv6 unicast prefix")
		}
		routes = append(routes, rt.Masked())
	}
	cfg.Routes = routes

	if err := defaultDuration(&cfg.RouterLifetime, DefaultRouterLifetime, maxRouterLifetime, "RouterLifetime"); err != nil {
		return cfg, err
	}
	if err := defaultDuration(&cfg.PrefixValid, DefaultPrefixValid, ndp.Infinity, "PrefixValid"); err != nil {
		return cfg, err
	}
	if err := defaultDuration(&cfg.PrefixPreferred, DefaultPrefixPreferred, ndp.Infinity, "PrefixPreferred"); err != nil {
		return cfg, err
	}
	if cfg.PrefixPreferred > cfg.PrefixValid {
		return cfg, bad("PrefixPreferred", cfg.PrefixPreferred, fmt.Sprintf("exceeds PrefixValid %v", cfg.PrefixValid))
	}

	switch {
	case cfg.MTU == 0:
		cfg.MTU = DefaultMTU
	case cfg.MTU < 1280 || cfg.MTU > 65535:
		return cfg, bad("MTU", cfg.MTU, "must be between 1280 and 65535")
	}
	switch {
	case cfg.MaxAddrsPerClient == 0:
		cfg.MaxAddrsPerClient = DefaultMaxAddrsPerClient
	case cfg.MaxAddrsPerClient < 0:
		return cfg, bad("MaxAddrsPerClient", cfg.MaxAddrsPerClient, "must not be negative")
	}
	return cfg, nil
}

// defaultDuration applies def to a zero *d and checks 1s <= *d <= max.
func defaultDuration(d *time.Duration, def, max time.Duration, field string) error {
	if *d == 0 {
		*d = def
	}
	if *d < time.Second || *d > max {
		return fmt.Errorf("router: config: %s %v: must be between 1s and %v", field, *d, max)
	}
	return nil
}

// is6 reports whether a is an IPv6 address that is not IPv4-mapped.
func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }
