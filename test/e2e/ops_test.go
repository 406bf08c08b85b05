package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/status"
)

// TestOperations runs the server the way contrib/systemd/iphttps-server.service
// does, as an unprivileged user with only CAP_NET_ADMIN and
// CAP_NET_BIND_SERVICE, with Prometheus metrics on, and checks:
//   - it serves clients on port 443 with nothing more;
//   - SIGHUP loads a renewed certificate (same files, new contents) while a
//     client pings through the tunnel without losing a packet or its
//     session, and new connections get the new certificate;
//   - /metrics agrees with `show statistics`;
//   - SIGTERM tells every client goodbye, removes the TUN device and exits
//     0 within the shutdown timeout.
func TestOperations(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipop-", Clients: 2})
	unit, err := os.ReadFile(filepath.Join("..", "..", "contrib", "systemd", "iphttps-server.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		want := key + "=CAP_NET_ADMIN CAP_NET_BIND_SERVICE"
		if !strings.Contains(string(unit), want+"\n") {
			t.Fatalf("the systemd unit no longer says %q: this test runs the server with exactly those", want)
		}
	}
	const metricsAddr = "127.0.0.1:9443"
	home, err := l.StartServerAs(nobody, nobody, lab.ServerCaps, "--metrics-listen", metricsAddr, "--shutdown-timeout", "3s")
	if err != nil {
		t.Fatal(err)
	}
	pid := l.PID("server")
	st := procStatus(t, pid)
	if st["Uid"] != fmt.Sprintf("%d\t%d\t%d\t%d", nobody, nobody, nobody, nobody) {
		t.Fatalf("server Uid %q, want %d", st["Uid"], nobody)
	}
	const wantCaps = 1<<12 | 1<<10 // CAP_NET_ADMIN, CAP_NET_BIND_SERVICE
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		v, _ := strconv.ParseUint(st[k], 16, 64)
		if v != wantCaps {
			t.Fatalf("server %s %#x, want %#x (only CAP_NET_ADMIN and CAP_NET_BIND_SERVICE)", k, v, wantCaps)
		}
	}
	t.Logf("server pid %d runs as uid %d with capabilities %#x", pid, nobody, uint64(wantCaps))
	for i := 1; i <= 2; i++ {
		if err := l.StartClient(i); err != nil {
			t.Fatal(err)
		}
		waitActive(t, l, i)
	}
	mustPing(t, l, l.ClientNS(1), lab.IntranetHost)

	t.Run("CertificateReload", func(t *testing.T) {
		old := serverFingerprint(t, l)
		since := clientSince(t, l, 1)
		total := counter(t, l, "sessions_total")
		// A renewed certificate: same name, new key, written over the
		// files the server was started with.
		c, err := pki.Server(l.CA(), pki.Options{CommonName: lab.ServerName})
		if err != nil {
			t.Fatal(err)
		}
		certPEM := c.CertPEM()
		keyPEM, err := c.KeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		pingDone := make(chan string, 1)
		go func() {
			out, _ := l.Exec(l.ClientNS(1), "ping", "-6", "-i", "0.05", "-c", "100", "-W", "1", lab.IntranetHost)
			pingDone <- string(out)
		}()
		time.Sleep(1500 * time.Millisecond)
		if err := os.WriteFile(filepath.Join(home, "server.pem"), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "server.key"), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if got := counterUntil(t, l, "reloads", 1, 5*time.Second); got != 1 {
			t.Fatalf("reloads = %d after SIGHUP; log:\n%s", got, lab.LogTail(l.LogFile("server"), 20))
		}
		out := <-pingDone
		sent, recv := pingCounts(out)
		t.Logf("ping through the reload: %d sent, %d received", sent, recv)
		if sent != 100 || recv != sent {
			t.Errorf("packets lost across the reload: %d of %d received\n%s", recv, sent, out)
		}
		if got := clientSince(t, l, 1); !got.Equal(since) {
			t.Errorf("cli1's session was replaced by the reload (since %v -> %v)", since, got)
		}
		if got := counter(t, l, "sessions_total"); got != total {
			t.Errorf("sessions_total %d -> %d: a session was dropped by the reload", total, got)
		}
		sum := sha256.Sum256(c.DER)
		nw := serverFingerprint(t, l)
		if nw != hex.EncodeToString(sum[:]) || nw == old {
			t.Errorf("after the reload new connections get certificate %s, want the renewed %x (old %s)", nw, sum, old)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		// The status is read just before and just after the scrape: a
		// traffic counter may grow in between (RAs, pings), so the scrape
		// must lie between the two reads, and it must be above 0 (the
		// pings above went through every one of them), so an exporter
		// stuck at 0 does not pass.
		before := serverCounters(t, l)
		hc := &http.Client{Transport: &http.Transport{DialContext: lab.Dialer(l.NS(lab.RoleEdge))}, Timeout: 5 * time.Second}
		resp, err := hc.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		after := serverCounters(t, l)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %s", resp.Status)
		}
		m := parseMetrics(string(b))
		// Counters that do not move while the test is idle: equal to
		// the status on both sides.
		steady := map[string]string{
			"iphttps_server_sessions_active": "sessions_active",
			"iphttps_server_sessions_total":  "sessions_total",
			"iphttps_server_reloads_total":   "reloads",
		}
		traffic := map[string]string{
			"iphttps_server_packets_from_clients_total": "packets_from_clients",
			"iphttps_server_bytes_from_clients_total":   "bytes_from_clients",
			"iphttps_server_packets_to_host_total":      "packets_to_host",
			"iphttps_server_packets_from_host_total":    "packets_from_host",
			"iphttps_server_packets_to_clients_total":   "packets_to_clients",
		}
		for metric, key := range steady {
			v, ok := m[metric]
			if !ok {
				t.Errorf("/metrics has no %s", metric)
				continue
			}
			if v != float64(before[key]) || v != float64(after[key]) {
				t.Errorf("%s = %v, show statistics %s = %d before the scrape, %d after", metric, v, key, before[key], after[key])
			}
		}
		for metric, key := range traffic {
			v, ok := m[metric]
			if !ok {
				t.Errorf("/metrics has no %s", metric)
				continue
			}
			lo, hi := before[key], after[key]
			if v < float64(lo) || v > float64(hi) || v <= 0 {
				t.Errorf("%s = %v, want it > 0 and between show statistics %s before (%d) and after (%d) the scrape", metric, v, key, lo, hi)
			}
		}
		if m["iphttps_server_sessions_active"] != 2 {
			t.Errorf("sessions_active metric %v, want 2", m["iphttps_server_sessions_active"])
		}
		if _, ok := m["process_resident_memory_bytes"]; !ok {
			t.Error("/metrics lacks the process metrics")
		}
	})

	t.Run("GracefulShutdown", func(t *testing.T) {
		start := time.Now()
		if err := l.StopServer(); err != nil {
			t.Fatalf("SIGTERM: %v\n%s", err, lab.LogTail(l.LogFile("server"), 20))
		}
		took := time.Since(start)
		t.Logf("server exited 0 %s after SIGTERM", took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("shutdown took %s, more than the 3 s shutdown timeout and then some", took)
		}
		links, err := lab.Links(context.Background(), l.NS(lab.RoleEdge), "tun")
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 0 {
			t.Errorf("TUN devices left in the edge namespace: %v", links)
		}
		// The clients learn at once, from a TLS close_notify, not after a
		// timeout.
		for i := 1; i <= 2; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			s, err := l.WaitStatus(ctx, lab.ClientName(i), func(s status.Interface) bool { return !lab.IsActive(s) })
			cancel()
			if err != nil {
				t.Errorf("%s still active 3 s after the server shut down", lab.ClientName(i))
				continue
			}
			t.Logf("%s: %q, 0x%x", lab.ClientName(i), s.InterfaceStatus, s.LastErrorCode)
			// A TLS close_notify makes the client's read end with a plain
			// EOF; a connection closed without it gives "unexpected EOF".
			cl, _ := os.ReadFile(l.LogFile(lab.ClientName(i)))
			if !strings.Contains(string(cl), `lost: EOF"`) {
				t.Errorf("%s did not get a TLS close_notify from the server; its log:\n%s", lab.ClientName(i), lab.LogTail(l.LogFile(lab.ClientName(i)), 4))
			}
		}
		logText, _ := os.ReadFile(l.LogFile("server"))
		if !strings.Contains(string(logText), "shutting down: disconnecting clients") {
			t.Error("the server log does not say it disconnected its clients")
		}
	})
}

// serverCounters returns every counter of the server's status, failing t
// if one of those compared with /metrics is missing.
func serverCounters(t *testing.T, l *lab.Lab) map[string]uint64 {
	t.Helper()
	s, err := l.Status(context.Background(), "server")
	if err != nil {
		t.Fatalf("server status: %v", err)
	}
	for _, k := range []string{"sessions_active", "sessions_total", "reloads", "packets_from_clients", "bytes_from_clients", "packets_to_host", "packets_from_host", "packets_to_clients"} {
		if _, ok := s.Counters[k]; !ok {
			t.Fatalf("server status has no counter %q (counters: %v)", k, s.Counters)
		}
	}
	return s.Counters
}

// procStatus reads /proc/PID/status into a map.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// serverFingerprint dials the server from client 2's namespace and returns
// the SHA-256 of the certificate it presents.
func serverFingerprint(t *testing.T, l *lab.Lab) string {
	t.Helper()
	dial := lab.Dialer(l.ClientNS(2))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := dial(ctx, "tcp", net.JoinHostPort(lab.ServerIPv4, "443"))
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) // only the fingerprint is wanted
	defer c.Close()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingCounts returns the sent and received counts of ping's summary.
func pingCounts(out string) (sent, recv int) {
	m := pingSummary.FindStringSubmatch(out)
	if m == nil {
		return -1, -1
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv
}

// parseMetrics reads the unlabelled samples of a Prometheus text page.
func parseMetrics(page string) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(page, "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			m[name] = v
		}
	}
	return m
}
