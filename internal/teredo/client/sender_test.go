package client

import (
	"net/netip"
	"testing"
)

// TestSenderReusesSpareMessages: the batch's spare capacity holds messages
// that were never used (append grows it beyond what was filled); adding
// into them after a flush must work (it once indexed their empty
// buffers and crashed the client under bulk traffic).
func TestSenderReusesSpareMessages(t *testing.T) {
	var x sender
	to := netip.MustParseAddrPort("198.51.100.2:40000")
	p := make([]byte, 40)
	for round := range 3 {
		for range 5 + round*7 {
			x.add(p, to)
		}
		for i, m := range x.ms {
			if len(m.Buffers) != 1 || len(m.Buffers[0]) != len(p) || m.Addr == nil {
				t.Fatalf("round %d, message %d: %+v", round, i, m)
			}
		}
		x.ms = x.ms[:0] // what flush leaves
	}
}
