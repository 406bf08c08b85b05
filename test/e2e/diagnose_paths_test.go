package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/winerr"
)

// labHosts makes name resolve to addr in namespace ns (the 6to4 lab has no
// name server): /etc/netns/NS/hosts, which `ip netns exec` puts over
// /etc/hosts, removed when t ends.
func labHosts(t *testing.T, ns, name, addr string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n"+addr+" "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDiagnosePaths runs `iphttps diagnose` with all three of the server's
// methods (6to4 relay, Teredo server, IP-HTTPS URL), as a DirectAccess
// client would try them, from the 6to4 lab's clients: a public client is
// carried by 6to4; behind a NAT the mapping test fails (0x2743) and
// Teredo would carry the traffic; with protocol 41 filtered the
// reachability test fails (0x274c) and Teredo would carry it. The Teredo
// checks qualify with the server and ping the intranet host through it;
// IP-HTTPS passes in every case.
func TestDiagnosePaths(t *testing.T) {
	l := newSixToFourLab(t, lab.SixToFourOptions{Prefix: "ip6d-",
		Clients: []lab.SixToFourKind{lab.SixToFourPublic, lab.SixToFourNAT, lab.SixToFourFiltered}})
	startSixToFourServerWithTeredo(t, l)
	server := l.ServerIPv4().String()
	// --self-signed writes its certificate next to the control socket.
	ca := filepath.Join(filepath.Dir(l.ServerSocket()), "self-signed-"+lab.ServerName+".pem")
	args := []string{"--6to4-relay", server, "--6to4-lab", "--teredo-server", server, "--teredo-lab",
		"--teredo-echo-host", l.IntranetHost().String(), "--ca", ca,
		"--proxy-cache", filepath.Join(l.Dir(), "diagnose-proxy-cache.json"), lab.ServerURL}

	type want struct {
		verdict string
		failed  string // the 6to4 check that fails ("" for none)
		code    uint32
		cause   []string // in the failed check's cause
		nat     string   // teredo-nat's NAT
	}
	cases := []struct {
		name string
		i    int
		want want
	}{
		{"public", 1, want{verdict: diagnose.MethodSixToFour, nat: "none (global connectivity)"}},
		{"nat", 2, want{verdict: diagnose.MethodTeredo, failed: diagnose.Check6to4Mapping, code: winerr.NetUnreach,
			cause: []string{"behind a NAT", l.ClientIPv4(2).String(), l.ClientPublicIPv4(2).String()}, nat: "restricted"}},
		{"filtered", 3, want{verdict: diagnose.MethodTeredo, failed: diagnose.Check6to4Reachability, code: winerr.TimedOut,
			cause: []string{"protocol 41 is blocked"}, nat: "none (global connectivity)"}},
	}
	for _, c := range cases {
		labHosts(t, l.ClientNS(c.i), lab.ServerName, server)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := l.ClientNS(c.i)
			r, code := diagnoseJSONIn(t, ns, args...)
			w := c.want
			wantExit := 0
			if w.failed != "" {
				wantExit = 1
			}
			if code != wantExit || r.SixToFourRelay != server || r.TeredoServer != server || r.URL != lab.ServerURL {
				t.Errorf("exit %d (want %d), 6to4 relay %q, Teredo server %q, URL %q", code, wantExit, r.SixToFourRelay, r.TeredoServer, r.URL)
			}
			names := append(append([]string{diagnose.CheckIPv6, diagnose.CheckTUN, diagnose.CheckInterface},
				diagnose.SixToFourCheckNames()...), diagnose.TeredoCheckNames()...)
			names = append(names, diagnose.CheckNames()[3:]...)
			if len(r.Checks) != len(names) {
				t.Fatalf("%d checks, want %d: %+v", len(r.Checks), len(names), r.Checks)
			}
			for k, ch := range r.Checks {
				wantStatus := diagnose.Pass
				switch {
				case ch.Name == w.failed:
					wantStatus = diagnose.Fail
				case ch.Name == diagnose.Check6to4Reachability && w.failed == diagnose.Check6to4Mapping:
					wantStatus = diagnose.Skipped
				}
				if ch.Name != names[k] || ch.Status != wantStatus {
					t.Errorf("check %d: %s %s (%s%s), want %s %s", k, ch.Name, ch.Status, ch.Cause, ch.Reason, names[k], wantStatus)
				}
			}
			if w.failed != "" {
				ch, _ := r.Check(w.failed)
				if ch.Code == nil || uint32(*ch.Code) != w.code || ch.Fix == "" || ch.InterfaceStatus != "" || len(ch.Remedies) == 0 {
					t.Errorf("%s: code %v, fix %q, interface status %q, remedies %q", ch.Name, ch.Code, ch.Fix, ch.InterfaceStatus, ch.Remedies)
				}
				for _, sub := range w.cause {
					if !strings.Contains(ch.Cause, sub) {
						t.Errorf("%s: cause %q lacks %q", ch.Name, ch.Cause, sub)
					}
				}
				if r.Result != diagnose.Fail || r.Failed != w.failed || uint32(r.Code) != w.code || r.InterfaceStatus != "" {
					t.Errorf("report: %s at %s %s %q", r.Result, r.Failed, r.Code, r.InterfaceStatus)
				}
			}
			natCheck, _ := r.Check(diagnose.CheckTeredoNAT)
			if nat, _ := natCheck.Saw.Get("NAT"); nat != w.nat {
				t.Errorf("teredo-nat saw NAT %q, want %q", nat, w.nat)
			}
			relay, _ := r.Check(diagnose.CheckTeredoRelay)
			if v, _ := relay.Saw.Get("echo reply"); !strings.Contains(v, "relayed by "+server+":3544") {
				t.Errorf("teredo-relay saw echo reply %q", v)
			}
			v := r.Verdict
			switch {
			case v == nil:
				t.Fatal("no verdict")
			case v.Method != w.verdict:
				t.Errorf("verdict %q, want %q: %+v", v.Method, w.verdict, v.Reasons)
			case w.failed == "" && len(v.Reasons) != 0:
				t.Errorf("verdict reasons %+v, want none", v.Reasons)
			case w.failed != "" && (len(v.Reasons) != 1 || v.Reasons[0].Method != diagnose.MethodSixToFour ||
				v.Reasons[0].Check != w.failed || v.Reasons[0].Code == nil || uint32(*v.Reasons[0].Code) != w.code || v.Reasons[0].Cause == ""):
				t.Errorf("verdict reasons %+v, want 6to4's %s %s", v.Reasons, w.failed, winerr.Hex(w.code))
			}

			if c.name != "nat" {
				return
			}
			out, errOut, code := runDiagnoseIn(t, ns, args...)
			t.Logf("iphttps diagnose %s in %s:\n%s%s", strings.Join(args, " "), ns, out, errOut)
			for _, s := range []string{"DirectAccess diagnosis: 6to4 (relay " + server + "), Teredo (server " + server + "), IP-HTTPS (" + lab.ServerURL + ")",
				"FAIL    6to4-mapping", "SKIPPED 6to4-reachability", "reason  6to4-mapping failed", "PASS    teredo-nat",
				"Verdict: Teredo would carry the traffic", "not 6to4: 6to4-mapping 0x2743: behind a NAT",
				"Result: FAIL at 6to4-mapping: 0x2743 ("} {
				if !strings.Contains(out, s) {
					t.Errorf("text report lacks %q", s)
				}
			}
			if code != 1 {
				t.Errorf("text report: exit %d, want 1", code)
			}
		})
	}
}
