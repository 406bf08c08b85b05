package status

import (
	"strings"
	"testing"
)

func TestWriteSixToFour(t *testing.T) {
	client := Interface{SixToFour: &SixToFourState{ServiceState: "disabled", State: "down", Relay: "203.0.113.10",
		PublicAddress: "198.51.100.130", Address: "2002:c633:6482::c633:6482", RangeTest: "passed (x)",
		MappingTest: "failed (behind a NAT)", Code: "0x2743", Reason: "behind a NAT"}}
	relay := Interface{SixToFourRelay: &SixToFourRelay{Address: "2002:cb00:710a::cb00:710a", Prefix: "2002::/16"}}
	var b strings.Builder
	if err := WriteSixToFour(&b, []Interface{client, {}, relay}); err != nil {
		t.Fatal(err)
	}
	want := "6to4 Parameters\n" + strings.Repeat("-", 45) + "\n" +
		"6to4 Service State      : disabled\n" +
		"State                   : down\n" +
		"Relay                   : 203.0.113.10\n" +
		"Public Address          : 198.51.100.130\n" +
		"6to4 Address            : 2002:c633:6482::c633:6482\n" +
		"Range Test              : passed (x)\n" +
		"Mapping Test            : failed (behind a NAT)\n" +
		"Error                   : 0x2743 behind a NAT\n" +
		"\n6to4 Parameters\n" + strings.Repeat("-", 45) + "\n" +
		"6to4 Service State      : enabled\n" +
		"Type                    : relay\n" +
		"6to4 Address            : 2002:cb00:710a::cb00:710a\n" +
		"Prefix                  : 2002::/16\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteSixToFour(&b, []Interface{{}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "6to4 Service State      : disabled\n") || strings.Count(b.String(), "6to4 Parameters") != 1 {
		t.Errorf("no 6to4 daemon:\n%s", b.String())
	}
	if got := SixToFourJSON([]Interface{client, {}, relay}); len(got) != 2 {
		t.Errorf("json: %d objects, want 2", len(got))
	}
}
