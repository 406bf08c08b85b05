package scale

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/bench/docsection"
	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/loadgen"
	"github.com/iphttps/iphttps/internal/pki"
)

func TestParseGCTrace(t *testing.T) {
	log := `time=2026-01-01T00:00:00Z level=WARN msg="using a self-signed certificate"
gc 1 @0.012s 1%: 0.010+0.5+0.003 ms clock, 0.02+0.1/0.2/0+0.006 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 2 @3.500s 0%: 0.03+2.1+0.02 ms clock, 0.06+0.3/1.9/0.5+0.04 ms cpu, 80->82->60 MB, 84 MB goal, 12 MB stacks, 0 MB globals, 2 P
gc 3 @7.25s 0%: 0.03+2.1+0.02 ms clock, 0.06+0.3/1.9/0.5+0.04 ms cpu, 120->121->118 MB, 122 MB goal, 35 MB stacks, 0 MB globals, 2 P (forced)
not a gc line
`
	pts := parseGCTrace(strings.NewReader(log))
	if len(pts) != 3 {
		t.Fatalf("got %d points: %+v", len(pts), pts)
	}
	if p := pts[1]; p.At != 3500*time.Millisecond || p.LiveMB != 60 || p.StacksMB != 12 {
		t.Fatalf("point 2: %+v", p)
	}
	if p := pts[2]; p.At != 7250*time.Millisecond || p.LiveMB != 118 || p.StacksMB != 35 {
		t.Fatalf("point 3: %+v", p)
	}
}

func TestOpenedAtAndSlope(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	samples := []progressSample{{t0, 0}, {t0.Add(time.Second), 100}, {t0.Add(3 * time.Second), 500}}
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{-time.Second, 0}, {0, 0}, {500 * time.Millisecond, 50}, {time.Second, 100}, {2 * time.Second, 300}, {10 * time.Second, 500}} {
		if got := openedAt(samples, t0.Add(c.at)); got != c.want {
			t.Errorf("openedAt(%v) = %v, want %v", c.at, got, c.want)
		}
	}
	if got := openedAt(nil, t0); got != 0 {
		t.Errorf("no samples: %v", got)
	}
	b, ok := slope([]float64{0, 100, 200, 300}, []float64{10, 30, 50, 70})
	if !ok || math.Abs(b-0.2) > 1e-9 {
		t.Fatalf("slope %v %v", b, ok)
	}
	if _, ok := slope([]float64{5, 5}, []float64{1, 2}); ok {
		t.Fatal("slope with one distinct x")
	}
	if _, ok := slope([]float64{1}, []float64{1}); ok {
		t.Fatal("slope of one point")
	}
}

func TestDocSection(t *testing.T) {
	begin, end := docsection.Markers(docSection)
	path := filepath.Join(t.TempDir(), "performance.md")
	for _, body := range []string{"first\n", "second\n"} {
		if err := docsection.UpdateFile(path, docSection, body, docsection.PerformanceTemplate); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, begin+"\nsecond\n"+end) || strings.Contains(s, "first") ||
		!strings.Contains(s, "<!-- throughput:begin -->\n<!-- throughput:end -->") {
		t.Fatalf("document:\n%s", s)
	}
	b, err = os.ReadFile("../../../docs/performance.md")
	if err != nil {
		t.Fatal("docs/performance.md is tracked, so it must be there:", err)
	}
	if _, err := docsection.Replace(string(b), docSection, "x"); err != nil {
		t.Errorf("docs/performance.md: %v", err)
	}
}

func TestPortRangeAndSources(t *testing.T) {
	lo, hi, err := parsePortRange("32768\t60999")
	if err != nil || lo != 32768 || hi != 60999 {
		t.Fatalf("%d %d %v", lo, hi, err)
	}
	for _, bad := range []string{"", "1", "9 3", "a b"} {
		if _, _, err := parsePortRange(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if got := sourceAddrs(3); strings.Join(got, ",") != "198.51.100.2,198.51.100.3,198.51.100.4" {
		t.Fatalf("sources %v", got)
	}
}

func TestLogProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.log")
	log := `time=x level=WARN msg="using a self-signed certificate for trials; clients must trust it explicitly" name=a
time=x level=INFO msg="client connected"
time=x level=WARN msg="client refused: the client table is full" max_clients=10
time=x level=WARN msg="client refused: the client table is full" max_clients=10
time=x level=ERROR msg=boom
gc 1 @0.1s 0%: level=WARN-looking but a gc line msg=no
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	n, samples := logProblems(path, "self-signed certificate")
	if n != 3 || len(samples) != 2 || samples[0] != "client refused: the client table is full" || samples[1] != "boom" {
		t.Fatalf("%d %q", n, samples)
	}
}

func TestKernelCounters(t *testing.T) {
	a := kernelSnapshot{"x rx_dropped": 1, "y": 5}
	b := kernelSnapshot{"x rx_dropped": 4, "y": 5, "z": 2}
	m := moved(a, b)
	if len(m) != 2 || m["x rx_dropped"] != 3 || m["z"] != 2 {
		t.Fatalf("%v", m)
	}
	if moved(b, b) != nil {
		t.Fatal("nothing moved, yet a map")
	}
	for name, want := range map[string]bool{"Ip6InDiscards": true, "TcpExtListenOverflows": true, "TcpRetransSegs": true, "Ip6InReceives": false, "TcpExtTCPBacklogDrop": true} {
		if troubleCounter(name) != want {
			t.Errorf("troubleCounter(%s) != %v", name, want)
		}
	}
	if _, err := softnetDrops(); err != nil {
		t.Fatal(err)
	}
}

func TestCertKind(t *testing.T) {
	c, err := pki.Server(nil, pki.Options{CommonName: "198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(path, c.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if k, err := certKind(path); err != nil || k != "ECDSA P-256" {
		t.Fatalf("%q %v", k, err)
	}
	if _, err := certKind(filepath.Join(t.TempDir(), "none.pem")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

func TestChecksAndMarkdown(t *testing.T) {
	res := &Result{
		Started:     time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Environment: Environment{CPUs: 2, CPU: "AMD EPYC", Kernel: "6.18", IPHTTPSBuild: "checkout abc", Certificate: "ECDSA P-256"},
		Settings:    Settings{Sessions: 100, Handshakes: 50, HandshakeConcurrency: 8, TrickleSessions: 10, TrickleRate: 10, Time: "3s"},
		Idle: &IdleResult{
			Hold:              &loadgen.HoldReport{Held: 100},
			ServerActiveAfter: 100, RSSPerSessionKiB: 50, ServerCPUPercent: 0.5, WindowSeconds: 3,
			ServerRSSBefore: 10 << 20, ServerRSSWith: 15 << 20,
		},
		Handshake: &PhaseCPU{Report: loadgen.HandshakeReport{Completed: 50, PerSecond: 1200, Concurrency: 8}, ServerCPUPerOpMs: 0.5},
		Trickle: &Trickle{
			Echo:     &loadgen.EchoReport{Senders: 10, Planned: 300, Sent: 300, Received: 299, Lost: 1, RTT: loadgen.Dist{P50: 0.5, P99: 2}},
			Baseline: &loadgen.EchoReport{Senders: 1, Sent: 30, Received: 30, RTT: loadgen.Dist{P50: 0.1, P99: 0.3}},
			AddedP50: 0.4, AddedP99: 1.7,
			Quiet:          netbench.Quiet{Busy: 150, Waited: 2 * time.Minute},
			KernelCounters: map[string]uint64{"ipbs-srv iphttps-srv tx_dropped": 1, "ipbs-srv TcpRetransSegs": 3, "ipbs-srv TcpExtTCPLossProbes": 3},
		},
	}
	res.Checks = res.checks()
	status := map[string]string{}
	for _, c := range res.Checks {
		status[c.Metric] = c.status()
	}
	for metric, want := range map[string]string{
		"Concurrent sessions held on one server":          "met",
		"Server RSS per idle session":                     "**not met**",
		"Server CPU, sessions idle":                       "met",
		"Handshake rate (TCP + TLS + POST + 200 + RS/RA)": "met",
		"Trickle loss":            "**not met**",
		"Added latency p50 / p99": "info",
	} {
		if status[metric] != want {
			t.Errorf("%s: %q, want %q", metric, status[metric], want)
		}
	}
	md := res.Markdown()
	// docsection writes the section as given: it must end in one newline.
	if !strings.HasSuffix(md, "\n") || strings.HasSuffix(md, "\n\n") {
		t.Errorf("markdown does not end in exactly one newline: %q", md[max(0, len(md)-40):])
	}
	for _, want := range []string{"| Metric | Result | Target | Status |", "| Trickle loss | 1 of 300", "checkout abc", "iphttps-srv tx_dropped +1", "0.400 / 1.700 ms", "tail loss probe", "started on a busy machine (others used 150% of one CPU after a 2m0s wait)"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestOnlyProbes(t *testing.T) {
	for _, c := range []struct {
		m    map[string]uint64
		want bool
	}{
		{nil, false},
		{map[string]uint64{"a TcpRetransSegs": 2, "a TcpExtTCPLossProbes": 2, "b TcpRetransSegs": 1, "b TcpExtTCPLossProbes": 1}, true},
		{map[string]uint64{"a TcpRetransSegs": 3, "a TcpExtTCPLossProbes": 2}, false},
		{map[string]uint64{"a TcpExtTCPLossProbes": 2}, false},
	} {
		if got := onlyProbes(c.m); got != c.want {
			t.Errorf("onlyProbes(%v) = %v", c.m, got)
		}
	}
}
