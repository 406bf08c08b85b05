package teredo

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/packet"
)

// The qualification messages (RFC 4380 sections 5.2.1 and 5.3.2).

// RSSource returns the link-local source of a router solicitation with or
// without the cone flag.
func RSSource(cone bool) netip.Addr {
	if cone {
		return RSSourceCone
	}
	return RSSourceNonCone
}

// AppendRS appends a qualification router solicitation: an authentication
// header carrying nonce, then an ICMPv6 Router Solicitation from
// RSSource(cone) to ff02::2 with hop limit 255.
func AppendRS(dst []byte, nonce [NonceLen]byte, cone bool) []byte {
	dst = AppendAuth(dst, nonce, 0)
	start := len(dst)
	dst = packet.AppendIPv6Header(dst, packet.ProtoICMPv6, 8, 255, RSSource(cone), packet.AllRouters())
	dst = append(dst, packet.TypeRouterSolicitation, 0, 0, 0, 0, 0, 0, 0)
	packet.SetICMPv6Checksum(dst[start:])
	return dst
}

// raRetransTimer is the Retrans Timer a server advertises (as Miredo's
// server does).
const raRetransTimer = 2 * time.Second

// ServerPrefix is the /64 a server with primary address primary advertises:
// 2001:0:<primary>::/64.
func ServerPrefix(primary netip.Addr) netip.Prefix {
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	v4 := primary.As4()
	copy(b[4:8], v4[:])
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// AppendRA appends a server's answer to a router solicitation: the
// authentication header echoing nonce (confirmation 0), the origin
// indication carrying the solicitation's source as the server saw it
// (the client's mapping), and a Router Advertisement from the server's
// link-local address to the solicitation's source rsSrc, with the server's
// Teredo prefix and the link MTU. Router lifetime is 0: the advertisement
// installs no default route.
func AppendRA(dst []byte, nonce [NonceLen]byte, origin netip.AddrPort, rsSrc, primary netip.Addr) ([]byte, error) {
	ra := &ndp.RouterAdvertisement{
		RetransmitTimer: raRetransTimer,
		Options: []ndp.Option{
			&ndp.PrefixInformation{
				PrefixLength:                   64,
				AutonomousAddressConfiguration: true,
				ValidLifetime:                  ndp.Infinity,
				PreferredLifetime:              ndp.Infinity,
				Prefix:                         ServerPrefix(primary).Addr(),
			},
			ndp.NewMTU(MTU),
		},
	}
	p, err := packet.BuildICMPv6(ServerLinkLocal(primary), rsSrc, 255, ra)
	if err != nil {
		return dst, fmt.Errorf("teredo: build router advertisement: %w", err)
	}
	dst = AppendAuth(dst, nonce, 0)
	dst = AppendOrigin(dst, origin)
	return append(dst, p...), nil
}

// ErrBadRA is wrapped by every error of ParseRA.
var ErrBadRA = errors.New("not a valid Teredo router advertisement")

// Advertisement is what a client learns from a server's router
// advertisement.
type Advertisement struct {
	Prefix  netip.Prefix   // 2001:0:<server>::/64
	Server  netip.Addr     // the IPv4 address in the prefix
	Mapping netip.AddrPort // from the origin indication
	MTU     int            // 0 when the advertisement has no MTU option
}

// ParseRA validates a datagram as the answer to the router solicitation
// with nonce sent from rsSrc (RFC 4380 section 5.2.1; Miredo's checks):
// authentication header with the same nonce, origin indication present,
// a valid Router Advertisement (RFC 4861 checks) addressed to rsSrc, and
// exactly one Prefix Information option, a Teredo /64.
func ParseRA(d Datagram, nonce [NonceLen]byte, rsSrc netip.Addr) (Advertisement, error) {
	var a Advertisement
	switch {
	case !d.HasAuth:
		return a, fmt.Errorf("teredo: %w: no authentication header", ErrBadRA)
	case d.Nonce != nonce:
		return a, fmt.Errorf("teredo: %w: nonce does not match the solicitation's", ErrBadRA)
	case d.Confirm != 0:
		// Secure qualification's "get a new key": there is no key.
		return a, fmt.Errorf("teredo: %w: confirmation byte %d (secure qualification is not supported)", ErrBadRA, d.Confirm)
	case !d.HasOrigin:
		return a, fmt.Errorf("teredo: %w: no origin indication", ErrBadRA)
	case packet.Dst(d.IPv6) != rsSrc:
		return a, fmt.Errorf("teredo: %w: addressed to %v, not %v", ErrBadRA, packet.Dst(d.IPv6), rsSrc)
	}
	m, err := packet.ParseND(d.IPv6)
	if err != nil {
		return a, fmt.Errorf("teredo: %w: %w", ErrBadRA, err)
	}
	ra, ok := m.(*ndp.RouterAdvertisement)
	if !ok {
		return a, fmt.Errorf("teredo: %w: ND message %v", ErrBadRA, m.Type())
	}
	pios := 0
	for _, o := range ra.Options {
		switch o := o.(type) {
		case *ndp.PrefixInformation:
			pios++
			a.Prefix = netip.PrefixFrom(o.Prefix, int(o.PrefixLength))
		case *ndp.MTU:
			a.MTU = int(o.MTU)
		}
	}
	if pios != 1 {
		return a, fmt.Errorf("teredo: %w: %d prefix options, want exactly one", ErrBadRA, pios)
	}
	if a.Prefix.Bits() != 64 || !IsTeredo(a.Prefix.Addr()) {
		return a, fmt.Errorf("teredo: %w: prefix %v is not a Teredo /64", ErrBadRA, a.Prefix)
	}
	b := a.Prefix.Addr().As16()
	a.Server = netip.AddrFrom4([4]byte(b[4:8]))
	a.Mapping = d.Origin
	return a, nil
}

// ClientAddress is the Teredo address a client qualified by adv takes,
// with flags.
func (adv Advertisement) ClientAddress(flags uint16) netip.Addr {
	return Address{Server: adv.Server, Flags: flags, Mapped: adv.Mapping}.IPv6()
}
