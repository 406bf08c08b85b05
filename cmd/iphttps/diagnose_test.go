package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/winerr"
)

func TestDiagnoseMethodFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"diagnose"}, "--teredo-server"},
		{[]string{"diagnose", "--6to4-relay", "10.0.0.1"}, "6to4_relay: 10.0.0.1 is in 10.0.0.0/8"},
		{[]string{"diagnose", "--6to4-relay", "2001:db8::1"}, "want the DirectAccess server's public IPv4 address"},
		{[]string{"diagnose", "--teredo-server", "203.0.113.10", "--teredo-secondary", "x"}, "teredo_secondary"},
		{[]string{"diagnose", "--teredo-server", "203.0.113.10", "--teredo-echo-host", "192.0.2.1"}, "--teredo-echo-host"},
	} {
		if _, status, err := runCLI(t, c.args...); status != 1 || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: status %d, err %v; want an error with %q", c.args, status, err, c.want)
		}
	}

	// Teredo alone, with a server address that is not global: the
	// teredo-primary check says so (the client would refuse it too), no
	// IP-HTTPS checks, a verdict without a method.
	out, status, _ := runCLI(t, "diagnose", "--teredo-server", "127.0.0.1", "--json")
	var r diagnose.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	c, _ := r.Check(diagnose.CheckTeredoPrimary)
	if status != 1 || r.URL != "" || r.TeredoServer != "127.0.0.1" || c.Status != diagnose.Fail || c.Code == nil ||
		*c.Code != diagnose.Code(winerr.InvalidParameter) || r.Verdict == nil || r.Verdict.Method != "" || len(r.Verdict.Reasons) != 1 {
		t.Errorf("status %d, report:\n%s", status, out)
	}
	if _, ok := r.Check(diagnose.CheckURL); ok {
		t.Errorf("IP-HTTPS checks without a URL:\n%s", out)
	}
}
