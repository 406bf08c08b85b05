package userspace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// Dialer opens the connections the proxy listeners are asked for:
// destinations inside the routes the server advertises (its prefix, its
// route information options, --route) go through the tunnel; others go out
// directly from the host when Direct is set, and are refused otherwise.
type Dialer struct {
	Stack    *Stack
	Direct   bool
	Resolver *net.Resolver // system resolver for names; nil: net.DefaultResolver
	Net      net.Dialer    // for direct connections
}

// DialContext connects to address ("host:port"; the host may be a name) over
// network ("tcp" or "udp").
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("destination %q: bad port", address)
	}
	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	// Tunnel addresses first: a name with both a tunnel (intranet) address
	// and another one is meant to be reached through the tunnel.
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		_, ta := d.Stack.routed(a)
		_, tb := d.Stack.routed(b)
		switch {
		case ta && !tb:
			return -1
		case tb && !ta:
			return 1
		}
		return 0
	})
	var errs []error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, uint16(port))
		if _, inTunnel := d.Stack.routed(a); inTunnel {
			c, err := d.Stack.dialTunnel(ctx, network, ap)
			if err == nil {
				return c, nil
			}
			errs = append(errs, fmt.Errorf("%s through the tunnel: %w", ap, err))
			continue
		}
		if !d.Direct {
			errs = append(errs, fmt.Errorf("%s is outside the tunnel's routes and direct connections are off", a))
			continue
		}
		c, err := d.Net.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("connect to %s: %w", address, errors.Join(errs...))
}

// resolve turns host into addresses: an IP literal as is; a name through the
// tunnel's name servers when there are any, then the system resolver.
func (d *Dialer) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, fmt.Errorf("destination %s: zoned addresses are not supported", host)
		}
		return []netip.Addr{ip.Unmap()}, nil
	}
	var tunnelErr error
	if len(d.Stack.dns) > 0 {
		addrs, err := d.Stack.lookupTunnel(ctx, host)
		if err == nil && len(addrs) > 0 {
			return addrs, nil
		}
		tunnelErr = err
	}
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		if tunnelErr != nil {
			return nil, fmt.Errorf("resolve %s: through the tunnel: %v; system resolver: %w", host, tunnelErr, err)
		}
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}
