package router

import (
	"net/netip"
	"slices"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/mdlayher/ndp"
)

// raCurHopLimit is the Cur Hop Limit advertised to clients.
const raCurHopLimit = 64

// raMessage returns the Router Advertisement for the link:
// Cur Hop Limit 64, M=0, O=0, router lifetime per DefaultRoute, then an MTU
// option, one Prefix Information option (A=1; L=1 only in
// ModeCertificates, where clients share the link) and Route Information
// options. It carries no Source Link-Layer Address option: the link has
// no link-layer addresses.
func (r *Router) raMessage() *ndp.RouterAdvertisement {
	cfg := &r.cfg
	ra := &ndp.RouterAdvertisement{CurrentHopLimit: raCurHopLimit}
	if cfg.DefaultRoute {
		ra.RouterLifetime = cfg.RouterLifetime
	}
	ra.Options = append(ra.Options, ndp.NewMTU(uint32(cfg.MTU)))
	if !cfg.Unpublished {
		ra.Options = append(ra.Options, &ndp.PrefixInformation{
			PrefixLength:                   uint8(cfg.Prefix.Bits()),
			OnLink:                         r.mode() == ModeCertificates,
			AutonomousAddressConfiguration: true,
			ValidLifetime:                  cfg.PrefixValid,
			PreferredLifetime:              cfg.PrefixPreferred,
			Prefix:                         cfg.Prefix.Addr(),
		})
	}
	for _, p := range r.advertisedRoutes() {
		ra.Options = append(ra.Options, &ndp.RouteInformation{
			PrefixLength:  uint8(p.Bits()),
			Preference:    ndp.Medium,
			RouteLifetime: cfg.RouterLifetime,
			Prefix:        p.Addr(),
		})
	}
	return ra
}

// advertisedRoutes returns the prefixes advertised in Route Information
// options: Config.Routes and, in ModeNone when clients may reach each
// other, the link prefix itself, which is off-link there (L=0) and so is
// reached through the server.
func (r *Router) advertisedRoutes() []netip.Prefix {
	routes := slices.Clone(r.cfg.Routes)
	if r.mode() == ModeNone && !r.isolate.Load() && !r.cfg.Unpublished && !slices.Contains(routes, r.cfg.Prefix) {
		routes = append(routes, r.cfg.Prefix)
	}
	return routes
}

// BuildRA returns the router's Router Advertisement addressed to dst, as a
// complete IPv6 packet from LinkLocal with hop limit 255.
func (r *Router) BuildRA(dst netip.Addr) ([]byte, error) {
	return packet.BuildICMPv6(r.cfg.LinkLocal, dst, 255, r.raMessage())
}

// raTo returns the Router Advertisement addressed to dst, reusing the
// prebuilt one: for ff02::1 the shared read-only copy, otherwise a copy
// with the destination and checksum patched.
func (r *Router) raTo(dst netip.Addr) []byte {
	if dst == packet.AllNodes() {
		return *r.raAllNodes.Load()
	}
	b := slices.Clone(*r.raAllNodes.Load())
	d := dst.As16()
	copy(b[24:40], d[:])
	packet.SetICMPv6Checksum(b)
	return b
}

// sendRA sends the Router Advertisement for dst to c.
func (r *Router) sendRA(c *Client, dst netip.Addr) {
	if r.send(c, r.raTo(dst)) {
		r.counters.ras.Add(1)
	}
}

// Advertise sends an unsolicited Router Advertisement (to ff02::1) to c.
func (r *Router) Advertise(c *Client) {
	r.sendRA(c, packet.AllNodes())
}

// AdvertiseAll sends an unsolicited Router Advertisement (to ff02::1) to
// every client; the server calls it periodically.
func (r *Router) AdvertiseAll() {
	r.mu.RLock()
	for _, c := range r.clients {
		if r.sendLocked(c, *r.raAllNodes.Load()) {
			r.counters.ras.Add(1)
		}
	}
	r.mu.RUnlock()
}

// AdvertiseInterval returns how often the server should call AdvertiseAll:
// a third of the shortest advertised lifetime, between 4s and 600s (the
// RFC 4861 default MaxRtrAdvInterval), so no lifetime runs out between
// advertisements.
func (r *Router) AdvertiseInterval() time.Duration {
	d := min(r.cfg.RouterLifetime, r.cfg.PrefixValid, r.cfg.PrefixPreferred) / 3
	return max(min(d, 600*time.Second), 4*time.Second)
}
