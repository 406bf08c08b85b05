package e2e

import (
	"strings"
	"testing"

	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/winerr"
)

// TestDiagnoseProxy runs diagnose through a real squid that requires Basic
// authentication, with direct access to the server blocked: without
// credentials it names the 407, with wrong ones too, with an unreachable
// proxy 0x2af9, and with the right credentials every check passes through
// the proxy.
func TestDiagnoseProxy(t *testing.T) {
	l := proxyLab(t, "ipdp-", 1, true)
	url := startProxy(t, l, lab.ProxyOptions{Auth: true})
	good := writeCredentials(t, l, "good.credentials", lab.ProxyUser+":"+lab.ProxyPassword)
	bad := writeCredentials(t, l, "bad.credentials", lab.ProxyUser+":wrong")
	base := append([]string{lab.ServerURL, "--timeout", "5s"}, diagnoseArgs(l, 1)...)

	for _, c := range []struct {
		name string
		args []string
		code uint32
		mark string
	}{
		{"NoCredentials", []string{"--proxy", url}, winerr.NoData, "407"},
		{"WrongCredentials", []string{"--proxy", url, "--proxy-credentials", bad}, winerr.NoData, "407"},
		{"Unreachable", []string{"--proxy", "http://192.0.2.99:3128"}, winerr.HostNotFound, "192.0.2.99"},
	} {
		r, exit := diagnoseJSON(t, l, 1, append(base, c.args...)...)
		p, _ := r.Check(diagnose.CheckProxy)
		t.Logf("%s: exit %d, failed %q, code %s: %s", c.name, exit, r.Failed, r.Code, p.Cause)
		if exit != 1 || r.Failed != diagnose.CheckProxy || uint32(r.Code) != c.code || !strings.Contains(p.Cause, c.mark) || p.Fix == "" {
			t.Errorf("%s: want the proxy check to fail with %s mentioning %q and a remedy", c.name, winerr.Hex(c.code), c.mark)
		}
	}
	r, exit := diagnoseJSON(t, l, 1, append(base, "--proxy", url, "--proxy-credentials", good)...)
	p, _ := r.Check(diagnose.CheckProxy)
	route, _ := p.Saw.Get("route in use")
	t.Logf("with credentials: exit %d, %s, proxy route %q", exit, r.Result, route)
	if exit != 0 || r.Result != diagnose.Pass || !strings.Contains(route, "192.0.2.") {
		t.Errorf("through the proxy with credentials: exit %d, result %s, route %q", exit, r.Result, route)
		for _, c := range r.Checks {
			if c.Status != diagnose.Pass {
				t.Logf("%s %s: %s", c.Name, c.Status, c.Cause)
			}
		}
	}
}
