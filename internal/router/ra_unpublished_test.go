package router

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// An unpublished prefix is neither offered for addresses nor routed.
func TestUnpublishedPrefix(t *testing.T) {
	pfx := netip.MustParsePrefix("2001:db8:1::/64")
	for _, unpublished := range []bool{false, true} {
		r, err := New(Config{Prefix: pfx, Routes: []netip.Prefix{netip.MustParsePrefix("2001:db8:c0::/64")}, Unpublished: unpublished})
		if err != nil {
			t.Fatal(err)
		}
		var pio, rioForPrefix, rios int
		for _, o := range r.raMessage().Options {
			switch o := o.(type) {
			case *ndp.PrefixInformation:
				pio++
			case *ndp.RouteInformation:
				rios++
				if o.Prefix == pfx.Addr() {
					rioForPrefix++
				}
			}
		}
		if want := map[bool]int{false: 1, true: 0}[unpublished]; pio != want || rioForPrefix != want {
			t.Errorf("unpublished=%v: %d prefix options, %d routes for the prefix; want %d", unpublished, pio, rioForPrefix, want)
		}
		if rios-rioForPrefix != 1 {
			t.Errorf("unpublished=%v: the intranet route is missing", unpublished)
		}
	}
}
