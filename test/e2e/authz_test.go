package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

// TestAuthorisation runs the server in authentication mode certificates
// with a CRL, from a configuration file it re-reads on SIGHUP:
//   - a client with a good certificate comes up; certificates from another
//     CA, expired or revoked, and no certificate at all, are refused, each
//     counted under its Windows code and logged with its reason;
//   - a new CRL takes effect on SIGHUP without touching the sessions up;
//   - changing the authentication mode disconnects every client
//     ([MS-IPHTTPS] 3.2.5), and they come back under the new mode;
//   - client isolation switched on and off by reload stops and allows
//     client-to-client traffic without disconnecting anyone.
func TestAuthorisation(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "server.toml")
	l := newLab(t, lab.Options{Prefix: "ipaz-", Clients: 5, AuthMode: "certificates", ServerConfig: cfgFile})

	good, goodKey, err := l.IssueClientCert("good", pki.Options{CommonName: "good.example.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewCA("Other CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, foreignKey, err := l.IssueClientCert("foreign", pki.Options{CommonName: "foreign.example.test"}, otherCA)
	if err != nil {
		t.Fatal(err)
	}
	expired, expiredKey, err := l.IssueClientCert("expired", pki.Options{CommonName: "expired.example.test",
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := pki.Client(l.CA(), pki.Options{CommonName: "revoked.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	revokedCert, revokedKey, err := revoked.WriteFiles(l.Dir(), "revoked")
	if err != nil {
		t.Fatal(err)
	}
	crlFile := filepath.Join(l.Dir(), "crl.pem")
	writeCRL := func(number int64, certs ...*pki.Cert) {
		t.Helper()
		var rev []*x509.Certificate
		for _, c := range certs {
			rev = append(rev, c.Cert)
		}
		crl, err := pki.CRL(l.CA(), number, time.Now().Add(24*time.Hour), rev...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crlFile, crl, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig := func(mode string, isolate bool) {
		t.Helper()
		cfg := fmt.Sprintf("auth_mode = %q\nclient_ca = %q\ncrl = [%q]\nisolate_clients = %v\n", mode, l.CAFile(), crlFile, isolate)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reload := func() {
		t.Helper()
		before := counter(t, l, "reloads")
		if err := syscall.Kill(l.PID("server"), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if got := counterReaches(t, l, "reloads", before+1); got != before+1 {
			t.Fatalf("the server did not reload (reloads %d -> %d); log:\n%s", before, got, lab.LogTail(l.LogFile("server"), 20))
		}
	}
	writeCRL(1, revoked)
	writeConfig("certificates", false)
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	fast := []string{"--reconnect-initial", "1s", "--reconnect-max", "2s"}
	clientCerts := [][2]string{{good, goodKey}, {foreign, foreignKey}, {expired, expiredKey}, {revokedCert, revokedKey}}
	for i, c := range clientCerts {
		if err := l.StartClient(i+1, append([]string{"--cert", c[0], "--key", c[1]}, fast...)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.StartClient(5, fast...); err != nil { // no certificate
		t.Fatal(err)
	}

	t.Run("Refusals", func(t *testing.T) {
		waitActive(t, l, 1)
		mustPing(t, l, l.ClientNS(1), lab.IntranetHost)
		for _, c := range []struct {
			client int
			code   uint32
			what   string
			reason string // in the server's log line
		}{
			{2, winerr.CertUntrustedRoot, "certificate from another CA", "unknown authority"},
			{3, winerr.CertExpired, "expired certificate", "expired"},
			{4, winerr.Revoked, "revoked certificate", "revoked"},
			{5, winerr.IncompleteCredentials, "no certificate", "didn't provide a certificate"},
		} {
			key := fmt.Sprintf("handshake_failures_%#x", c.code)
			if n := counterUntil(t, l, key, 1, 15*time.Second); n < 1 {
				t.Errorf("%s: counter %s = %d, want >= 1", c.what, key, n)
			}
			// One line says it all: the failure, the client, its Windows
			// code and its reason (the counter is raised just before the
			// line is written, hence the wait).
			from := lab.ClientIPv4(c.client) + ":"
			if line, ok := serverLogLine(l, 3*time.Second, func(line string) bool {
				return strings.Contains(line, `msg="TLS handshake failed"`) && strings.HasPrefix(logField(line, "client"), from) &&
					logField(line, "code") == winerr.Hex(c.code) && strings.Contains(logField(line, "err"), c.reason)
			}); ok {
				t.Logf("%s: %s", c.what, line)
			} else {
				t.Errorf("%s: the server log has no \"TLS handshake failed\" line from %s with code=%s and %q in its err; log:\n%s", c.what, lab.ClientName(c.client), winerr.Hex(c.code), c.reason, lab.LogTail(l.LogFile("server"), 20))
			}
		}
		for i := 2; i <= 5; i++ {
			if s, err := l.Status(context.Background(), lab.ClientName(i)); err == nil && lab.IsActive(s) {
				t.Errorf("%s came up with a certificate the server must refuse", lab.ClientName(i))
			}
		}
		if n := counter(t, l, "sessions_active"); n != 1 {
			t.Errorf("sessions_active %d, want 1", n)
		}
	})

	t.Run("CRLReload", func(t *testing.T) {
		before := clientSince(t, l, 1)
		total := counter(t, l, "sessions_total")
		writeCRL(2) // nothing revoked any more
		reload()
		waitActive(t, l, 4)
		if got := clientSince(t, l, 1); !got.Equal(before) {
			t.Errorf("cli1's session changed on reload (since %v -> %v)", before, got)
		}
		if got := counter(t, l, "sessions_total"); got != total+1 {
			t.Errorf("sessions_total %d -> %d, want only cli4's new session", total, got)
		}
		mustPing(t, l, l.ClientNS(4), lab.IntranetHost)
	})

	t.Run("AuthModeChange", func(t *testing.T) {
		drops := counter(t, l, "auth_mode_drops")
		writeConfig("none", false)
		reload()
		if got := counterUntil(t, l, "auth_mode_drops", drops+2, 5*time.Second); got != drops+2 {
			t.Fatalf("auth_mode_drops %d -> %d, want the 2 sessions up dropped", drops, got)
		}
		// In mode none nobody is asked for a certificate: all five come up.
		for i := 1; i <= 5; i++ {
			waitActive(t, l, i)
		}
		writeConfig("certificates", false)
		reload()
		if got := counterUntil(t, l, "auth_mode_drops", drops+7, 5*time.Second); got != drops+7 {
			t.Fatalf("auth_mode_drops %d, want %d: every session dropped on the change back", got, drops+7)
		}
		waitActive(t, l, 1)
		waitActive(t, l, 4)
		time.Sleep(3 * time.Second) // the others retry every 1-2 s
		for i := 2; i <= 5; i++ {
			if i == 4 {
				continue
			}
			if s, err := l.Status(context.Background(), lab.ClientName(i)); err == nil && lab.IsActive(s) {
				t.Errorf("%s is up again under mode certificates", lab.ClientName(i))
			}
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		a4, err := l.ClientAddr(context.Background(), 4)
		if err != nil {
			t.Fatal(err)
		}
		mustPing(t, l, l.ClientNS(1), a4.String())
		since := clientSince(t, l, 1)
		isolated := counter(t, l, "drop_isolated")
		writeConfig("certificates", true)
		reload()
		if out, err := ping(l, l.ClientNS(1), a4.String()); err == nil {
			t.Errorf("cli1 reached cli4 with isolate_clients on:\n%s", out)
		}
		if got := counter(t, l, "drop_isolated"); got < isolated+3 {
			t.Errorf("drop_isolated %d -> %d, want the 3 pings counted", isolated, got)
		}
		mustPing(t, l, l.ClientNS(1), lab.IntranetHost) // the intranet still answers
		writeConfig("certificates", false)
		reload()
		mustPing(t, l, l.ClientNS(1), a4.String())
		if got := clientSince(t, l, 1); !got.Equal(since) {
			t.Errorf("isolation changes reconnected cli1 (since %v -> %v)", since, got)
		}
	})
}

// counterUntil reads a server counter until it reaches want or limit passes.
func counterUntil(t *testing.T, l *lab.Lab, name string, want uint64, limit time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s, err := l.Status(context.Background(), "server")
		if err != nil {
			t.Fatalf("server status: %v", err)
		}
		v := s.Counters[name]
		if v >= want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverLogLine waits (at most limit) for a line of the server's log that
// match accepts, and returns it.
func serverLogLine(l *lab.Lab, limit time.Duration, match func(line string) bool) (string, bool) {
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(l.LogFile("server"))
		for _, line := range strings.Split(string(b), "\n") {
			if match(line) {
				return line, true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logField returns the value of key in a text log line (key=value, or
// key="quoted value" unquoted), "" if the line has no such field.
func logField(line, key string) string {
	i := 0
	for {
		j := strings.Index(line[i:], key+"=")
		if j < 0 {
			return ""
		}
		j += i
		if j == 0 || line[j-1] == ' ' {
			i = j + len(key) + 1
			break
		}
		i = j + 1
	}
	rest := line[i:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			u, _ := strconv.Unquote(v)
			return u
		}
		return ""
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// clientSince is when client i's interface last came up.
func clientSince(t *testing.T, l *lab.Lab, i int) time.Time {
	t.Helper()
	s, err := l.Status(context.Background(), lab.ClientName(i))
	if err != nil {
		t.Fatal(err)
	}
	if !lab.IsActive(s) {
		t.Fatalf("%s is not active: %q", lab.ClientName(i), s.InterfaceStatus)
	}
	return s.Since
}
