package status

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// SixToFourState is a 6to4 client's state for `iphttps show 6to4`. Windows'
// `netsh interface 6to4 show state` prints one line, "6to4 Service State";
// everything else is iphttps' own: the address, the relay and the three
// tests that decide whether 6to4 may carry traffic (docs/6to4.md).
type SixToFourState struct {
	// ServiceState is Windows' line: "enabled" while 6to4 carries
	// traffic, "disabled" when a test refused it (Reason says why).
	ServiceState string `json:"ServiceState"`
	// State is the client's progress: "testing", "up" or "down".
	State         string `json:"State"`
	Relay         string `json:"Relay"`
	PublicAddress string `json:"PublicAddress,omitempty"`
	Address       string `json:"Address,omitempty"` // the 6to4 address
	// The tests: "passed (...)", "failed (...)" or "not run (...)".
	RangeTest        string    `json:"RangeTest,omitempty"`
	MappingTest      string    `json:"MappingTest,omitempty"`
	ReachabilityTest string    `json:"ReachabilityTest,omitempty"`
	LastTest         time.Time `json:"LastTest,omitzero"`
	// Code and Reason: the failure that took 6to4 down (Code in hex).
	Code   string `json:"Code,omitempty"`
	Reason string `json:"Reason,omitempty"`
}

// SixToFourRelayState is a server's 6to4 side in `iphttps show 6to4`.
type SixToFourRelayState struct {
	ServiceState string `json:"ServiceState"` // "enabled"
	Type         string `json:"Type"`         // "relay"
	Address      string `json:"Address"`
	Prefix       string `json:"Prefix"`
}

// SixToFourDisabled is shown when no daemon on this machine runs 6to4.
var SixToFourDisabled = SixToFourState{ServiceState: "disabled", Reason: "no iphttps daemon runs 6to4 (client --6to4-relay or server --6to4)"}

// SixToFourJSON is the data of `iphttps show 6to4 --json`: one object per
// daemon that runs 6to4 (empty when none does).
func SixToFourJSON(ifs []Interface) []any {
	out := []any{}
	for _, s := range ifs {
		switch {
		case s.SixToFour != nil:
			out = append(out, *s.SixToFour)
		case s.SixToFourRelay != nil:
			out = append(out, SixToFourRelayState{ServiceState: "enabled", Type: "relay", Address: s.SixToFourRelay.Address, Prefix: s.SixToFourRelay.Prefix})
		}
	}
	return out
}

// WriteSixToFour prints the 6to4 state of the daemons in ifs, one block per
// daemon that runs 6to4, in the layout of the Teredo block (header, 45
// dashes, "label : value" with a 23-character label column): the first
// line is Windows' "6to4 Service State", the others iphttps' own. A line
// whose value is not known is left out.
func WriteSixToFour(w io.Writer, ifs []Interface) error {
	return writeBlocks(w, "6to4 Parameters", ifs, func(b *strings.Builder, s Interface) bool {
		switch {
		case s.SixToFour != nil:
			writeSixToFourClient(b, *s.SixToFour)
		case s.SixToFourRelay != nil:
			teredoLine(b, "6to4 Service State", "enabled")
			teredoLine(b, "Type", "relay")
			teredoLine(b, "6to4 Address", s.SixToFourRelay.Address)
			teredoLine(b, "Prefix", s.SixToFourRelay.Prefix)
		default:
			return false
		}
		return true
	}, func(b *strings.Builder) { writeSixToFourClient(b, SixToFourDisabled) })
}

func writeSixToFourClient(b *strings.Builder, s SixToFourState) {
	teredoLine(b, "6to4 Service State", s.ServiceState)
	teredoLine(b, "State", s.State)
	teredoLine(b, "Relay", s.Relay)
	teredoLine(b, "Public Address", s.PublicAddress)
	teredoLine(b, "6to4 Address", s.Address)
	teredoLine(b, "Range Test", s.RangeTest)
	teredoLine(b, "Mapping Test", s.MappingTest)
	teredoLine(b, "Reachability Test", s.ReachabilityTest)
	if !s.LastTest.IsZero() {
		teredoLine(b, "Last Test", s.LastTest.Local().Format(time.DateTime))
	}
	if s.Code != "" {
		teredoLine(b, "Error", fmt.Sprintf("%s %s", s.Code, s.Reason))
	} else {
		teredoLine(b, "Reason", s.Reason)
	}
}
