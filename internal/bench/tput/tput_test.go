package tput

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/bench/docsection"
	"github.com/iphttps/iphttps/internal/bench/iperf"
	"github.com/iphttps/iphttps/internal/bench/netbench"
)

func i64(v int64) *int64 { return &v }

// measurements builds a small benchmark: three runs of the tests the ratios
// use, with fixed figures.
func measurements() []Measurement {
	quiet := netbench.Quiet{Quiet: true}
	var ms []Measurement
	add := func(run int, sec, kind string, n int, dir string, mbps float64, ping float64) {
		m := Measurement{Test: Test{Section: sec, Kind: kind, Streams: n, Dir: dir}, Run: run, Quiet: quiet, Mbps: mbps}
		if ping > 0 {
			m.Ping = &iperf.Ping{Sent: 20, Received: 20, AvgMs: ping, MaxMs: ping * 2}
		}
		if sec == SecIPHTTPS || sec == SecOcserv {
			m.CPU = map[string]float64{"server": 50 + float64(run), "client": 40}
			m.Retransmits = i64(int64(run))
		}
		ms = append(ms, m)
	}
	for run := 1; run <= 3; run++ {
		d := float64(run - 2) // -1, 0, +1 around the median
		add(run, SecVeth, KindPing, 0, "", 0, 0.05)
		add(run, SecVeth, KindIperf, 4, "fwd", 20000+d, 0)
		add(run, SecVeth, KindIperf, 4, "rev", 20000+d, 0)
		add(run, SecTLS, KindTLS, 1, "fwd", 8000+d*100, 0)
		add(run, SecIPHTTPS, KindPing, 0, "", 0, 0.2+d*0.01)
		add(run, SecIPHTTPS, KindIperf, 1, "fwd", 4000+d*10, 1.0)
		add(run, SecIPHTTPS, KindIperf, 1, "rev", 3000+d*10, 2.0)
		add(run, SecIPHTTPS, KindIperf, 4, "fwd", 5000, 0)
		add(run, SecIPHTTPS, KindIperf, 4, "rev", 4000, 0)
		add(run, SecOcserv, KindPing, 0, "", 0, 0.3)
		add(run, SecOcserv, KindIperf, 1, "fwd", 500, 6.0)
		add(run, SecOcserv, KindIperf, 1, "rev", 700, 3.0)
		add(run, SecOcserv, KindIperf, 4, "fwd", 1000, 0)
		add(run, SecOcserv, KindIperf, 4, "rev", 1000, 0)
		add(run, SecTeredo, KindIperf, 1, "fwd", 1400, 1.5)
		add(run, SecTeredo, KindIperf, 1, "rev", 1200, 1.5)
		add(run, SecMiredo, KindIperf, 1, "fwd", 600, 2.0)
		add(run, SecMiredo, KindIperf, 1, "rev", 700, 2.0)
		add(run, SecSixToFour, KindIperf, 1, "fwd", 6000, 1.0)
		add(run, SecSixToFour, KindIperf, 1, "rev", 1500, 1.0)
	}
	return ms
}

func TestSummarize(t *testing.T) {
	ms := measurements()
	// A failed run and a run after a busy machine are counted apart.
	ms = append(ms, Measurement{Test: stream(SecTLS, 1, "fwd"), Run: 4, Error: "TLS pump failed", Quiet: netbench.Quiet{Quiet: true}})
	ms[3].Quiet = netbench.Quiet{Busy: 150}
	ms[3].Drops = map[string]uint64{"client drop_x": 2}
	ss := Summarize(ms)
	if len(ss) != 20 {
		t.Fatalf("%d summaries", len(ss))
	}
	if ss[0].Key() != "veth/ping" || ss[1].Key() != "veth/iperf3/P4/fwd" {
		t.Fatalf("order: %s, %s", ss[0].Key(), ss[1].Key())
	}
	tls, ok := find(ss, stream(SecTLS, 1, "fwd"))
	if !ok || tls.Runs != 3 || tls.Failed != 1 || tls.Mbps != 8000 || tls.MbpsMin != 7900 || tls.MbpsMax != 8100 {
		t.Fatalf("tls summary %+v", tls)
	}
	if tls.NotQuiet != 1 || tls.Drops["client drop_x"] != 2 {
		t.Fatalf("tls quiet/drops %+v", tls)
	}
	ip, _ := find(ss, stream(SecIPHTTPS, 1, "fwd"))
	if ip.Retransmits != 2 || ip.CPU["server"] != 52 || !ip.HasPing || ip.PingAvgMs != 1 || ip.PingMaxMs != 2 {
		t.Fatalf("iphttps summary %+v", ip)
	}
	veth, _ := find(ss, stream(SecVeth, 4, "fwd"))
	if veth.Retransmits != -1 || veth.CPU != nil {
		t.Fatalf("veth summary %+v", veth)
	}
	if _, ok := find(ss, stream(SecTLS, 4, "fwd")); ok {
		t.Fatal("found a test that did not run")
	}
}

func TestRatios(t *testing.T) {
	rs := Ratios(Summarize(measurements()))
	byName := map[string]Ratio{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	check := func(name string, want float64, met *bool) {
		t.Helper()
		r, ok := byName[name]
		if !ok {
			t.Fatalf("no ratio %q", name)
		}
		if !r.Valid || math.Abs(r.Value-want) > 1e-9 {
			t.Errorf("%s = %v (valid %v), want %v", name, r.Value, r.Valid, want)
		}
		switch {
		case met == nil && r.Met != nil:
			t.Errorf("%s: judged without a target", name)
		case met != nil && (r.Met == nil || *r.Met != *met):
			t.Errorf("%s: met %v, want %v", name, r.Met, *met)
		}
	}
	yes, no := true, false
	check("iphttps 1 stream fwd / TLS stream ceiling", 50, &yes)
	check("iphttps 1 stream rev / TLS stream ceiling", 37.5, &no)
	check("iphttps / ocserv CSTP, 1 stream fwd", 8, &yes)
	check("iphttps / ocserv CSTP, 1 stream rev", 3000.0/700, &no)
	check("iphttps / ocserv CSTP, 4 streams fwd", 5, nil)
	check("iphttps / plain veth TCP, 4 streams rev", 20, nil)
	check("ping under load (1 stream fwd), iphttps / ocserv", 1.0/6, &yes)
	check("ping under load (1 stream rev), iphttps / ocserv", 2.0/3, &no)
	check("idle RTT overhead of iphttps over the veth", 0.15, &yes)
	check("idle RTT overhead of ocserv CSTP over the veth", 0.25, nil)

	check("iphttps Teredo / Miredo, 1 stream fwd", 1400.0/600, &yes)
	check("iphttps Teredo / Miredo, 1 stream rev", 1200.0/700, &no)
	check("iphttps Teredo / iphttps IP-HTTPS, 1 stream fwd", 1400.0/4000, &no)
	check("iphttps 6to4 / iphttps IP-HTTPS, 1 stream fwd", 6000.0/4000, &yes)
	check("iphttps 6to4 / iphttps IP-HTTPS, 1 stream rev", 1500.0/3000, &no)

	unmet := Unmet(rs)
	if len(unmet) != 7 || !strings.Contains(unmet[0], "38%") {
		t.Fatalf("unmet %q", unmet)
	}

	// Without ocserv the ratios against it are listed, not judged.
	var noOc []Measurement
	for _, m := range measurements() {
		if m.Section != SecOcserv {
			noOc = append(noOc, m)
		}
	}
	for _, r := range Ratios(Summarize(noOc)) {
		if strings.Contains(r.Name, "ocserv") && (r.Valid || r.Met != nil) {
			t.Errorf("%s judged without ocserv", r.Name)
		}
	}
	if u := Unmet(Ratios(Summarize(noOc))); len(u) != 9 || !strings.HasSuffix(u[2], "not measured") {
		t.Errorf("unmet without ocserv %q", u)
	}
}

func TestMarkdown(t *testing.T) {
	r := &Result{Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r.Options.Runs, r.Options.TimeSeconds = 3, 10
	r.Machine = Machine{CPUModel: "Test CPU", NProc: 2, AES: true, Kernel: "6.x", Iperf3: "iperf 3.12",
		Suites: map[string]string{SecTLS: "TLS 1.3 TLS_AES_128_GCM_SHA256"}, ServerKeys: map[string]string{SecTLS: "ECDSA P-256"},
		MTU: map[string]int{"veth": 1500, SecIPHTTPS: 1280}}
	ms := measurements()
	ms[7].Drops = map[string]uint64{"server drop_queue_full": 16} // run 1, iphttps 4 streams fwd
	r.Measurements = ms
	r.Summaries = Summarize(ms)
	r.Ratios = Ratios(r.Summaries)
	r.Sessions = []Session{{Run: 1, Section: SecIPHTTPS, Up: true, Drops: map[string]uint64{"client dev tx_dropped": 3}}}
	r.Failures = []string{"run 2 ocserv: did not start"}
	md := Markdown(r)
	for _, want := range []string{
		"### Throughput, 2026-01-02 03:04 UTC",
		"| **iphttps** | 1 stream fwd | 4000 | 3990–4010 | 2 | 1.000 / 2.000 | 52 / 40 | 0 | 0 |",
		"| **iphttps** | 4 streams fwd | 5000 | 5000–5000 | 2 | – | 52 / 40 | 0 | server drop_queue_full +16 |",
		"| veth (plain TCP) | 4 streams fwd | 20000 | 19999–20001 | – | – | – | 0 | – |",
		"| TLS 1.3 stream (Go) | 1 stream fwd | 8000 |",
		"| **iphttps** | 0.200 | 0.420 | 0% |",
		"| iphttps 1 stream fwd / TLS stream ceiling | 50% | 4000 / 8000 Mbit/s | ≥ 40% | **yes** |",
		"| iphttps / ocserv CSTP, 1 stream fwd | 8.00x | 4000 / 500 Mbit/s | ≥ 5x | **yes** |",
		"| idle RTT overhead of iphttps over the veth | +0.150 ms | 0.200 - 0.050 ms avg | ≤ 0.2 ms | **yes** |",
		"Targets met: 6 of 13.",
		"| iphttps Teredo / Miredo, 1 stream fwd | 2.33x | 1400 / 600 Mbit/s | ≥ 2x | **yes** |",
		"- TLS of TLS stream: TLS 1.3 TLS_AES_128_GCM_SHA256, server key ECDSA P-256",
		"- MTU: veth 1500, iphttps 1280",
		"- iphttps run 1: client dev tx_dropped +3",
		"- run 2 ocserv: did not start",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestParseStatistics(t *testing.T) {
	js := `{"client/iphttps0": {"bytes_up": 9, "drop_link_down": 1, "tun_write_errors": 2},
	        "server/iphttps-srv": {"drop_queue_full": 3, "handshake_failures": 4, "sessions_total": 1}}`
	out := map[string]uint64{}
	if err := parseStatistics([]byte(js), out); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"client drop_link_down": 1, "client tun_write_errors": 2, "server drop_queue_full": 3, "server handshake_failures": 4}
	if len(out) != len(want) {
		t.Fatalf("counters %v", out)
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("%s = %d, want %d", k, out[k], v)
		}
	}
	if err := parseStatistics([]byte("iphttps: no daemon"), out); err == nil {
		t.Fatal("non-JSON accepted")
	}
	d := moved(map[string]uint64{"a": 1, "b": 5}, map[string]uint64{"a": 1, "b": 7, "c": 2})
	if len(d) != 2 || d["b"] != 2 || d["c"] != 2 {
		t.Fatalf("moved %v", d)
	}
	if moved(map[string]uint64{"a": 1}, map[string]uint64{"a": 1}) != nil {
		t.Fatal("nothing moved but a map came back")
	}
}

func TestParseAddrLines(t *testing.T) {
	out := "1: lo    inet6 ::1/128 scope host \\       valid_lft forever\n" +
		"2: ipbt-s0    inet6 2001:db8:1::1/64 scope global nodad \\       valid_lft forever\n" +
		"3: ipbt-vs0    inet6 2001:db8:100::1/128 scope global \\       valid_lft forever\n"
	dev, addr := parseAddrLines(out, ocservSrvDev)
	if dev != "ipbt-vs0" || addr != "2001:db8:100::1" {
		t.Fatalf("got %q %q", dev, addr)
	}
	if dev, addr := parseAddrLines("2: ipbt-s0    inet6 2001:db8:1::1/64 scope global\n", ocservSrvDev); dev != "" || addr != "" {
		t.Fatalf("found %q %q in a namespace without the tunnel", dev, addr)
	}
}

func TestParseOpenconnectSuite(t *testing.T) {
	log := "Connected to 192.0.2.1:4443\nSSL negotiation with 192.0.2.1\n" +
		"Connected to HTTPS on 192.0.2.1 with ciphersuite (TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)-(AES-128-GCM)\n"
	if s := parseOpenconnectSuite(log); s != "(TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)-(AES-128-GCM)" {
		t.Fatalf("suite %q", s)
	}
	if s := parseOpenconnectSuite("nothing"); s != "" {
		t.Fatalf("suite %q", s)
	}
}

func TestLoadedPingPlan(t *testing.T) {
	for _, c := range []struct {
		d     time.Duration
		delay time.Duration
		count int
	}{
		{10 * time.Second, 1500 * time.Millisecond, 20},
		{5 * time.Second, 1250 * time.Millisecond, 16},
		{2 * time.Second, 500 * time.Millisecond, 5},
		{time.Second, 250 * time.Millisecond, 3},
	} {
		delay, count := loadedPingPlan(c.d)
		if delay != c.delay || count != c.count {
			t.Errorf("%v: delay %v count %d, want %v %d", c.d, delay, count, c.delay, c.count)
		}
		if c.d >= 2*time.Second && delay+time.Duration(count)*pingInterval > c.d {
			t.Errorf("%v: pings outlast the load", c.d)
		}
	}
}

func TestSmokeOptions(t *testing.T) {
	o := Options{Runs: 3, Time: 10 * time.Second, Sections: AllSections}.smoke()
	if o.Runs != 1 || o.Time != 2*time.Second || len(o.Sections) != 5 || !slices.Contains(o.Sections, SecSixToFour) || !slices.Contains(o.Sections, SecTeredo) {
		t.Fatalf("smoke options %+v", o)
	}
	for _, s := range o.Sections {
		if s == SecOcserv || s == SecMiredo {
			t.Fatal("smoke runs a peer:", s)
		}
	}
}

func TestDocTemplate(t *testing.T) {
	for _, sec := range []string{DocSection, "scale"} {
		if _, err := docsection.Replace(DocTemplate, sec, "x"); err != nil {
			t.Errorf("template: %v", err)
		}
	}
	b, err := os.ReadFile("../../../docs/performance.md")
	if err != nil {
		t.Fatal("docs/performance.md is tracked, so it must be there:", err)
	}
	if _, err := docsection.Replace(string(b), DocSection, "x"); err != nil {
		t.Errorf("docs/performance.md: %v", err)
	}
}
