package tput

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/iphttps/iphttps/internal/bench/iperf"
	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/bench/procstat"
	"github.com/iphttps/iphttps/internal/bench/tlspump"
)

// Sections of the benchmark, in the order they run.
const (
	SecVeth      = "veth"    // plain TCP over the veth
	SecTLS       = "tls"     // one TLS 1.3 stream, Go crypto/tls
	SecIPHTTPS   = "iphttps" // the iphttps tunnel
	SecOcserv    = "ocserv"  // ocserv + openconnect, CSTP (TLS over TCP) only
	SecTeredo    = "teredo"  // iphttps' Teredo client and server+relay
	SecMiredo    = "miredo"  // Miredo's Teredo client, server and relay
	SecSixToFour = "6to4"    // iphttps' 6to4 client and relay
)

// AllSections lists the sections in running order.
var AllSections = []string{SecVeth, SecTLS, SecIPHTTPS, SecOcserv, SecTeredo, SecMiredo, SecSixToFour}

// Kinds of measurement.
const (
	KindIperf = "iperf3" // iperf3 TCP throughput (with a ping under load for 1 stream)
	KindTLS   = "tls"    // one TLS stream written by tlspump
	KindPing  = "ping"   // idle ping
)

// Test names one measurement of a section.
type Test struct {
	Section string `json:"section"`
	Kind    string `json:"kind"`
	Streams int    `json:"streams,omitempty"`
	Dir     string `json:"dir,omitempty"` // fwd (client to server) or rev
}

// Key is "section/kind/Pn/dir", unique per test.
func (t Test) Key() string {
	if t.Kind == KindPing {
		return t.Section + "/ping"
	}
	return fmt.Sprintf("%s/%s/P%d/%s", t.Section, t.Kind, t.Streams, t.Dir)
}

// Measurement is one test of one run.
type Measurement struct {
	Test
	Run     int       `json:"run"`
	Start   time.Time `json:"start"`
	Seconds float64   `json:"seconds"` // wall time of the measurement
	// Quiet is the machine check made before the test.
	Quiet netbench.Quiet `json:"quiet"`
	Mbps  float64        `json:"mbps,omitempty"` // goodput at the receiver
	// Retransmits of TCP inside the tunnel (or on the veth), per iperf3.
	Retransmits *int64        `json:"retransmits,omitempty"`
	Iperf       *iperf.Result `json:"iperf,omitempty"`
	// Ping is the idle ping (kind ping) or the ping under load (1-stream
	// iperf3 runs).
	Ping *iperf.Ping `json:"ping,omitempty"`
	// TLS is the receiver's report (kind tls); TLSSender the sender's.
	TLS       *tlspump.Report `json:"tls,omitempty"`
	TLSSender *tlspump.Report `json:"tls_sender,omitempty"`
	// CPU of the daemons (server, client) during the test, % of one CPU.
	CPU map[string]float64 `json:"cpu,omitempty"`
	// MachineBusy is the machine's busy time during the test, % of one CPU.
	MachineBusy float64 `json:"machine_busy"`
	// Drops are the drop and error counters that moved during the test:
	// the daemons' own (iphttps show statistics) and the tunnel devices'.
	Drops map[string]uint64 `json:"drops,omitempty"`
	Error string            `json:"error,omitempty"`
}

// Session is one start of a tunnel (or pump) section in one run.
type Session struct {
	Run     int    `json:"run"`
	Section string `json:"section"`
	Up      bool   `json:"up"`
	// SetupSeconds is how long the tunnel took to answer pings.
	SetupSeconds float64 `json:"setup_seconds,omitempty"`
	// Drops are the counters that moved from just after the start to just
	// before the stop (the whole session).
	Drops map[string]uint64 `json:"drops,omitempty"`
	Error string            `json:"error,omitempty"`
}

// Summary is the medians of one test over the runs.
type Summary struct {
	Test
	Runs     int     `json:"runs"`   // successful measurements
	Failed   int     `json:"failed"` // failed ones
	NotQuiet int     `json:"not_quiet,omitempty"`
	Mbps     float64 `json:"mbps,omitempty"`
	MbpsMin  float64 `json:"mbps_min,omitempty"`
	MbpsMax  float64 `json:"mbps_max,omitempty"`
	// Retransmits is the median of the runs that report them, -1 if none do.
	Retransmits float64 `json:"retransmits"`
	// PingAvgMs is the median of the pings' averages, PingMaxMs the
	// largest maximum, PingLossPct the largest loss.
	PingAvgMs   float64            `json:"ping_avg_ms,omitempty"`
	PingMaxMs   float64            `json:"ping_max_ms,omitempty"`
	PingLossPct float64            `json:"ping_loss_pct,omitempty"`
	HasPing     bool               `json:"has_ping"`
	CPU         map[string]float64 `json:"cpu,omitempty"`
	MachineBusy float64            `json:"machine_busy,omitempty"`
	// Drops are added up over the runs.
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// Summarize computes the per-test medians of ms, in the order the tests
// first appear.
func Summarize(ms []Measurement) []Summary {
	var order []string
	byKey := map[string][]Measurement{}
	for _, m := range ms {
		k := m.Key()
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], m)
	}
	var out []Summary
	for _, k := range order {
		group := byKey[k]
		s := Summary{Test: group[0].Test, Retransmits: -1}
		var mbps, retr, pingAvg, busy []float64
		cpu := map[string][]float64{}
		for _, m := range group {
			if !m.Quiet.Quiet {
				s.NotQuiet++
			}
			if m.Error != "" {
				s.Failed++
				continue
			}
			s.Runs++
			if m.Kind != KindPing {
				mbps = append(mbps, m.Mbps)
			}
			if m.Retransmits != nil {
				retr = append(retr, float64(*m.Retransmits))
			}
			if m.Ping != nil {
				s.HasPing = true
				if m.Ping.Received > 0 {
					pingAvg = append(pingAvg, m.Ping.AvgMs)
				}
				s.PingMaxMs = math.Max(s.PingMaxMs, m.Ping.MaxMs)
				s.PingLossPct = math.Max(s.PingLossPct, m.Ping.LossPct)
			}
			for name, v := range m.CPU {
				cpu[name] = append(cpu[name], v)
			}
			busy = append(busy, m.MachineBusy)
			for name, v := range m.Drops {
				if s.Drops == nil {
					s.Drops = map[string]uint64{}
				}
				s.Drops[name] += v
			}
		}
		if len(mbps) > 0 {
			s.Mbps = procstat.Median(mbps)
			s.MbpsMin, s.MbpsMax = slices.Min(mbps), slices.Max(mbps)
		}
		if len(retr) > 0 {
			s.Retransmits = procstat.Median(retr)
		}
		s.PingAvgMs = procstat.Median(pingAvg)
		if len(cpu) > 0 {
			s.CPU = map[string]float64{}
			for name, v := range cpu {
				s.CPU[name] = procstat.Median(v)
			}
		}
		s.MachineBusy = procstat.Median(busy)
		out = append(out, s)
	}
	return out
}

// find returns the summary of a test, if it ran successfully at least once.
func find(ss []Summary, t Test) (Summary, bool) {
	for _, s := range ss {
		if s.Test == t && s.Runs > 0 {
			return s, true
		}
	}
	return Summary{}, false
}

// Ratio is a figure derived from two medians of the same benchmark run,
// with the project's target where it has one.
type Ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`  // "%", "x" or "ms"
	Valid  bool    `json:"valid"` // both inputs were measured
	Target string  `json:"target,omitempty"`
	// Met tells whether the target is met (only with a target and Valid).
	Met *bool `json:"met,omitempty"`
	// Detail shows the inputs.
	Detail string `json:"detail"`
}

// Targets of the project for the tunnel (issue 5).
const (
	TargetTLSPct         = 40.0      // single stream ≥ 40% of the single TLS stream
	TargetVsOcserv       = 5.0       // single stream ≥ 5× ocserv CSTP
	TargetVsMiredo       = 2.0       // Teredo single stream ≥ 2× Miredo client -> Miredo relay
	TargetTeredoVsTLS    = 1.5       // Teredo single stream ≥ 1.5× the IP-HTTPS tunnel
	TargetSixToFourVsTLS = 1.5       // 6to4 single stream ≥ 1.5× the IP-HTTPS tunnel
	TargetLoadedPing     = 1.0 / 3.0 // ping under load ≤ 1/3 of ocserv's
	TargetIdleRTTMsUp    = 0.2       // idle RTT overhead over the veth ≤ 0.2 ms
)

func stream(sec string, n int, dir string) Test {
	kind := KindIperf
	if sec == SecTLS {
		kind = KindTLS
	}
	return Test{Section: sec, Kind: kind, Streams: n, Dir: dir}
}

func idle(sec string) Test { return Test{Section: sec, Kind: KindPing} }

// Ratios derives the comparisons and targets from the summaries. A ratio
// whose inputs are missing is listed with Valid false.
func Ratios(ss []Summary) []Ratio {
	var out []Ratio
	tls, haveTLS := find(ss, stream(SecTLS, 1, "fwd"))
	for _, dir := range []string{"fwd", "rev"} {
		ip, ok := find(ss, stream(SecIPHTTPS, 1, dir))
		r := Ratio{Name: "iphttps 1 stream " + dir + " / TLS stream ceiling", Unit: "%", Target: fmt.Sprintf("≥ %.0f%%", TargetTLSPct)}
		if ok && haveTLS && tls.Mbps > 0 {
			r.Valid, r.Value = true, ip.Mbps/tls.Mbps*100
			r.Met = met(r.Value >= TargetTLSPct)
			r.Detail = fmt.Sprintf("%.0f / %.0f Mbit/s", ip.Mbps, tls.Mbps)
		}
		out = append(out, r)
	}
	for _, n := range []int{1, 4} {
		for _, dir := range []string{"fwd", "rev"} {
			ip, ok1 := find(ss, stream(SecIPHTTPS, n, dir))
			oc, ok2 := find(ss, stream(SecOcserv, n, dir))
			r := Ratio{Name: fmt.Sprintf("iphttps / ocserv CSTP, %s %s", streamsName(n), dir), Unit: "x"}
			if n == 1 {
				r.Target = fmt.Sprintf("≥ %.0fx", TargetVsOcserv)
			}
			if ok1 && ok2 && oc.Mbps > 0 {
				r.Valid, r.Value = true, ip.Mbps/oc.Mbps
				r.Detail = fmt.Sprintf("%.0f / %.0f Mbit/s", ip.Mbps, oc.Mbps)
				if n == 1 {
					r.Met = met(r.Value >= TargetVsOcserv)
				}
			}
			out = append(out, r)
		}
	}
	for _, dir := range []string{"fwd", "rev"} {
		ip, ok1 := find(ss, stream(SecIPHTTPS, 4, dir))
		ve, ok2 := find(ss, stream(SecVeth, 4, dir))
		r := Ratio{Name: "iphttps / plain veth TCP, 4 streams " + dir, Unit: "%"}
		if ok1 && ok2 && ve.Mbps > 0 {
			r.Valid, r.Value = true, ip.Mbps/ve.Mbps*100
			r.Detail = fmt.Sprintf("%.0f / %.0f Mbit/s", ip.Mbps, ve.Mbps)
		}
		out = append(out, r)
	}
	for _, dir := range []string{"fwd", "rev"} {
		ip, ok1 := find(ss, stream(SecIPHTTPS, 1, dir))
		oc, ok2 := find(ss, stream(SecOcserv, 1, dir))
		r := Ratio{Name: "ping under load (1 stream " + dir + "), iphttps / ocserv", Unit: "x", Target: "≤ 0.33x"}
		if ok1 && ok2 && ip.PingAvgMs > 0 && oc.PingAvgMs > 0 {
			r.Valid, r.Value = true, ip.PingAvgMs/oc.PingAvgMs
			r.Met = met(r.Value <= TargetLoadedPing)
			r.Detail = fmt.Sprintf("%.3f / %.3f ms avg", ip.PingAvgMs, oc.PingAvgMs)
		}
		out = append(out, r)
	}
	for _, dir := range []string{"fwd", "rev"} {
		te, ok1 := find(ss, stream(SecTeredo, 1, dir))
		mi, ok2 := find(ss, stream(SecMiredo, 1, dir))
		r := Ratio{Name: "iphttps Teredo / Miredo, 1 stream " + dir, Unit: "x", Target: fmt.Sprintf("≥ %.0fx", TargetVsMiredo)}
		if ok1 && ok2 && mi.Mbps > 0 {
			r.Valid, r.Value = true, te.Mbps/mi.Mbps
			r.Met = met(r.Value >= TargetVsMiredo)
			r.Detail = fmt.Sprintf("%.0f / %.0f Mbit/s", te.Mbps, mi.Mbps)
		}
		out = append(out, r, overIPHTTPS(ss, SecTeredo, dir, TargetTeredoVsTLS))
	}
	for _, dir := range []string{"fwd", "rev"} {
		out = append(out, overIPHTTPS(ss, SecSixToFour, dir, TargetSixToFourVsTLS))
	}
	veth, haveVeth := find(ss, idle(SecVeth))
	for _, sec := range []string{SecIPHTTPS, SecOcserv} {
		t, ok := find(ss, idle(sec))
		r := Ratio{Name: "idle RTT overhead of " + sectionName(sec) + " over the veth", Unit: "ms"}
		if sec == SecIPHTTPS {
			r.Target = fmt.Sprintf("≤ %.1f ms", TargetIdleRTTMsUp)
		}
		if ok && haveVeth && t.PingAvgMs > 0 && veth.PingAvgMs > 0 {
			r.Valid, r.Value = true, t.PingAvgMs-veth.PingAvgMs
			r.Detail = fmt.Sprintf("%.3f - %.3f ms avg", t.PingAvgMs, veth.PingAvgMs)
			if sec == SecIPHTTPS {
				r.Met = met(r.Value <= TargetIdleRTTMsUp)
			}
		}
		out = append(out, r)
	}
	return out
}

func met(b bool) *bool { return &b }

// Unmet lists the targets that were measured and missed, and those that
// could not be judged.
func Unmet(rs []Ratio) []string {
	var out []string
	for _, r := range rs {
		if r.Target == "" {
			continue
		}
		switch {
		case !r.Valid:
			out = append(out, r.Name+": not measured")
		case !*r.Met:
			out = append(out, fmt.Sprintf("%s: %s, target %s", r.Name, r.valueString(), r.Target))
		}
	}
	return out
}

func (r Ratio) valueString() string {
	if !r.Valid {
		return "–"
	}
	switch r.Unit {
	case "%":
		return fmt.Sprintf("%.0f%%", r.Value)
	case "x":
		return fmt.Sprintf("%.2fx", r.Value)
	default:
		return fmt.Sprintf("%+.3f %s", r.Value, r.Unit)
	}
}

func streamsName(n int) string {
	if n == 1 {
		return "1 stream"
	}
	return fmt.Sprintf("%d streams", n)
}

// sectionName is the label of a section in the report.
func sectionName(sec string) string {
	switch sec {
	case SecVeth:
		return "veth"
	case SecTLS:
		return "TLS stream"
	case SecIPHTTPS:
		return "iphttps"
	case SecOcserv:
		return "ocserv CSTP"
	case SecTeredo:
		return "iphttps Teredo"
	case SecSixToFour:
		return "iphttps 6to4"
	case SecMiredo:
		return "Miredo"
	}
	return sec
}

// overIPHTTPS is the ratio of one stream through the relayed transport sec
// to one stream through the IP-HTTPS tunnel, in direction dir.
func overIPHTTPS(ss []Summary, sec, dir string, target float64) Ratio {
	te, ok1 := find(ss, stream(sec, 1, dir))
	ip, ok2 := find(ss, stream(SecIPHTTPS, 1, dir))
	r := Ratio{Name: sectionName(sec) + " / iphttps IP-HTTPS, 1 stream " + dir, Unit: "x", Target: fmt.Sprintf("≥ %.1fx", target)}
	if ok1 && ok2 && ip.Mbps > 0 {
		r.Valid, r.Value = true, te.Mbps/ip.Mbps
		r.Met = met(r.Value >= target)
		r.Detail = fmt.Sprintf("%.0f / %.0f Mbit/s", te.Mbps, ip.Mbps)
	}
	return r
}
