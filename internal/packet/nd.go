package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/ndp"
)

// Errors returned by ParseND. Every error ParseND returns wraps exactly one
// of them, so callers can tell them apart with errors.Is.
var (
	// ErrNotND: the packet is not ICMPv6 type 133-137 directly after the
	// fixed IPv6 header.
	ErrNotND = errors.New("not a neighbor discovery message")
	// ErrInvalidND: the message fails an RFC 4861 validity check.
	ErrInvalidND = errors.New("invalid neighbor discovery message")
	// ErrRedirect: a valid Redirect (type 137); ndp has no type for it.
	ErrRedirect = errors.New("redirect messages are not decoded")
)

// ndHopLimit is the hop limit every ND message must carry (RFC 4861).
const ndHopLimit = 255

// ND option types looked at directly (RFC 4861 section 4.6).
const (
	optSourceLLA = 1
	optTargetLLA = 2
)

// ndFixedLen is, per ND type, the length of the ICMPv6 message before its
// options (RFC 4861 sections 4.1-4.5); it is also the minimum valid length.
func ndFixedLen(typ uint8) int {
	switch typ {
	case TypeRouterSolicitation:
		return 8
	case TypeRouterAdvertisement:
		return 16
	case TypeNeighborSolicitation, TypeNeighborAdvertisement:
		return 24
	case TypeRedirect:
		return 40
	}
	return 0
}

// BuildICMPv6 returns a complete IPv6 packet carrying the Neighbor Discovery
// message m from src to dst, with the ICMPv6 checksum filled in.
func BuildICMPv6(src, dst netip.Addr, hopLimit uint8, m ndp.Message) ([]byte, error) {
	if m == nil {
		return nil, errors.New("packet: build ICMPv6: nil message")
	}
	if !isIPv6(src) || !isIPv6(dst) {
		return nil, fmt.Errorf("packet: build %v from %v to %v: addresses must be IPv6", m.Type(), src, dst)
	}
	src, dst = src.WithZone(""), dst.WithZone("")
	msg, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, fmt.Errorf("packet: build %v from %v to %v: %w", m.Type(), src, dst, err)
	}
	if len(msg) > 0xffff {
		return nil, fmt.Errorf("packet: build %v: message of %d bytes exceeds the IPv6 payload limit", m.Type(), len(msg))
	}
	b := make([]byte, HeaderLen+len(msg))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(msg)))
	b[6] = ProtoICMPv6
	b[7] = hopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[HeaderLen:], msg)
	return b, nil
}

// ParseND validates the Neighbor Discovery message in the IPv6 packet b and
// decodes it with ndp.
//
// The RFC 4861 checks applied are: ICMPv6 directly after the fixed header,
// hop limit 255, ICMP code 0, ICMPv6 checksum, minimum length per type,
// well-formed option lengths; for RS and NS from the unspecified address no
// Source Link-Layer Address option (and for such an NS a solicited-node
// destination); for NS, NA and Redirect a non-multicast target; for a
// multicast NA a clear Solicited flag; for RA and Redirect a link-local
// source. Beyond RFC 4861, neither address may be IPv4-mapped: such
// addresses never appear on the wire (RFC 4291 section 2.5.5.2; Linux drops
// packets from them), and BuildICMPv6 refuses them. Bytes beyond the
// Payload Length are ignored.
//
// Link-layer address options have no meaning on the IP-HTTPS link: if ndp
// rejects one of them (for example an unusual length), the message is
// decoded without them rather than refused.
//
// A valid Redirect is reported as an error wrapping ErrRedirect, since ndp
// has no Redirect message.
func ParseND(b []byte) (ndp.Message, error) {
	if len(b) < HeaderLen || Version(b) != 6 {
		return nil, fmt.Errorf("packet: parse ND: %w: not an IPv6 packet", ErrNotND)
	}
	end := HeaderLen + PayloadLen(b)
	if end > len(b) {
		return nil, fmt.Errorf("packet: parse ND: %w: payload length %d exceeds the packet", ErrInvalidND, end-HeaderLen)
	}
	b = b[:end]
	typ, ok := ICMPv6Type(b)
	if !ok || !IsND(typ) {
		return nil, fmt.Errorf("packet: parse ND: %w", ErrNotND)
	}
	if err := validateND(b, typ); err != nil {
		return nil, fmt.Errorf("packet: parse ND type %d from %v: %w: %s", typ, Src(b), ErrInvalidND, err.Error())
	}
	if typ == TypeRedirect {
		return nil, fmt.Errorf("packet: parse ND from %v: %w", Src(b), ErrRedirect)
	}
	msg := b[HeaderLen:]
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		// Retry without link-layer address options, which are meaningless
		// here and the only options ndp is strict about.
		stripped, n := withoutLinkLayerOptions(msg, ndFixedLen(typ))
		if n == 0 {
			return nil, fmt.Errorf("packet: parse ND type %d from %v: %w: %w", typ, Src(b), ErrInvalidND, err)
		}
		if m, err = ndp.ParseMessage(stripped); err != nil {
			return nil, fmt.Errorf("packet: parse ND type %d from %v: %w: %w", typ, Src(b), ErrInvalidND, err)
		}
	}
	return m, nil
}

// validateND applies the RFC 4861 checks ndp does not make. b is a packet
// cut to its payload length with an ICMPv6 ND message of type typ.
func validateND(b []byte, typ uint8) error {
	msg := b[HeaderLen:]
	fixed := ndFixedLen(typ)
	switch {
	case HopLimit(b) != ndHopLimit:
		return fmt.Errorf("hop limit %d, want %d", HopLimit(b), ndHopLimit)
	case msg[1] != 0:
		return fmt.Errorf("ICMP code %d, want 0", msg[1])
	case len(msg) < fixed:
		return fmt.Errorf("message of %d bytes, want at least %d", len(msg), fixed)
	case !VerifyICMPv6Checksum(b):
		return errors.New("bad ICMPv6 checksum")
	}
	opts := msg[fixed:]
	if err := checkOptions(opts); err != nil {
		return err
	}
	src, dst := Src(b), Dst(b)
	if src.Is4In6() || dst.Is4In6() {
		return fmt.Errorf("IPv4-mapped address (%v to %v)", src, dst)
	}
	switch typ {
	case TypeRouterSolicitation:
		if src.IsUnspecified() && hasOption(opts, optSourceLLA) {
			return errors.New("source link-layer address option from the unspecified address")
		}
	case TypeRouterAdvertisement:
		if !src.IsLinkLocalUnicast() {
			return fmt.Errorf("source %v is not link-local", src)
		}
	case TypeNeighborSolicitation:
		if target(msg).IsMulticast() {
			return fmt.Errorf("multicast target %v", target(msg))
		}
		if src.IsUnspecified() {
			if !IsSolicitedNode(dst) {
				return fmt.Errorf("destination %v of a solicitation from :: is not solicited-node multicast", dst)
			}
			if hasOption(opts, optSourceLLA) {
				return errors.New("source link-layer address option from the unspecified address")
			}
		}
	case TypeNeighborAdvertisement:
		if target(msg).IsMulticast() {
			return fmt.Errorf("multicast target %v", target(msg))
		}
		if dst.IsMulticast() && msg[4]&0x40 != 0 {
			return errors.New("solicited flag set on a multicast advertisement")
		}
	case TypeRedirect:
		if !src.IsLinkLocalUnicast() {
			return fmt.Errorf("source %v is not link-local", src)
		}
		if target(msg).IsMulticast() || netip.AddrFrom16([16]byte(msg[24:40])).IsMulticast() {
			return errors.New("multicast target or destination")
		}
	}
	return nil
}

// target returns the Target Address of an NS, NA or Redirect message.
func target(msg []byte) netip.Addr {
	return netip.AddrFrom16([16]byte(msg[8:24]))
}

// checkOptions verifies that opts is a sequence of ND options, each with a
// non-zero length that fits (RFC 4861 section 4.6).
func checkOptions(opts []byte) error {
	for len(opts) > 0 {
		if len(opts) < 2 {
			return errors.New("truncated option")
		}
		n := int(opts[1]) * 8
		if n == 0 {
			return fmt.Errorf("option type %d with length 0", opts[0])
		}
		if n > len(opts) {
			return fmt.Errorf("option type %d overruns the message", opts[0])
		}
		opts = opts[n:]
	}
	return nil
}

// hasOption reports whether the well-formed options opts contain one of
// type code.
func hasOption(opts []byte, code uint8) bool {
	for len(opts) >= 2 && opts[1] != 0 {
		if opts[0] == code {
			return true
		}
		opts = opts[min(int(opts[1])*8, len(opts)):]
	}
	return false
}

// withoutLinkLayerOptions returns a copy of the ICMPv6 ND message msg with
// its Source and Target Link-Layer Address options removed, and how many it
// removed. fixed is the length of the message before its options, which
// must be well-formed.
func withoutLinkLayerOptions(msg []byte, fixed int) ([]byte, int) {
	out := append([]byte(nil), msg[:fixed]...)
	removed := 0
	for opts := msg[fixed:]; len(opts) >= 2 && opts[1] != 0; {
		n := min(int(opts[1])*8, len(opts))
		if opts[0] == optSourceLLA || opts[0] == optTargetLLA {
			removed++
		} else {
			out = append(out, opts[:n]...)
		}
		opts = opts[n:]
	}
	return out, removed
}

// isIPv6 reports whether a is an IPv6 address that is not IPv4-mapped.
func isIPv6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// SLAACPrefix returns the prefix a host of the link forms its address from:
// the first Prefix Information option of ra offered for autonomous
// configuration (RFC 4862 section 5.5.3) that is a /64 with a non-zero
// valid lifetime and not link-local. The iphttps client, diagnose and the
// load generator all take the prefix by this one rule.
func SLAACPrefix(ra *ndp.RouterAdvertisement) (*ndp.PrefixInformation, bool) {
	for _, o := range ra.Options {
		if pi, ok := o.(*ndp.PrefixInformation); ok && pi.AutonomousAddressConfiguration &&
			pi.PrefixLength == 64 && pi.ValidLifetime > 0 && pi.Prefix.Is6() && !pi.Prefix.IsLinkLocalUnicast() {
			return pi, true
		}
	}
	return nil, false
}
