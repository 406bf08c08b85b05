package e2e

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
)

// kbScenario is one cause from the knowledge base, reproduced in the lab:
// what a running client must show, and what diagnose must conclude.
type kbScenario struct {
	name string
	// setup prepares the cause (and returns the client's URL and extra
	// client arguments); undo puts the lab back.
	setup func(t *testing.T, l *lab.Lab) (url string, args []string)
	undo  func(t *testing.T, l *lab.Lab)

	code   uint32 // Last Error Code of the client, and diagnose's code
	status string // Interface Status of the client
	check  string // the check diagnose fails (empty: healthy)
	mark   string // text the failing check's cause (or fix) must contain
}

// TestKBScenarios reproduces every cause of the IP-HTTPS knowledge-base
// articles in one lab and checks, for each, what
// `iphttps show`'s data says (status string and code) and what `iphttps
// diagnose` concludes (failing check, code, cause). Then it checks that no
// scenario's diagnosis fits another scenario.
func TestKBScenarios(t *testing.T) {
	requireLab(t)
	if err := lab.CheckProxyTools(); err != nil {
		t.Fatal(err)
	}
	l := newLab(t, lab.Options{Prefix: "ipkb-", Clients: 1,
		DNSArgs: []string{`--txt-record=noaddr.example.test,"a name without an address record"`}})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	cert := func(t *testing.T, base string, o pki.Options, ca *pki.Cert) []string {
		c, k, err := l.IssueServerCert(base, o, ca)
		if err != nil {
			t.Fatal(err)
		}
		return []string{"--cert", c, "--key", k}
	}
	// restartServer runs the server with extra arguments for one scenario;
	// normalServer brings back the lab's own.
	restartServer := func(t *testing.T, extra ...string) {
		t.Helper()
		if err := l.StopServer(); err != nil {
			t.Fatal(err)
		}
		if err := l.StartServer(extra...); err != nil {
			t.Fatal(err)
		}
	}
	normalServer := func(t *testing.T, _ *lab.Lab) { restartServer(t) }
	host := lab.ServerName
	now := time.Now()

	scenarios := []kbScenario{
		{name: "Healthy", code: winerr.Success, status: winerr.StatusActive},
		{name: "SubjectMismatch",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				restartServer(t, cert(t, "cn-other", pki.Options{CommonName: "other.example.test", DNSNames: []string{host}}, nil)...)
				return "", nil
			},
			undo: normalServer, code: winerr.NoMoreItems, status: winerr.StatusNoCertificate,
			check: diagnose.CheckCertName, mark: "does not match"},
		{name: "SubjectExtraInformation",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				restartServer(t, cert(t, "cn-extra", pki.Options{CommonName: host + ", O=Example Corp", DNSNames: []string{host}}, nil)...)
				return "", nil
			},
			undo: normalServer, code: winerr.NoMoreItems, status: winerr.StatusNoCertificate,
			check: diagnose.CheckCertName, mark: "extra information"},
		{name: "WrongSAN",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				restartServer(t, cert(t, "san-other", pki.Options{CommonName: host, DNSNames: []string{"other.example.test"}}, nil)...)
				return "", nil
			},
			undo: normalServer, code: winerr.NoMoreItems, status: winerr.StatusNoCertificate,
			check: diagnose.CheckCertName, mark: "subject alternative names"},
		{name: "UntrustedRoot",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				restartServer(t, cert(t, "untrusted", pki.Options{CommonName: host}, other)...)
				return "", nil
			},
			undo: normalServer, code: winerr.CertUntrustedRoot, status: winerr.StatusWaiting,
			check: diagnose.CheckCertChain},
		{name: "Expired",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				restartServer(t, cert(t, "expired", pki.Options{CommonName: host, NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(0, 0, -1)}, nil)...)
				return "", nil
			},
			undo: normalServer, code: winerr.CertExpired, status: winerr.StatusWaiting,
			check: diagnose.CheckCertValidity},
		{name: "NameDoesNotResolve",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				return "https://nx.example.test/IPHTTPS", nil
			},
			code: winerr.HostNotFound, status: winerr.StatusWaiting, check: diagnose.CheckDNS, mark: "NXDOMAIN"},
		{name: "NameWithoutAddress",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				return "https://noaddr.example.test/IPHTTPS", nil
			},
			code: winerr.NoData, status: winerr.StatusWaiting, check: diagnose.CheckDNS, mark: "no address"},
		{name: "FirewallDrops443",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				if err := l.BlockDirect(); err != nil {
					t.Fatal(err)
				}
				return "", nil
			},
			undo: func(t *testing.T, l *lab.Lab) {
				if err := l.UnblockDirect(); err != nil {
					t.Fatal(err)
				}
			},
			code: winerr.TimedOut, status: winerr.StatusWaiting, check: diagnose.CheckTCP},
		{name: "PortClosed",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				if err := l.StopServer(); err != nil {
					t.Fatal(err)
				}
				return "", nil
			},
			undo: func(t *testing.T, l *lab.Lab) {
				if err := l.StartServer(); err != nil {
					t.Fatal(err)
				}
			},
			code: winerr.ConnRefused, status: winerr.StatusWaiting, check: diagnose.CheckTCP},
		{name: "IPLiteralURL",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				return "https://" + lab.ServerIPv4 + "/IPHTTPS", nil
			},
			code: winerr.InvalidNetName, status: winerr.StatusInvalidURL, check: diagnose.CheckURL, mark: "IP address"},
		{name: "IPHTTPSDisabledOnServer",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				restartServer(t, "--path", "/not-iphttps")
				return "", nil
			},
			undo: normalServer, code: winerr.NoData, status: winerr.StatusWaiting, check: diagnose.CheckPOST, mark: "404"},
		{name: "NoPrefixPublished",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				restartServer(t, "--publish-prefix=false")
				return "", nil
			},
			undo: normalServer, code: winerr.NoData, status: winerr.StatusWaiting, check: diagnose.CheckRA, mark: "prefix"},
		{name: "ProxyRefusesConnect",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				return "", []string{"--proxy", startProxy(t, l, lab.ProxyOptions{DenyServer: true})}
			},
			undo: func(t *testing.T, l *lab.Lab) {
				if err := l.StopProxy(lab.ProxyAddr); err != nil {
					t.Fatal(err)
				}
			},
			code: winerr.NoData, status: winerr.StatusWaiting, check: diagnose.CheckProxy, mark: "403"},
		{name: "DuplicateInterface",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				if out, err := l.Exec(l.ClientNS(1), "ip", "tuntap", "add", "dev", "iphttps0", "mode", "tun"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				return "", nil
			},
			undo: func(t *testing.T, l *lab.Lab) {
				if out, err := l.Exec(l.ClientNS(1), "ip", "link", "del", "iphttps0"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			},
			code: winerr.DupName, status: winerr.StatusCreateFailure, check: diagnose.CheckInterface, mark: "iphttps0"},
		{name: "IPv6Disabled",
			setup: func(t *testing.T, l *lab.Lab) (string, []string) {
				sysctlIPv6(t, l, "1")
				return "", nil
			},
			undo: func(t *testing.T, l *lab.Lab) { sysctlIPv6(t, l, "0") },
			code: winerr.InstallFailure, status: winerr.StatusCreateFailure,
			check: diagnose.CheckIPv6, mark: "disable_ipv6"},
	}

	reports := make([]diagnose.Report, len(scenarios))
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			url, args := lab.ServerURL, []string(nil)
			if sc.setup != nil {
				var u string
				if u, args = sc.setup(t, l); u != "" {
					url = u
				}
			}
			if sc.undo != nil {
				defer sc.undo(t, l)
			}
			// What a running client shows.
			clientArgs := append([]string{"--reconnect-initial", "1s", "--reconnect-max", "2s",
				"--connect-timeout", "3s", "--ra-timeout", "3s"}, args...)
			if err := l.StartClientURL(1, url, clientArgs...); err != nil {
				t.Fatal(err)
			}
			s := waitCode(t, l, sc.code, sc.status)
			t.Logf("show interfaces: %q, Last Error Code %s: %s", s.InterfaceStatus, winerr.Hex(s.LastErrorCode), s.LastError)
			if strings.Count(s.LastError, winerr.Hex(s.LastErrorCode)) > 1 {
				t.Errorf("client's Last Error repeats its code: %q", s.LastError)
			}
			if err := l.StopClient(1); err != nil {
				t.Errorf("client stop: %v", err)
			}

			// What diagnose concludes.
			dargs := append([]string{url, "--timeout", "5s"}, diagnoseArgs(l, 1)...)
			dargs = append(dargs, args...)
			r, exit := diagnoseJSON(t, l, 1, dargs...)
			reports[i] = r
			failing, _ := r.Check(sc.check)
			t.Logf("diagnose: %s, failed %q, code %s: %s", r.Result, r.Failed, r.Code, failing.Cause)
			if sc.check == "" {
				if exit != 0 || r.Result != diagnose.Pass || r.Code != 0 || r.InterfaceStatus != winerr.StatusActive {
					t.Fatalf("healthy: exit %d, result %s, code %s, status %q", exit, r.Result, r.Code, r.InterfaceStatus)
				}
				for _, c := range r.Checks {
					if c.Status != diagnose.Pass {
						t.Errorf("healthy: %s %s (%s)", c.Name, c.Status, c.Cause)
					}
				}
				return
			}
			if exit != 1 || r.Result != diagnose.Fail {
				t.Errorf("exit %d, result %s; want 1, FAIL", exit, r.Result)
			}
			if !sc.matches(r) {
				t.Errorf("diagnosed as failed %q code %s (check %s: %s %s, cause %q); want %s %s mentioning %q",
					r.Failed, r.Code, sc.check, failing.Status, failing.Code, failing.Cause, sc.check, winerr.Hex(sc.code), sc.mark)
			}
			if r.InterfaceStatus != sc.status {
				t.Errorf("diagnose's interface status %q, want %q", r.InterfaceStatus, sc.status)
			}
			if failing.Fix == "" {
				t.Errorf("no remedy for %s", sc.check)
			}
		})
	}
	// No scenario is diagnosed as a different one.
	for i, r := range reports {
		if r.Checks == nil {
			continue // that scenario failed already
		}
		for j, sc := range scenarios {
			if i != j && sc.check != "" && sc.matches(r) {
				t.Errorf("the diagnosis of %s also fits %s", scenarios[i].name, sc.name)
			}
		}
	}
	t.Run("ServerRefusesToStart", func(t *testing.T) { serverRefusals(t, l) })
}

// matches reports whether r is this scenario's diagnosis: the failing check
// and code, and the mark in the check's cause or what it saw.
func (sc kbScenario) matches(r diagnose.Report) bool {
	if r.Failed != sc.check || uint32(r.Code) != sc.code {
		return false
	}
	c, ok := r.Check(sc.check)
	if !ok || c.Status != diagnose.Fail {
		return false
	}
	if sc.mark == "" {
		return true
	}
	return strings.Contains(c.Cause+" "+c.Reason, sc.mark)
}

// waitCode waits for client 1 to show code and status.
func waitCode(t *testing.T, l *lab.Lab, code uint32, want string) status.Interface {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := l.WaitStatus(ctx, lab.ClientName(1), func(s status.Interface) bool {
		if code == winerr.Success {
			return lab.IsActive(s)
		}
		return s.LastErrorCode == code && s.InterfaceStatus == want
	})
	if err != nil {
		t.Fatalf("client: want %q with %s: %v", want, winerr.Hex(code), err)
	}
	return s
}

func sysctlIPv6(t *testing.T, l *lab.Lab, v string) {
	t.Helper()
	for _, k := range []string{"all", "default"} {
		if out, err := l.Exec(l.ClientNS(1), "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6="+v); err != nil {
			t.Fatalf("sysctl: %v\n%s", err, out)
		}
	}
}

// serverRefusals: the port is taken, or the certificate cannot be loaded:
// the server refuses to start with one clear line carrying the code.
func serverRefusals(t *testing.T, l *lab.Lab) {
	edge := l.NS(lab.RoleEdge)
	ln, err := lab.Listen(edge, "tcp", net.JoinHostPort(lab.ServerIPv4, "8443"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		name string
		args []string
		code uint32
	}{
		{"PortTaken", []string{"--listen", net.JoinHostPort(lab.ServerIPv4, "8443")}, winerr.AddrInUse},
		{"CertificateMissing", []string{"--cert", "/nonexistent/server.pem"}, winerr.FileNotFound},
	} {
		argv := append(l.ServerArgs(), c.args...)
		argv = append(argv, "--interface", "iphttps-srv2", "--control-socket", l.SocketFile("server2"))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", edge}, argv...)...)
		out, err := cmd.CombinedOutput()
		cancel()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Logf("%s: exit %v: %s", c.name, err, out)
		if err == nil || exitCode(err) <= 0 {
			t.Errorf("%s: the server started (or was killed): %v", c.name, err)
			continue
		}
		if len(lines) != 1 || !strings.Contains(lines[0], winerr.Hex(c.code)) {
			t.Errorf("%s: want one line with %s, got:\n%s", c.name, winerr.Hex(c.code), out)
		}
	}
}
