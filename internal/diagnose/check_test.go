package diagnose

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/winerr"
)

func step(name string, needs []string, c Check) Step {
	return Step{Name: name, Title: "title of " + name, Needs: needs, Run: func(context.Context) Check { return c }}
}

func TestRunnerSkipsWhatNeedsAFailure(t *testing.T) {
	steps := []Step{
		step("a", nil, pass(nil, "")),
		step("b", []string{"a"}, fail(winerr.ConnRefused, nil, "refused", "start it")),
		step("c", []string{"b"}, pass(nil, "")),
		step("d", []string{"c"}, pass(nil, "")),
		step("e", []string{"a"}, warn(winerr.RevocationOffline, nil, "offline", "")),
		step("f", nil, notApplicable(nil, "does not apply")),
		step("g", []string{"f"}, pass(nil, "")),
	}
	var seen []string
	r := Runner{Explain: winerr.Explain, Progress: func(c Check) { seen = append(seen, c.Name) }}
	got := r.Run(context.Background(), steps)
	if strings.Join(seen, "") != "abcdefg" {
		t.Errorf("progress saw %v", seen)
	}
	want := map[string]Status{"a": Pass, "b": Fail, "c": Skipped, "d": Skipped, "e": Warn, "f": Skipped, "g": Pass}
	for _, c := range got {
		if c.Status != want[c.Name] {
			t.Errorf("%s: %s, want %s", c.Name, c.Status, want[c.Name])
		}
		if c.Title != "title of "+c.Name {
			t.Errorf("%s: title %q", c.Name, c.Title)
		}
	}
	if got[2].Reason != "b failed" || got[3].Reason != "b failed" {
		t.Errorf("skip reasons %q, %q; want both to name b", got[2].Reason, got[3].Reason)
	}
	if got[2].Code != nil {
		t.Errorf("a skipped check has a code")
	}
	b := got[1]
	if b.InterfaceStatus != winerr.StatusWaiting || b.Symbol != "WSAECONNREFUSED" || len(b.Remedies) == 0 {
		t.Errorf("failed check: status %q symbol %q remedies %v", b.InterfaceStatus, b.Symbol, b.Remedies)
	}
	rep := newReport(Options{URL: "u"}, time.Now(), time.Second, got)
	if rep.Result != Fail || rep.Failed != "b" || rep.Code != Code(winerr.ConnRefused) || rep.ExitCode() != 1 {
		t.Errorf("report: %s %s %s exit %d", rep.Result, rep.Failed, rep.Code, rep.ExitCode())
	}
}

func TestRunnerTimeoutAndInterrupt(t *testing.T) {
	slow := Step{Name: "slow", Run: func(ctx context.Context) Check {
		<-ctx.Done()
		return fail(winerr.TimedOut, nil, ctx.Err().Error(), "")
	}}
	r := Runner{Timeout: 50 * time.Millisecond}
	start := time.Now()
	got := r.Run(context.Background(), []Step{slow, step("next", nil, pass(nil, ""))})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("per-check timeout not applied: %v", d)
	}
	wantCheck(t, got[0], Fail, int64(winerr.TimedOut))
	wantCheck(t, got[1], Pass, 0)

	ctx, cancel := context.WithCancel(context.Background())
	interrupt := Step{Name: "i", Run: func(context.Context) Check {
		cancel()
		return fail(winerr.NoData, nil, "", "")
	}}
	got = r.Run(ctx, []Step{interrupt, step("after", nil, pass(nil, ""))})
	if got[0].Status != Skipped || got[1].Status != Skipped || !strings.Contains(got[1].Reason, "interrupted") {
		t.Fatalf("after an interrupt: %+v", got)
	}
}

func TestReportResult(t *testing.T) {
	r := newReport(Options{URL: "u"}, time.Now(), 0, []Check{pass(nil, ""), warn(winerr.CertExpired, nil, "", "")})
	if r.Result != Warn || r.ExitCode() != 0 || r.Code != 0 || r.InterfaceStatus != winerr.StatusActive {
		t.Errorf("warn-only report: %+v", r)
	}
	r = newReport(Options{URL: "u"}, time.Now(), 0, []Check{pass(nil, "")})
	if r.Result != Pass || r.ExitCode() != 0 {
		t.Errorf("pass report: %+v", r)
	}
}

func TestCheckNamesStable(t *testing.T) {
	names := func(o Options) string {
		var names []string
		for _, st := range (&session{o: o}).steps() {
			names = append(names, st.Name)
		}
		return strings.Join(names, " ")
	}
	if got := names(Options{URL: "u"}); got != strings.Join(CheckNames(), " ") {
		t.Errorf("steps %v\nnames %v", got, CheckNames())
	}
	// The other methods' checks come first, in DirectAccess's order.
	all := Options{URL: "u", SixToFourRelay: netip.MustParseAddr("203.0.113.10"), TeredoServer: "203.0.113.10"}
	want := append(append(append([]string{CheckIPv6, CheckTUN, CheckInterface}, SixToFourCheckNames()...), TeredoCheckNames()...), CheckNames()[3:]...)
	if got := names(all); got != strings.Join(want, " ") {
		t.Errorf("steps %v\nwant  %v", got, want)
	}
	// Without a URL, no IP-HTTPS checks.
	all.URL = ""
	if got := names(all); strings.Contains(got, CheckURL) || !strings.HasSuffix(got, CheckTeredoRelay) {
		t.Errorf("without a URL: steps %v", got)
	}
}

func TestJSONLayout(t *testing.T) {
	var saw Facts
	saw.Add("zeta", "1")
	saw.Add("alpha", 2)
	saw.Add("zeta", "3") // replaces, keeps the place
	c := fail(winerr.CertUntrustedRoot, saw, "cause", "fix")
	c.Name, c.Title, c.InterfaceStatus = CheckCertChain, "t", winerr.StatusWaiting
	r := newReport(Options{URL: "https://da.example.test/IPHTTPS"}, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), time.Second, []Check{c, {Name: CheckPOST, Status: Skipped, Reason: "cert-chain failed"}})
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	js := b.String()
	for _, want := range []string{`"schema": 1`, `"result": "FAIL"`, `"failed": "cert-chain"`, `"code": "0x800b0109"`,
		`"saw": {`, `"zeta": "3",`, `"name": "iphttps-post"`, `"reason": "cert-chain failed"`} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
	if strings.Index(js, `"zeta"`) > strings.Index(js, `"alpha"`) {
		t.Errorf("facts out of order:\n%s", js)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Code != Code(winerr.CertUntrustedRoot) || back.Checks[0].Saw[0] != (Fact{"zeta", "3"}) || back.Checks[1].Code != nil {
		t.Errorf("round trip: %+v", back)
	}
}

func TestTextLayout(t *testing.T) {
	var saw Facts
	saw.Add("203.0.113.10:443", "refused")
	c := fail(winerr.ConnRefused, saw, "nothing listens", "start the server")
	c.Name, c.Title, c.InterfaceStatus, c.Symbol, c.Remedies = CheckTCP, "TCP", winerr.StatusWaiting, "WSAECONNREFUSED", []string{"look"}
	r := newReport(Options{URL: "https://x/IPHTTPS"}, time.Now(), time.Second, []Check{c, {Name: CheckTLS, Title: "TLS", Status: Skipped, Reason: "tcp failed"}})
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"FAIL    tcp", "0x274d", "saw     203.0.113.10:443: refused", "cause   nothing listens",
		"fix     start the server", "remedy  - look", "SKIPPED tls", "reason  tcp failed", "Result: FAIL at tcp: 0x274d"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}
