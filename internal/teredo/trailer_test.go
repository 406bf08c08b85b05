package teredo

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// The wire form is MS-TERE section 2.2.2's, written out by hand: type 3,
// length 2+6N, two reserved bytes, then each IPv4 address and port in
// network order.
func TestAppendAlternates(t *testing.T) {
	got := AppendAlternates([]byte{0xee}, ap("10.1.0.2:40000"), ap("192.168.7.9:3544"))
	want := []byte{0xee, 3, 14, 0, 0, 10, 1, 0, 2, 0x9c, 0x40, 192, 168, 7, 9, 0x0d, 0xd8}
	if !slices.Equal(got, want) {
		t.Errorf("two entries: % x, want % x", got, want)
	}
	if got := AppendAlternates(nil); len(got) != 0 {
		t.Errorf("no entries: % x, want nothing", got)
	}
	five := []netip.AddrPort{ap("10.0.0.1:1"), ap("10.0.0.2:2"), ap("10.0.0.3:3"), ap("10.0.0.4:4"), ap("10.0.0.5:5")}
	b := AppendAlternates(nil, five...)
	if len(b) != AlternatesMaxLen || b[1] != 26 {
		t.Errorf("five entries: % x, want the first four (length 26)", b)
	}
	alts, err := ParseAlternates(b)
	if err != nil || !slices.Equal(alts.List(), five[:MaxAlternates]) {
		t.Errorf("round trip of four: %v, %v", alts.List(), err)
	}
}

func TestParseAlternates(t *testing.T) {
	one := AppendAlternates(nil, ap("10.2.0.2:5000"))
	nonce := []byte{1, 4, 1, 2, 3, 4} // RFC 6081's nonce trailer
	reserved := slices.Clone(one)
	reserved[2], reserved[3] = 0xff, 0xff // "ignored on receipt"
	cases := []struct {
		name  string
		b     []byte
		want  []netip.AddrPort
		error bool
	}{
		{"none", nil, nil, false},
		{"one", one, []netip.AddrPort{ap("10.2.0.2:5000")}, false},
		{"after another option", append(slices.Clone(nonce), one...), []netip.AddrPort{ap("10.2.0.2:5000")}, false},
		{"before another option", append(slices.Clone(one), nonce...), []netip.AddrPort{ap("10.2.0.2:5000")}, false},
		{"only other options", append(slices.Clone(nonce), 5, 0), nil, false},
		{"reserved not zero", reserved, []netip.AddrPort{ap("10.2.0.2:5000")}, false},
		{"entries kept as sent", AppendAlternates(nil, ap("0.0.0.0:0"), ap("203.0.113.5:1")),
			[]netip.AddrPort{ap("0.0.0.0:0"), ap("203.0.113.5:1")}, false},
		{"lone type byte", []byte{3}, nil, true},
		{"length past the end", []byte{3, 8, 0, 0, 10, 1, 0}, nil, true},
		{"other option past the end", []byte{1, 8, 1, 2}, nil, true},
		{"length 2: no entry", []byte{3, 2, 0, 0}, nil, true},
		{"length 9", append([]byte{3, 9}, make([]byte, 9)...), nil, true},
		{"length 32", append([]byte{3, 32}, make([]byte, 32)...), nil, true},
		{"two alternate trailers", append(slices.Clone(one), one...), nil, true},
	}
	for _, c := range cases {
		alts, err := ParseAlternates(c.b)
		if c.error {
			if !errors.Is(err, ErrTrailer) || len(alts.List()) != 0 {
				t.Errorf("%s: %v, %v; want ErrTrailer and nothing", c.name, alts.List(), err)
			}
			continue
		}
		if err != nil || !slices.Equal(alts.List(), c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, alts.List(), err, c.want)
		}
	}
}

func TestIsAlternateAddress(t *testing.T) {
	for s, want := range map[string]bool{
		"10.1.0.2:40000":      true,
		"172.16.0.1:1":        true,
		"172.31.255.254:9":    true,
		"192.168.1.20:3544":   true,
		"10.1.0.2:0":          false, // no port
		"172.32.0.1:1":        false, // outside 172.16/12
		"100.64.0.1:1":        false, // carrier NAT space: global by RFC 4380's list
		"203.0.113.5:40000":   false, // global (documentation, a lab's Internet)
		"8.8.8.8:53":          false,
		"127.0.0.1:1":         false,
		"169.254.1.1:1":       false,
		"224.0.0.253:3544":    false, // Teredo's discovery group
		"255.255.255.255:1":   false,
		"0.0.0.0:1":           false,
		"[fd00::1]:1":         false,
		"[::ffff:10.0.0.1]:1": false, // not an IPv4 address as carried in a trailer
	} {
		if got := IsAlternateAddress(ap(s)); got != want {
			t.Errorf("IsAlternateAddress(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestParseAlternatesNoAllocations(t *testing.T) {
	b := append(AppendBubble(nil, addr("2001:0:cb00:710a::1"), addr("2001:0:cb00:710a::2")),
		AppendAlternates(nil, ap("10.1.0.2:40000"), ap("10.1.0.3:40000"))...)
	n := testing.AllocsPerRun(1000, func() {
		d, err := Parse(b)
		if err != nil {
			panic(err)
		}
		alts, err := ParseAlternates(d.Trailers)
		if err != nil || len(alts.List()) != 2 {
			panic("alternates")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}
