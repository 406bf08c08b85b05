package diagnose

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/winerr"
)

// named returns c called name.
func named(name string, c Check) Check {
	c.Name = name
	return c
}

func TestVerdict(t *testing.T) {
	all := Options{URL: "https://da.example.test/IPHTTPS", SixToFourRelay: netip.MustParseAddr("203.0.113.10"), TeredoServer: "203.0.113.10"}
	ok := func(names ...string) []Check {
		var cs []Check
		for _, n := range names {
			cs = append(cs, named(n, pass(nil, "")))
		}
		return cs
	}
	platform := ok(CheckIPv6, CheckTUN, CheckInterface)
	ipHTTPS := ok(ipHTTPSCheckNames()...)
	teredo := ok(TeredoCheckNames()...)
	cases := []struct {
		name   string
		o      Options
		checks []Check
		method string
		why    string // the reasons: "method check code cause"
	}{
		{"6to4 works", all, concat(platform, ok(SixToFourCheckNames()...), teredo, ipHTTPS), MethodSixToFour, ""},
		{"6to4 untested without CAP_NET_RAW, the mapping not run", all, concat(platform, ok(Check6to4Address),
			[]Check{named(Check6to4Mapping, notApplicable(nil, "not run: no Teredo server")),
				named(Check6to4Reachability, notApplicable(nil, "needs CAP_NET_RAW"))}, teredo, ipHTTPS),
			MethodTeredo, "6to4 6to4-reachability - needs CAP_NET_RAW"},
		{"only IP-HTTPS", all, concat(platform,
			[]Check{named(Check6to4Address, fail(winerr.NetUnreach, nil, "private", "")),
				named(Check6to4Mapping, Check{Status: Skipped, Reason: "6to4-address failed"}),
				named(Check6to4Reachability, Check{Status: Skipped, Reason: "6to4-address failed"})},
			ok(CheckTeredoPrimary), []Check{named(CheckTeredoSecondary, warn(winerr.TimedOut, nil, "silent", "")),
				named(CheckTeredoNAT, fail(winerr.TimedOut, nil, "unknown", "")),
				named(CheckTeredoRelay, Check{Status: Skipped, Reason: "teredo-nat failed"})}, ipHTTPS),
			MethodIPHTTPS, "6to4 6to4-address 0x2743 private; Teredo teredo-nat 0x274c unknown"},
		{"no TUN device: nothing works", all, concat([]Check{named(CheckIPv6, pass(nil, "")),
			named(CheckTUN, fail(winerr.InstallFailure, nil, "no tun", "")), named(CheckInterface, pass(nil, ""))},
			ok(SixToFourCheckNames()...), teredo, ipHTTPS),
			"", "6to4 platform-tun 0x643 no tun; Teredo platform-tun 0x643 no tun; IP-HTTPS platform-tun 0x643 no tun"},
		{"Teredo alone, failed", Options{TeredoServer: "203.0.113.10"}, concat(platform,
			[]Check{named(CheckTeredoPrimary, fail(winerr.TimedOut, nil, "blocked", ""))}),
			"", "Teredo teredo-primary 0x274c blocked"},
	}
	for _, c := range cases {
		v := verdict(c.o, c.checks)
		var why []string
		for _, r := range v.Reasons {
			code := "-"
			if r.Code != nil {
				code = r.Code.String()
			}
			why = append(why, strings.Join([]string{r.Method, r.Check, code, r.Cause}, " "))
		}
		if v.Method != c.method || strings.Join(why, "; ") != c.why {
			t.Errorf("%s: verdict %q, reasons %q; want %q, %q", c.name, v.Method, why, c.method, c.why)
		}
	}
}

func concat(lists ...[]Check) []Check {
	var out []Check
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// The report of a diagnosis with the other methods: their names, the
// verdict in JSON and text; a failed 6to4 or Teredo check has no IP-HTTPS
// Interface Status. An IP-HTTPS diagnosis alone has no verdict.
func TestVerdictLayout(t *testing.T) {
	o := Options{URL: "https://da.example.test/IPHTTPS", SixToFourRelay: netip.MustParseAddr("203.0.113.10"), TeredoServer: "teredo.example.test"}
	mapping := methodFail(Check6to4Mapping, winerr.NetUnreach, nil, "behind a NAT", "use Teredo")
	mapping.Name, mapping.Title = Check6to4Mapping, "mapping"
	checks := []Check{mapping, named(CheckTeredoNAT, pass(nil, "")), named(CheckRA, pass(nil, ""))}
	r := newReport(o, time.Now(), time.Second, checks)
	if r.Result != Fail || r.Failed != Check6to4Mapping || r.InterfaceStatus != "" || r.Verdict == nil || r.Verdict.Method != MethodTeredo {
		t.Fatalf("report %+v", r)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"6to4_relay": "203.0.113.10"`, `"teredo_server": "teredo.example.test"`, `"verdict": {`,
		`"method": "Teredo"`, `"reasons": [`, `"check": "6to4-mapping"`, `"code": "0x2743"`, `"cause": "behind a NAT"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b.String())
		}
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Verdict == nil || back.Verdict.Reasons[0].Code == nil ||
		*back.Verdict.Reasons[0].Code != Code(winerr.NetUnreach) {
		t.Errorf("round trip: %v %+v", err, back.Verdict)
	}
	b.Reset()
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DirectAccess diagnosis: 6to4 (relay 203.0.113.10), Teredo (server teredo.example.test), IP-HTTPS (https://da.example.test/IPHTTPS)",
		"Verdict: Teredo would carry the traffic", "not 6to4: 6to4-mapping 0x2743: behind a NAT",
		"Result: FAIL at 6to4-mapping: 0x2743 (2 passed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}

	r = newReport(Options{URL: "https://x/IPHTTPS"}, time.Now(), time.Second, []Check{named(CheckRA, pass(nil, ""))})
	b.Reset()
	WriteJSON(&b, r)
	if r.Verdict != nil || strings.Contains(b.String(), "verdict") || strings.Contains(b.String(), "6to4") || r.Title() != "IP-HTTPS diagnosis of https://x/IPHTTPS" {
		t.Errorf("IP-HTTPS alone: %s\n%s", r.Title(), b.String())
	}
}

// The range test needs no privilege: an address that is not public fails
// with 0x2743 naming its range.
func TestCheck6to4AddressNotPublic(t *testing.T) {
	c, local := check6to4Address(netip.MustParseAddr("127.0.0.2"), true)
	wantCheck(t, c, Fail, int64(winerr.NetUnreach))
	if local != netip.MustParseAddr("127.0.0.1") || !strings.Contains(c.Cause, "127.0.0.0/8, loopback") || c.Fix == "" || len(c.Remedies) == 0 {
		t.Errorf("local %v, cause %q, fix %q, remedies %q", local, c.Cause, c.Fix, c.Remedies)
	}
}

// Every note's check is a 6to4 or Teredo check, and the notes say what
// every FAIL code of those checks means.
func TestMethodNotes(t *testing.T) {
	checks := strings.Join(append(SixToFourCheckNames(), TeredoCheckNames()...), " ")
	for _, n := range methodNotes {
		if !strings.Contains(checks, n.Check) || n.Meaning == "" || len(n.Remedies) == 0 {
			t.Errorf("note %+v", n)
		}
		if _, ok := winerr.Explain(n.code); !ok {
			t.Errorf("note for %s: %s is not a known code", n.Check, winerr.Hex(n.code))
		}
	}
	for _, c := range []struct {
		check string
		code  uint32
	}{
		{Check6to4Address, winerr.NetUnreach}, {Check6to4Mapping, winerr.NetUnreach}, {Check6to4Reachability, winerr.TimedOut},
		{CheckTeredoPrimary, winerr.TimedOut}, {CheckTeredoPrimary, winerr.NoData}, {CheckTeredoPrimary, winerr.HostNotFound},
		{CheckTeredoSecondary, winerr.TimedOut}, {CheckTeredoNAT, winerr.NoData}, {CheckTeredoNAT, winerr.TimedOut},
		{CheckTeredoRelay, winerr.TimedOut},
	} {
		if methodRemedies(c.check, c.code) == nil {
			t.Errorf("no note for %s %s", c.check, winerr.Hex(c.code))
		}
	}
}
