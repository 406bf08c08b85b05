package teredo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Trailers (RFC 6081 section 3): options after the IPv6 packet, each a
// type byte, a length byte (the bytes that follow) and the value. Peers
// that do not know them ignore them: they read the packet by its Payload
// Length. iphttps reads and writes the Alternate Address Trailer of the
// hairpinning extension (RFC 6081 section 4.3, MS-TERE section 2.2.2) and
// skips the other types.

const (
	// TrailerAlternateAddress is the Alternate Address Trailer's type.
	TrailerAlternateAddress = 0x03
	// MaxAlternates is the most entries an Alternate Address Trailer holds
	// (its length is at most 26: 2 reserved bytes and 4 entries of 6).
	MaxAlternates = 4
	// AlternatesMaxLen is the length of the longest Alternate Address
	// Trailer: type, length, reserved and MaxAlternates entries.
	AlternatesMaxLen = 4 + MaxAlternates*alternateLen

	alternateLen = 6 // IPv4 address and port
)

// ErrTrailer is the error of ParseAlternates, wrapped with detail.
var ErrTrailer = errors.New("malformed trailer")

// Alternates are the addresses and ports of an Alternate Address Trailer,
// at most MaxAlternates; the zero value holds none.
type Alternates struct {
	addrs [MaxAlternates]netip.AddrPort
	n     int
}

// List returns the addresses, in trailer order.
func (a *Alternates) List() []netip.AddrPort { return a.addrs[:a.n] }

// Add appends ap; it reports false (and adds nothing) when a is full.
func (a *Alternates) Add(ap netip.AddrPort) bool {
	if a.n == MaxAlternates {
		return false
	}
	a.addrs[a.n] = ap
	a.n++
	return true
}

// ParseAlternates reads the Alternate Address Trailer among trailers (a
// Datagram's Trailers); a zero Alternates without error means there is
// none. It refuses, with ErrTrailer, an option that overruns the bytes, an
// Alternate Address Trailer whose length is not 8, 14, 20 or 26, and a
// second Alternate Address Trailer. The entries are returned as sent:
// whether one may be used is IsAlternateAddress's question. It does not
// allocate.
func ParseAlternates(trailers []byte) (alts Alternates, err error) {
	seen := false
	for b := trailers; len(b) > 0; {
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return Alternates{}, fmt.Errorf("teredo: %w: option of type %#02x overruns the %d trailer bytes", ErrTrailer, b[0], len(trailers))
		}
		typ, val := b[0], b[2:2+int(b[1])]
		b = b[2+len(val):]
		if typ != TrailerAlternateAddress {
			continue
		}
		if seen {
			return Alternates{}, fmt.Errorf("teredo: %w: two alternate address trailers", ErrTrailer)
		}
		seen = true
		if len(val) < 2+alternateLen || (len(val)-2)%alternateLen != 0 || len(val) > AlternatesMaxLen-2 {
			return Alternates{}, fmt.Errorf("teredo: %w: alternate address trailer of length %d (want 8, 14, 20 or 26)", ErrTrailer, len(val))
		}
		for e := val[2:]; len(e) > 0; e = e[alternateLen:] {
			alts.Add(netip.AddrPortFrom(netip.AddrFrom4([4]byte(e[:4])), binary.BigEndian.Uint16(e[4:6])))
		}
	}
	return alts, nil
}

// AppendAlternates appends an Alternate Address Trailer listing alts (1 to
// MaxAlternates IPv4 addresses and ports; more are left out, and none
// appends nothing), its reserved field zero.
func AppendAlternates(dst []byte, alts ...netip.AddrPort) []byte {
	if len(alts) == 0 {
		return dst
	}
	alts = alts[:min(len(alts), MaxAlternates)]
	dst = append(dst, TrailerAlternateAddress, byte(2+len(alts)*alternateLen), 0, 0)
	for _, ap := range alts {
		v4 := ap.Addr().As4()
		dst = append(dst, v4[0], v4[1], v4[2], v4[3], byte(ap.Port()>>8), byte(ap.Port()))
	}
	return dst
}

// IsAlternateAddress reports whether ap may be announced or used as an
// alternate address of the hairpinning extension: a private IPv4 address
// (10/8, 172.16/12, 192.168/16), where only a host behind the same NAT can
// be, and a port other than 0. A global address never is: a peer could
// otherwise aim the bubbles we send to its alternate addresses at any host
// on the Internet.
func IsAlternateAddress(ap netip.AddrPort) bool {
	a := ap.Addr()
	if !a.Is4() || ap.Port() == 0 {
		return false
	}
	b := a.As4()
	return b[0] == 10 || b[0] == 172 && b[1]&0xf0 == 16 || b[0] == 192 && b[1] == 168
}
