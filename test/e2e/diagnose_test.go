package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/winerr"
)

// diagnoseArgs are the arguments for client i's settings in the lab: its
// CA, its control socket (to find the owner of its interface) and a proxy
// cache of the test's own.
func diagnoseArgs(l *lab.Lab, i int) []string {
	return []string{"--ca", l.CAFile(),
		"--control-socket", l.SocketFile(lab.ClientName(i)),
		"--proxy-cache", filepath.Join(l.Dir(), "diagnose-proxy-cache.json"),
	}
}

// runDiagnose runs `iphttps diagnose args...` in client i's namespace, with
// the proxy variables of this process's environment cleared, and returns
// its stdout, stderr and exit status.
func runDiagnose(t *testing.T, l *lab.Lab, i int, args ...string) (string, string, int) {
	t.Helper()
	return runDiagnoseIn(t, l.ClientNS(i), args...)
}

// runDiagnoseIn is runDiagnose in namespace ns.
func runDiagnoseIn(t *testing.T, ns string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"netns", "exec", ns, requireLab(t), "diagnose"}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.Env = append(os.Environ(), "HTTPS_PROXY=", "https_proxy=", "NO_PROXY=", "no_proxy=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		if code = exitCode(err); code < 0 {
			t.Fatalf("iphttps diagnose: %v\n%s", err, stderr.String())
		}
	}
	return stdout.String(), stderr.String(), code
}

// diagnoseJSON runs runDiagnose with --json and decodes the report.
func diagnoseJSON(t *testing.T, l *lab.Lab, i int, args ...string) (diagnose.Report, int) {
	t.Helper()
	return diagnoseJSONIn(t, l.ClientNS(i), args...)
}

// diagnoseJSONIn is diagnoseJSON in namespace ns.
func diagnoseJSONIn(t *testing.T, ns string, args ...string) (diagnose.Report, int) {
	t.Helper()
	out, errOut, code := runDiagnoseIn(t, ns, append(args, "--json")...)
	var r diagnose.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("diagnose --json printed no report (%v); stdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	return r, code
}

// TestDiagnose runs `iphttps diagnose` from a client namespace against the
// lab server by name: healthy, every check passes and the exit status is 0;
// with the server stopped, TCP is refused (0x274d), the later checks are
// skipped and the exit status is 1.
func TestDiagnose(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipdg-", Clients: 1})
	startLab(t, l) // the client owns iphttps0: the interface check must see that

	t.Run("Healthy", func(t *testing.T) {
		out, errOut, code := runDiagnose(t, l, 1, append([]string{lab.ServerURL}, diagnoseArgs(l, 1)...)...)
		t.Logf("iphttps diagnose %s:\n%s%s", lab.ServerURL, out, errOut)
		if code != 0 {
			t.Fatalf("exit status %d, want 0", code)
		}
		// The same from the client's configuration file, as JSON.
		conf := filepath.Join(l.Dir(), "diagnose-client.toml")
		toml := fmt.Sprintf("url = %q\nca = %q\ncontrol_socket = %q\nproxy_cache = %q\n", lab.ServerURL, l.CAFile(),
			l.SocketFile(lab.ClientName(1)), filepath.Join(l.Dir(), "diagnose-proxy-cache.json"))
		if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		r, code := diagnoseJSON(t, l, 1, "--config", conf)
		if code != 0 || r.Result != diagnose.Pass || r.Code != 0 || r.InterfaceStatus != winerr.StatusActive {
			t.Errorf("report: exit %d, result %s, code %s, status %q", code, r.Result, r.Code, r.InterfaceStatus)
		}
		if len(r.Checks) != len(diagnose.CheckNames()) {
			t.Errorf("%d checks, want %d", len(r.Checks), len(diagnose.CheckNames()))
		}
		for i, c := range r.Checks {
			if c.Name != diagnose.CheckNames()[i] {
				t.Errorf("check %d is %s, want %s", i, c.Name, diagnose.CheckNames()[i])
			}
			if c.Status != diagnose.Pass {
				t.Errorf("%s: %s (%s; %s), want PASS", c.Name, c.Status, c.Cause, c.Reason)
			}
		}
		saw := func(check, key, sub string) {
			t.Helper()
			c, _ := r.Check(check)
			if v, _ := c.Saw.Get(key); !strings.Contains(v, sub) {
				t.Errorf("%s saw %s = %q, want %q in it", check, key, v, sub)
			}
		}
		saw(diagnose.CheckDNS, "addresses", lab.ServerIPv4)
		saw(diagnose.CheckInterface, "owner", "running iphttps client")
		saw(diagnose.CheckTCP, lab.ServerIPv4+":443", "connected")
		saw(diagnose.CheckCertName, "subject", "CN="+lab.ServerName)
		saw(diagnose.CheckPOST, "status line", "HTTP/1.1 200 OK")
		saw(diagnose.CheckPOST, "Server", "Microsoft-HTTPAPI/2.0")
		saw(diagnose.CheckRA, "prefix", lab.LinkPrefix)
		saw(diagnose.CheckRA, "MTU", "1280")
		saw(diagnose.CheckRA, "routes", lab.IntranetPrefix)
	})

	t.Run("ServerStopped", func(t *testing.T) {
		if err := l.StopServer(); err != nil {
			t.Fatalf("server stop: %v", err)
		}
		out, errOut, code := runDiagnose(t, l, 1, append([]string{lab.ServerURL}, diagnoseArgs(l, 1)...)...)
		t.Logf("with the server stopped:\n%s%s", out, errOut)
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		r, code := diagnoseJSON(t, l, 1, append([]string{lab.ServerURL}, diagnoseArgs(l, 1)...)...)
		if code != 1 || r.Result != diagnose.Fail || r.Failed != diagnose.CheckTCP || r.Code != diagnose.Code(winerr.ConnRefused) {
			t.Fatalf("report: exit %d, result %s, failed %s, code %s; want 1, FAIL, tcp, 0x274d", code, r.Result, r.Failed, r.Code)
		}
		after := false
		for _, c := range r.Checks {
			switch {
			case c.Name == diagnose.CheckTCP:
				after = true
				if c.InterfaceStatus != winerr.StatusWaiting || c.Fix == "" {
					t.Errorf("tcp: status %q, fix %q", c.InterfaceStatus, c.Fix)
				}
			case after:
				if c.Status != diagnose.Skipped || c.Reason != "tcp failed" {
					t.Errorf("%s: %s %q, want SKIPPED because tcp failed", c.Name, c.Status, c.Reason)
				}
			default:
				if c.Status != diagnose.Pass {
					t.Errorf("%s: %s, want PASS", c.Name, c.Status)
				}
			}
		}
	})
}
