package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// Codes of the proxy tests, as a Windows client reports them.
const (
	codeTimedOut     = 0x274c // WSAETIMEDOUT: the server is out of reach
	codeHostNotFound = 0x2af9 // WSAHOST_NOT_FOUND: the proxy is out of reach
	codeNoData       = 0x2afc // WSANO_DATA: the proxy refused the tunnel
)

// failTimeout bounds the wait for a client to report a failure: its first
// attempt fails at once (or after --connect-timeout 3s).
const failTimeout = 20 * time.Second

// proxyLab builds a lab for a proxy test with the server running and, with
// block, the Internet router dropping the clients' direct TCP to the
// server, so only a proxy (squid runs in the router) gets through.
func proxyLab(t *testing.T, prefix string, clients int, block bool) *lab.Lab {
	t.Helper()
	requireLab(t)
	if err := lab.CheckProxyTools(); err != nil {
		t.Fatal(err)
	}
	l := newLab(t, lab.Options{Prefix: prefix, Clients: clients})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	if block {
		if err := l.BlockDirect(); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// startProxy starts a lab squid and returns its URL.
func startProxy(t *testing.T, l *lab.Lab, o lab.ProxyOptions) string {
	t.Helper()
	addr, err := l.StartProxy(o)
	if err != nil {
		t.Fatal(err)
	}
	return lab.ProxyURL(addr)
}

// cacheFile is the proxy cache of client i, in the lab directory.
func cacheFile(l *lab.Lab, i int) string {
	return filepath.Join(l.Dir(), lab.ClientName(i)+"-proxy-cache.json")
}

// startProxyClient starts client i with the proxy variables of this
// process's environment cleared, then environ ("NAME=value") set, and
// --proxy-cache in the lab directory unless extra names one: a proxy test
// never depends on the caller's environment nor touches /var/lib.
func startProxyClient(t *testing.T, l *lab.Lab, i int, environ []string, extra ...string) {
	t.Helper()
	e := append([]string{"HTTPS_PROXY=", "https_proxy=", "NO_PROXY=", "no_proxy="}, environ...)
	if !slices.Contains(extra, "--proxy-cache") {
		extra = append(extra, "--proxy-cache", cacheFile(l, i))
	}
	if err := l.StartClientEnv(i, e, extra...); err != nil {
		t.Fatal(err)
	}
}

// writeCredentials writes a --proxy-credentials file in the lab directory.
func writeCredentials(t *testing.T, l *lab.Lab, name, creds string) string {
	t.Helper()
	f := filepath.Join(l.Dir(), name)
	if err := os.WriteFile(f, []byte(creds+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// waitProxyActive waits for client i to be active through proxy (its
// status names the proxy in use, or "direct") and pings the intranet host.
func waitProxyActive(t *testing.T, l *lab.Lab, i int, proxy string) {
	t.Helper()
	s := waitActive(t, l, i)
	if s.Proxy != proxy {
		t.Errorf("%s is active with status proxy %q, want %q", lab.ClientName(i), s.Proxy, proxy)
	}
	mustPing(t, l, l.ClientNS(i), lab.IntranetHost)
}

// waitFailure waits for client i to report the failure status with code and
// a last error containing mention, and fails t if it ever was active
// meanwhile.
func waitFailure(t *testing.T, l *lab.Lab, i int, code uint32, mention string) status.Interface {
	t.Helper()
	everActive := false
	ctx, cancel := context.WithTimeout(context.Background(), failTimeout)
	defer cancel()
	s, err := l.WaitStatus(ctx, lab.ClientName(i), func(s status.Interface) bool {
		everActive = everActive || lab.IsActive(s)
		return s.InterfaceStatus == lab.StatusFailed && s.LastErrorCode != 0
	})
	if err != nil {
		t.Fatalf("%s: want interface status %q with last error code 0x%x: %v", lab.ClientName(i), lab.StatusFailed, code, err)
	}
	t.Logf("%s: %q, 0x%x, proxy %q: %s", lab.ClientName(i), s.InterfaceStatus, s.LastErrorCode, s.Proxy, s.LastError)
	if s.LastErrorCode != code {
		t.Errorf("%s: last error code 0x%x, want 0x%x (last error %q)", lab.ClientName(i), s.LastErrorCode, code, s.LastError)
	}
	if !strings.Contains(s.LastError, mention) {
		t.Errorf("%s: last error %q does not mention %q", lab.ClientName(i), s.LastError, mention)
	}
	if everActive {
		t.Errorf("%s was active before it failed", lab.ClientName(i))
	}
	return s
}

// waitAccessLog waits up to 5 s for a line of squid's access log on ip to
// match re (squid logs a tunnel when it closes).
func waitAccessLog(t *testing.T, l *lab.Lab, ip string, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(l.ProxyAccessLog(ip))
		if m := re.Find(b); m != nil {
			return string(m)
		}
		if time.Now().After(deadline) {
			t.Errorf("no line of %s matches %s after 5s:\n%s", l.ProxyAccessLog(ip), re, b)
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProxyOpen blocks the clients' direct way to the server: a client
// without a proxy must fail, one with --proxy through an open squid must
// come up, reach the intranet, and show in squid's log as a CONNECT to the
// server.
func TestProxyOpen(t *testing.T) {
	l := proxyLab(t, "ipxo-", 2, true)
	url := startProxy(t, l, lab.ProxyOptions{})
	startProxyClient(t, l, 2, nil, "--connect-timeout", "3s")
	startProxyClient(t, l, 1, nil, "--proxy", url)

	t.Run("DirectBlocked", func(t *testing.T) {
		s := waitFailure(t, l, 2, codeTimedOut, "")
		if s.Proxy != "" && s.Proxy != "direct" {
			t.Errorf("status proxy %q for a client without a proxy, want \"direct\"", s.Proxy)
		}
		if n, err := l.DirectBlocked(); err != nil || n == 0 {
			t.Errorf("the BlockDirect rule dropped %d packets (%v); want the client's attempts", n, err)
		}
	})

	t.Run("Open", func(t *testing.T) {
		waitProxyActive(t, l, 1, url)
		if err := l.StopClient(1); err != nil {
			t.Errorf("stop %s: %v", lab.ClientName(1), err)
		}
		line := waitAccessLog(t, l, lab.ProxyAddr, regexp.MustCompile(`(?m)^.* `+regexp.QuoteMeta(lab.ClientIPv4(1))+` TCP_TUNNEL/200 \d+ CONNECT `+regexp.QuoteMeta(lab.ServerName+":443")+` .*$`))
		t.Logf("squid: %s", line)
	})
}

// TestProxyAuth runs squid with Basic authentication: the right credentials
// from --proxy-credentials and from HTTPS_PROXY bring the tunnel up, wrong
// or missing ones get 407, which the client reports as 0x2afc.
func TestProxyAuth(t *testing.T) {
	l := proxyLab(t, "ipxa-", 4, true)
	url := startProxy(t, l, lab.ProxyOptions{Auth: true})
	good := writeCredentials(t, l, "good.credentials", lab.ProxyUser+":"+lab.ProxyPassword)
	bad := writeCredentials(t, l, "bad.credentials", lab.ProxyUser+":wrong")
	// The clients with the right password first: squid checks the
	// concurrent logins of one user name with one helper lookup, so a
	// wrong password sent at the same moment could fail the right one.
	startProxyClient(t, l, 1, nil, "--proxy", url, "--proxy-credentials", good)
	startProxyClient(t, l, 3, []string{"HTTPS_PROXY=http://" + lab.ProxyUser + ":" + lab.ProxyPassword + "@" + lab.ProxyAddr + ":3128"})
	t.Run("CredentialsFile", func(t *testing.T) { waitProxyActive(t, l, 1, url) })
	t.Run("Environment", func(t *testing.T) { waitProxyActive(t, l, 3, url) })

	startProxyClient(t, l, 2, nil, "--proxy", url, "--proxy-credentials", bad)
	startProxyClient(t, l, 4, nil, "--proxy", url)
	t.Run("WrongCredentials", func(t *testing.T) { waitFailure(t, l, 2, codeNoData, "407") })
	t.Run("NoCredentials", func(t *testing.T) { waitFailure(t, l, 4, codeNoData, "407") })
	t.Run("AccessLog", func(t *testing.T) {
		for _, i := range []int{1, 3} {
			if err := l.StopClient(i); err != nil {
				t.Errorf("stop %s: %v", lab.ClientName(i), err)
			}
			waitAccessLog(t, l, lab.ProxyAddr, regexp.MustCompile(`(?m)^.* `+regexp.QuoteMeta(lab.ClientIPv4(i))+` TCP_TUNNEL/200 \d+ CONNECT `+regexp.QuoteMeta(lab.ServerName+":443")+` `+lab.ProxyUser+` .*$`))
		}
		waitAccessLog(t, l, lab.ProxyAddr, regexp.MustCompile(`(?m)^.* `+regexp.QuoteMeta(lab.ClientIPv4(2))+` TCP_DENIED/407 .*$`))
	})
}

// TestProxyForbidden runs a squid whose policy refuses CONNECT to the
// server: 403, which the client reports as 0x2afc.
func TestProxyForbidden(t *testing.T) {
	l := proxyLab(t, "ipxf-", 1, true)
	url := startProxy(t, l, lab.ProxyOptions{DenyServer: true})
	startProxyClient(t, l, 1, nil, "--proxy", url)
	s := waitFailure(t, l, 1, codeNoData, "403")
	if s.Proxy != url {
		t.Errorf("status proxy %q, want %q", s.Proxy, url)
	}
	waitAccessLog(t, l, lab.ProxyAddr, regexp.MustCompile(`(?m)^.* TCP_DENIED/403 \d+ CONNECT `+regexp.QuoteMeta(lab.ServerName+":443")+` .*$`))
}

// TestProxyUnreachable configures proxies that cannot be reached, one whose
// squid is down (connection refused) and one whose name does not resolve:
// the client reports 0x2af9.
func TestProxyUnreachable(t *testing.T) {
	l := proxyLab(t, "ipxu-", 2, true)
	url := startProxy(t, l, lab.ProxyOptions{})
	// The address stays on the router: connections to it are refused.
	if err := l.StopProxy(lab.ProxyAddr); err != nil {
		t.Fatal(err)
	}
	startProxyClient(t, l, 1, nil, "--proxy", url)
	startProxyClient(t, l, 2, nil, "--proxy", "http://proxy.example.test:3128")
	t.Run("Refused", func(t *testing.T) { waitFailure(t, l, 1, codeHostNotFound, "proxy") })
	t.Run("UnknownName", func(t *testing.T) { waitFailure(t, l, 2, codeHostNotFound, "proxy") })
}

// TestProxyCache runs a client through proxy B until it works (the cache
// remembers B), then configures proxy A, which is down: the client must
// come up through the cached B. `iphttps proxy show` prints B, and after
// `iphttps proxy reset` no longer does.
func TestProxyCache(t *testing.T) {
	l := proxyLab(t, "ipxc-", 1, true)
	urlA := startProxy(t, l, lab.ProxyOptions{Addr: lab.ProxyAddr})
	if err := l.StopProxy(lab.ProxyAddr); err != nil { // A is down: refused
		t.Fatal(err)
	}
	urlB := startProxy(t, l, lab.ProxyOptions{Addr: lab.ProxyAddr2})
	cache := cacheFile(l, 1)

	startProxyClient(t, l, 1, nil, "--proxy", urlB)
	waitProxyActive(t, l, 1, urlB)
	if err := l.StopClient(1); err != nil {
		t.Fatalf("stop %s: %v", lab.ClientName(1), err)
	}
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("the client did not write its proxy cache: %v", err)
	}
	t.Logf("%s: %s", cache, strings.TrimSpace(string(b)))

	t.Run("CachedFirst", func(t *testing.T) {
		startProxyClient(t, l, 1, nil, "--proxy", urlA, "--proxy-cache", cache)
		defer func() {
			if err := l.StopClient(1); err != nil {
				t.Errorf("stop %s: %v", lab.ClientName(1), err)
			}
		}()
		waitProxyActive(t, l, 1, urlB)
	})

	t.Run("ShowReset", func(t *testing.T) {
		out := proxyCmd(t, "show", "--proxy-cache", cache)
		t.Logf("iphttps proxy show --proxy-cache %s:%s", cache, out)
		if !strings.Contains(out, urlB) {
			t.Errorf("iphttps proxy show does not print the cached %s:\n%s", urlB, out)
		}
		var shown struct {
			Cached string `json:"cached"`
		}
		js := proxyCmd(t, "show", "--proxy-cache", cache, "--json")
		if err := json.Unmarshal([]byte(js), &shown); err != nil || shown.Cached != urlB {
			t.Errorf("iphttps proxy show --json: cached %q (%v), want %q:\n%s", shown.Cached, err, urlB, js)
		}
		proxyCmd(t, "reset", "--proxy-cache", cache)
		if out := proxyCmd(t, "show", "--proxy-cache", cache); strings.Contains(out, urlB) {
			t.Errorf("iphttps proxy show still prints %s after reset:\n%s", urlB, out)
		}
	})
}

// proxyCmd runs `iphttps proxy args...` (bounded) without proxy variables
// in its environment and returns its output; a failure fails t.
func proxyCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(requireLab(t), append([]string{"proxy"}, args...)...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
		k, _, _ := strings.Cut(e, "=")
		return strings.EqualFold(k, "https_proxy") || strings.EqualFold(k, "no_proxy")
	})
	out, err := runBounded(cmd, 30*time.Second)
	if err != nil {
		t.Fatalf("iphttps proxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestProxyNoProxy leaves the direct way open and points HTTPS_PROXY at a
// proxy that does not run: with NO_PROXY naming the server the client goes
// direct; without it, it tries the proxy and fails.
func TestProxyNoProxy(t *testing.T) {
	l := proxyLab(t, "ipxn-", 2, false)
	dead := "HTTPS_PROXY=" + lab.ProxyURL(lab.ProxyAddr)
	startProxyClient(t, l, 1, []string{dead, "NO_PROXY=" + lab.ServerName})
	startProxyClient(t, l, 2, []string{dead})
	t.Run("Exempt", func(t *testing.T) { waitProxyActive(t, l, 1, "direct") })
	t.Run("NotExempt", func(t *testing.T) {
		s := waitFailure(t, l, 2, codeHostNotFound, "proxy")
		if want := lab.ProxyURL(lab.ProxyAddr); s.Proxy != want {
			t.Errorf("status proxy %q, want %q", s.Proxy, want)
		}
	})
}
