package iphttps

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/wire"
)

// Advertisement is a router advertisement read from the link.
type Advertisement struct {
	From netip.Addr // the router's link-local address
	To   netip.Addr // all nodes, or the address that solicited it
	RA   *ndp.RouterAdvertisement
	// Prefix is the /64 it offers for address autoconfiguration
	// (packet.SLAACPrefix); the zero Prefix when it offers none.
	Prefix netip.Prefix
}

// ErrNoPrefix is the answer to a solicitation that offers no /64 prefix for
// address autoconfiguration: the client gets no address.
var ErrNoPrefix = errors.New("the advertisement offers no /64 prefix for autoconfiguration")

// Solicit is the fourth phase as a client without a link engine runs it: a
// router solicitation from src to all routers on conn, then the packets r
// reads until the advertisement that gives a /64 prefix. From :: (a host
// without an address yet) every answer goes to all nodes, and the first
// advertisement with a prefix is taken. From a link-local address the
// answer is the advertisement sent to it: those to all nodes (the server
// advertises to every new connection) are passed over, and an answer
// without a prefix is ErrNoPrefix. ctx bounds the exchange; a failed read
// is returned as the reader gives it.
func Solicit(ctx context.Context, conn net.Conn, r *wire.Reader, src netip.Addr, tr *Trace) (Advertisement, error) {
	tr = tr.hooks()
	defer bound(ctx, conn)()
	rs, err := RouterSolicitation(src)
	if err != nil {
		return Advertisement{}, err
	}
	_, err = conn.Write(rs)
	if h := tr.WroteRouterSolicitation; h != nil {
		h(err)
	}
	if err != nil {
		return Advertisement{}, err
	}
	anyAnswer := src.IsUnspecified()
	for {
		pkt, err := r.Next()
		if err != nil {
			return Advertisement{}, err
		}
		if h := tr.GotPacket; h != nil {
			h(pkt)
		}
		if typ, ok := packet.ICMPv6Type(pkt); !ok || typ != packet.TypeRouterAdvertisement {
			continue
		}
		a := Advertisement{From: packet.Src(pkt), To: packet.Dst(pkt)}
		m, err := packet.ParseND(pkt)
		if err != nil {
			if h := tr.GotRouterAdvertisement; h != nil {
				h(a, err)
			}
			continue
		}
		ra, ok := m.(*ndp.RouterAdvertisement)
		if !ok {
			continue
		}
		a.RA = ra
		a.Prefix, _, _ = ChoosePrefix(ra)
		if h := tr.GotRouterAdvertisement; h != nil {
			h(a, nil)
		}
		switch {
		case !anyAnswer && a.To != src:
			// To all nodes: not the answer to this solicitation.
		case a.Prefix.IsValid():
			return a, nil
		case !anyAnswer:
			return a, ErrNoPrefix
		}
	}
}

// ChoosePrefix is the prefix choice of address autoconfiguration: the /64
// an advertisement offers (packet.SLAACPrefix, the one rule of the client,
// diagnose and the load generator) and its option, with the lifetimes.
func ChoosePrefix(ra *ndp.RouterAdvertisement) (netip.Prefix, *ndp.PrefixInformation, bool) {
	pi, ok := packet.SLAACPrefix(ra)
	if !ok {
		return netip.Prefix{}, nil, false
	}
	return netip.PrefixFrom(pi.Prefix, 64).Masked(), pi, true
}

// RouterSolicitation is a router solicitation from src to all routers.
func RouterSolicitation(src netip.Addr) ([]byte, error) {
	return packet.BuildICMPv6(src, packet.AllRouters(), 255, &ndp.RouterSolicitation{})
}

// DADProbe is the duplicate address detection probe for addr (RFC 4862
// 5.4.2): a neighbor solicitation from :: to addr's solicited-node address.
// The server registers the address for the connection that sends it.
func DADProbe(addr netip.Addr) ([]byte, error) {
	return packet.BuildICMPv6(netip.IPv6Unspecified(), packet.SolicitedNode(addr), 255, &ndp.NeighborSolicitation{TargetAddress: addr})
}

// RandomIID is a random interface identifier with the RFC 4291 "u" bit
// clear: not derived from a hardware address.
func RandomIID() [8]byte {
	var iid [8]byte
	rand.Read(iid[:])
	iid[0] &^= 0x02
	return iid
}

// WithIID is the address of prefix p (a /64) with interface identifier iid.
func WithIID(p netip.Addr, iid [8]byte) netip.Addr {
	b := p.As16()
	copy(b[8:], iid[:])
	return netip.AddrFrom16(b)
}

// LinkLocal is the link-local address with interface identifier iid.
func LinkLocal(iid [8]byte) netip.Addr {
	return WithIID(netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80}), iid)
}
