package teredo

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/iphttps/iphttps/internal/packet"
)

// FuzzParse feeds arbitrary UDP payloads to Parse, ParseRA and
// ParseAlternates. When Parse accepts one, the pieces must account for
// every byte, the packet must be IPv6 cut to its Payload Length, and the
// headers must encode back to the bytes they came from; an advertisement
// ParseRA accepts must be one a server could have sent for that nonce; the
// alternate addresses ParseAlternates finds in the trailers must encode
// back to an Alternate Address Trailer there.
func FuzzParse(f *testing.F) {
	nonce := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	f.Add(AppendRS(nil, nonce, false))
	f.Add(AppendRS(nil, nonce, true))
	ra, _ := AppendRA(nil, nonce, ap("203.0.113.5:40000"), RSSourceNonCone, addr("198.51.100.10"))
	f.Add(ra)
	f.Add(append(AppendOrigin(nil, ap("192.0.2.1:3544")), AppendBubble(nil, addr("fe80::1"), addr("2001::1"))...))
	f.Add(append(AppendBubble(nil, addr("2001::2"), addr("2001::1")), 3, 8, 0, 0, 192, 0, 2, 1, 13, 200))
	bubble := AppendBubble(nil, addr("2001:0:cb00:710a::1"), addr("2001:0:cb00:710a::2"))
	alts := AppendAlternates(nil, ap("10.1.0.2:40000"), ap("192.168.1.5:3544"))
	f.Add(append(slices.Clone(bubble), alts...))
	f.Add(append(AppendOrigin(nil, ap("198.51.100.11:40000")), append(slices.Clone(bubble), alts[:10]...)...))
	f.Add(append(slices.Clone(bubble), append([]byte{1, 4, 1, 2, 3, 4}, alts...)...))
	f.Add(append(slices.Clone(bubble), append(slices.Clone(alts), alts...)...))
	f.Add(append(slices.Clone(bubble), 3, 9, 0, 0, 10, 1, 0, 2, 1, 2, 3))
	f.Add([]byte{0, 1, 5, 7, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNotIPv6) && !errors.Is(err, ErrLength) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if packet.Version(d.IPv6) != 6 || len(d.IPv6) != packet.HeaderLen+packet.PayloadLen(d.IPv6) {
			t.Fatalf("packet %x", d.IPv6)
		}
		head := len(b) - len(d.IPv6) - len(d.Trailers)
		if !bytes.Equal(b[head:head+len(d.IPv6)], d.IPv6) || !bytes.Equal(b[head+len(d.IPv6):], d.Trailers) {
			t.Fatal("pieces do not cover the datagram")
		}
		if d.HasOrigin {
			if !bytes.Equal(AppendOrigin(nil, d.Origin), b[head-OriginLen:head]) {
				t.Fatalf("origin %v does not encode back to %x", d.Origin, b[head-OriginLen:head])
			}
		}
		if d.HasAuth {
			if b[0] != 0 || b[1] != 1 {
				t.Fatal("authentication header reported where there is none")
			}
			if b[2] == 0 && b[3] == 0 && !bytes.Equal(AppendAuth(nil, d.Nonce, d.Confirm), b[:AuthMinLen]) {
				t.Fatalf("authentication %x does not encode back", b[:AuthMinLen])
			}
		}
		if !d.HasAuth && !d.HasOrigin && head != 0 {
			t.Fatalf("%d header bytes with no header", head)
		}
		checkAlternates(t, d.Trailers)
		for _, rsSrc := range []netip.Addr{RSSourceNonCone, RSSourceCone} {
			adv, err := ParseRA(d, d.Nonce, rsSrc)
			if err != nil {
				if !errors.Is(err, ErrBadRA) {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			if packet.HopLimit(d.IPv6) != 255 || !IsTeredo(adv.Prefix.Addr()) || adv.Prefix.Bits() != 64 || adv.Mapping != d.Origin {
				t.Fatalf("accepted advertisement %+v from %x", adv, b)
			}
			if s := ServerPrefix(adv.Server); s != adv.Prefix.Masked() {
				t.Fatalf("server %v does not give prefix %v", adv.Server, adv.Prefix)
			}
		}
	})
}

// checkAlternates checks ParseAlternates on trailers: an error is
// ErrTrailer and returns nothing; alternates found encode back, but for the
// reserved field (ignored on receipt), to bytes of the trailers.
func checkAlternates(t *testing.T, trailers []byte) {
	t.Helper()
	alts, err := ParseAlternates(trailers)
	if err != nil {
		if !errors.Is(err, ErrTrailer) || len(alts.List()) != 0 {
			t.Fatalf("error %v with %v", err, alts.List())
		}
		return
	}
	list := alts.List()
	if len(list) == 0 {
		return
	}
	if len(list) > MaxAlternates {
		t.Fatalf("%d alternates", len(list))
	}
	enc := AppendAlternates(nil, list...)
	for i := range len(trailers) - len(enc) + 1 {
		at := trailers[i : i+len(enc)]
		if bytes.Equal(at[:2], enc[:2]) && bytes.Equal(at[4:], enc[4:]) {
			return
		}
	}
	t.Fatalf("alternates %v do not encode back into % x", list, trailers)
}
