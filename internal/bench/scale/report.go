package scale

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/loadgen"
)

// Targets of the scale benchmark.
const (
	TargetRSSPerSessionKiB = 48
	TargetIdleCPUPercent   = 5
	TargetHandshakesPerSec = 1000
)

// Result is everything one run measured; it is written as scale.json.
type Result struct {
	Started     time.Time   `json:"started"`
	Seconds     float64     `json:"seconds"`
	Smoke       bool        `json:"smoke"`
	Environment Environment `json:"environment"`
	Settings    Settings    `json:"settings"`
	Idle        *IdleResult `json:"idle,omitempty"`
	Handshake   *PhaseCPU   `json:"handshake,omitempty"`
	Trickle     *Trickle    `json:"trickle,omitempty"`
	Server      ServerEnd   `json:"server"`
	Checks      []Check     `json:"checks"`
	// Failures are what makes the run fail: sessions that did not come up
	// or were dropped, packets lost, a server that died.
	Failures []string `json:"failures,omitempty"`
}

// Environment describes the machine and the programs measured.
type Environment struct {
	Kernel        string `json:"kernel"`
	CPU           string `json:"cpu"`
	CPUs          int    `json:"cpus"`
	IPHTTPS       string `json:"iphttps"`
	IPHTTPSBuild  string `json:"iphttps_build"`
	Certificate   string `json:"certificate"`
	ServerFDLimit string `json:"server_fd_limit"`
	ServerTUN     string `json:"server_tun"`
	PortRange     string `json:"client_port_range"`
	SourceAddrs   int    `json:"client_source_addresses"`
}

// Settings are the sizes of the run.
type Settings struct {
	Sessions             int     `json:"sessions"`
	OpenConcurrency      int     `json:"open_concurrency"`
	Handshakes           int     `json:"handshakes"`
	HandshakeConcurrency int     `json:"handshake_concurrency"`
	TrickleSessions      int     `json:"trickle_sessions"`
	TrickleRate          float64 `json:"trickle_rate_per_session"`
	Time                 string  `json:"time"`
	KeyExchange          string  `json:"key_exchange"`
}

// IdleResult is the held-sessions phase.
type IdleResult struct {
	Open                  loadgen.HandshakeReport `json:"open"`
	Hold                  *loadgen.HoldReport     `json:"hold,omitempty"`
	ServerActiveBefore    uint64                  `json:"server_sessions_active_before"`
	ServerActiveAfter     uint64                  `json:"server_sessions_active_after"`
	WindowSeconds         float64                 `json:"window_seconds"`
	ServerRSSBefore       uint64                  `json:"server_rss_before_bytes"`
	ServerRSSWith         uint64                  `json:"server_rss_with_sessions_bytes"`
	RSSPerSessionKiB      float64                 `json:"server_rss_per_session_kib"`
	ServerCPUPercent      float64                 `json:"server_cpu_percent"`
	LoadgenRSS            uint64                  `json:"loadgen_rss_bytes"`
	LoadgenCPUPercent     float64                 `json:"loadgen_cpu_percent"`
	MachineBusyPercent    float64                 `json:"machine_busy_percent"`
	HeapPerSessionKiB     float64                 `json:"server_go_heap_per_session_kib,omitempty"`
	StacksPerSessionKiB   float64                 `json:"server_go_stacks_per_session_kib,omitempty"`
	GCPoints              int                     `json:"server_gc_points"`
	ServerGoHeapLiveMB    float64                 `json:"server_go_heap_live_mb_last_gc"`
	ServerGoStacksMB      float64                 `json:"server_go_stacks_mb_last_gc"`
	ServerSessionsLastGC  float64                 `json:"server_sessions_at_last_gc"`
	ServerTCPSocketsInUse int                     `json:"server_tcp_sockets_in_use"`
	KernelCounters        map[string]uint64       `json:"kernel_counters_moved,omitempty"`
}

// PhaseCPU is a load generator phase with the CPU both sides used in it.
type PhaseCPU struct {
	Report             loadgen.HandshakeReport `json:"report"`
	Seconds            float64                 `json:"seconds"`
	ServerCPUPercent   float64                 `json:"server_cpu_percent"`
	ServerCPUPerOpMs   float64                 `json:"server_cpu_ms_per_session"`
	LoadgenCPUPercent  float64                 `json:"loadgen_cpu_percent"`
	MachineBusyPercent float64                 `json:"machine_busy_percent"`
	ServerRunDelayMs   float64                 `json:"server_run_queue_wait_ms"`
	KernelCounters     map[string]uint64       `json:"kernel_counters_moved,omitempty"`
	Quiet              netbench.Quiet          `json:"quiet_before"`
}

// Trickle is the echo phase.
type Trickle struct {
	Open               loadgen.HandshakeReport `json:"open"`
	Echo               *loadgen.EchoReport     `json:"echo"`
	Baseline           *loadgen.EchoReport     `json:"baseline"`
	AddedP50           float64                 `json:"added_p50_ms"`
	AddedP99           float64                 `json:"added_p99_ms"`
	Seconds            float64                 `json:"seconds"`
	ServerCPUPercent   float64                 `json:"server_cpu_percent"`
	LoadgenCPUPercent  float64                 `json:"loadgen_cpu_percent"`
	MachineBusyPercent float64                 `json:"machine_busy_percent"`
	ServerRunDelayMs   float64                 `json:"server_run_queue_wait_ms"`
	KernelCounters     map[string]uint64       `json:"kernel_counters_moved,omitempty"`
	Quiet              netbench.Quiet          `json:"quiet_before"`
}

// ServerEnd is the server's state at the end of the run.
type ServerEnd struct {
	Counters       map[string]uint64 `json:"counters,omitempty"`
	LogProblems    int               `json:"log_warnings_and_errors"`
	LogSamples     []string          `json:"log_samples,omitempty"`
	UnexpectedExit string            `json:"unexpected_exit,omitempty"`
}

// Check is one row of the results table.
type Check struct {
	Metric string `json:"metric"`
	Value  string `json:"value"`
	Target string `json:"target,omitempty"` // empty: for information
	Met    bool   `json:"met"`
}

func (c Check) status() string {
	switch {
	case c.Target == "":
		return "info"
	case c.Met:
		return "met"
	}
	return "**not met**"
}

// Table renders the checks as a markdown table.
func (r *Result) Table() string {
	var b strings.Builder
	b.WriteString("| Metric | Result | Target | Status |\n|---|---|---|---|\n")
	for _, c := range r.Checks {
		t := c.Target
		if t == "" {
			t = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Metric, c.Value, t, c.status())
	}
	return b.String()
}

// Markdown is the report: what was run where, the table, and notes.
func (r *Result) Markdown() string {
	var b strings.Builder
	e := r.Environment
	kind := "full run"
	if r.Smoke {
		kind = "smoke run"
	}
	fmt.Fprintf(&b, "Scale benchmark (`iphttps-bench scale`, %s) of %s, %s UTC, %d CPUs (%s), Linux %s.\n\n",
		kind, e.IPHTTPSBuild, r.Started.UTC().Format("2006-01-02 15:04"), e.CPUs, e.CPU, e.Kernel)
	b.WriteString(r.Table())
	b.WriteString("\n")
	for _, n := range r.notes() {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(r.Failures) > 0 {
		b.WriteString("\nFailures:\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	return b.String()
}

// notes explain how the numbers were obtained and where memory goes.
func (r *Result) notes() []string {
	e, s := r.Environment, r.Settings
	notes := []string{
		fmt.Sprintf("Server: `iphttps server` in namespace %s with a self-signed %s certificate, --log-level warn, open files %s, TUN %s (%s); "+
			"load generator: `iphttps-bench scale loadgen` (one process, no TUN, real wire protocol: TCP, TLS, POST, 200, RS/RA, DAD) in %s, "+
			"%d source address(es), ports %s. CPU and RSS from /proc of each process, measured apart.",
			nsSrv, e.Certificate, e.ServerFDLimit, tunName, e.ServerTUN, nsCli, e.SourceAddrs, e.PortRange),
	}
	if i := r.Idle; i != nil {
		n := fmt.Sprintf("Idle: server RSS %s before any session, %s with the sessions held; CPU over %.0f s of idling (machine busy %.0f%% of one CPU, other users included).",
			mib(i.ServerRSSBefore), mib(i.ServerRSSWith), i.WindowSeconds, i.MachineBusyPercent)
		if i.GCPoints >= 2 {
			n += fmt.Sprintf(" From the server's GC trace (GODEBUG=gctrace=1, fit over %d collections while sessions opened): "+
				"Go heap live ≈ %.1f KiB and goroutine stacks ≈ %.1f KiB per session "+
				"(last collection: %.0f MB live heap, %.0f MB stacks at ≈ %.0f sessions). The rest of the RSS per session is mostly heap not yet collected "+
				"(with GOGC=100 the heap grows to twice the live heap between collections) and runtime overhead; kernel socket memory is not in the RSS.",
				i.GCPoints, i.HeapPerSessionKiB, i.StacksPerSessionKiB, i.ServerGoHeapLiveMB, i.ServerGoStacksMB, i.ServerSessionsLastGC)
		}
		notes = append(notes, n)
	}
	if h := r.Handshake; h != nil {
		notes = append(notes, fmt.Sprintf("Handshakes: %d full TLS handshakes (%s, no resumption), concurrency %d, each closed after its RA; "+
			"server CPU %.0f%% of one CPU (%.2f ms per session), load generator %.0f%%, machine busy %.0f%% of one CPU (other users included), "+
			"server threads waited %.0f ms runnable for a CPU%s. "+
			"Time per handshake: connect p50 %.1f ms, TLS done p50 %.1f ms, 200 p50 %.1f ms, RA p50 %.1f ms.%s",
			h.Report.Completed, h.Report.TLSVersion, h.Report.Concurrency, h.ServerCPUPercent, h.ServerCPUPerOpMs, h.LoadgenCPUPercent,
			h.MachineBusyPercent, h.ServerRunDelayMs, quietNote(h.Quiet), h.Report.Connect.P50, h.Report.TLS.P50, h.Report.Response.P50, h.Report.Total.P50,
			countersNote(h.KernelCounters)))
	}
	if t := r.Trickle; t != nil && t.Echo != nil {
		n := fmt.Sprintf("Trickle: %d sessions × %.0f echo requests/s × %s to %s in namespace %s, routed by the server host; "+
			"server CPU %.0f%%, load generator %.0f%%, machine busy %.0f%% of one CPU (other users included), server threads waited %.0f ms runnable for a CPU%s. "+
			"RTT is taken in the load generator (TLS and framing on the client side included); each session's first request p50/p99 %.3f/%.3f ms, the others %.3f/%.3f ms.",
			t.Echo.Senders, s.TrickleRate, s.Time, intranetV6, nsInt, t.ServerCPUPercent, t.LoadgenCPUPercent, t.MachineBusyPercent, t.ServerRunDelayMs, quietNote(t.Quiet),
			t.Echo.FirstRTT.P50, t.Echo.FirstRTT.P99, t.Echo.LaterRTT.P50, t.Echo.LaterRTT.P99)
		if t.Baseline != nil {
			n += fmt.Sprintf(" Plain: %d echo requests (every %s) to the same host at the same time from a raw ICMPv6 socket in %s, over the veth and the server namespace's forwarding (no tunnel); "+
				"added latency = tunnel minus plain at the same percentile.", t.Baseline.Sent, t.Baseline.Interval, nsCli)
		}
		notes = append(notes, n+countersNote(t.KernelCounters))
	}
	if sv := r.Server; sv.LogProblems > 0 {
		notes = append(notes, fmt.Sprintf("Server log: %d warning/error lines, e.g. %s.", sv.LogProblems, strings.Join(quoteAll(sv.LogSamples), "; ")))
	}
	return notes
}

// quietNote says when a phase started on a machine busy with other work.
func quietNote(q netbench.Quiet) string {
	if q.Quiet || q.Waited == 0 {
		return ""
	}
	return fmt.Sprintf("; it started on a busy machine (others used %.0f%% of one CPU after a %s wait)", q.Busy, q.Waited.Round(time.Second))
}

// countersNote lists the kernel counters that moved in a phase.
func countersNote(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s +%d", k, m[k])
	}
	note := " Kernel counters that moved: " + strings.Join(parts, ", ") + "."
	if onlyProbes(m) {
		note += " Every TCP retransmission was a tail loss probe (no segment was lost)."
	}
	return note
}

// onlyProbes reports whether TCP retransmitted in some namespace and, in
// each, exactly as many segments as it sent tail loss probes.
func onlyProbes(m map[string]uint64) bool {
	seen := false
	for k, v := range m {
		ns, ok := strings.CutSuffix(k, " TcpRetransSegs")
		if !ok {
			continue
		}
		if m[ns+" TcpExtTCPLossProbes"] != v {
			return false
		}
		seen = true
	}
	return seen
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// writeFiles writes scale.json and scale.md into dir.
func (r *Result) writeFiles(dir string) error {
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scale.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "scale.md"), []byte(r.Markdown()), 0o644)
}

// docSection is the section of docs/performance.md that the scale
// benchmark fills (see package docsection).
const docSection = "scale"

// printTable writes the table to w.
func (r *Result) printTable(w io.Writer) {
	fmt.Fprint(w, r.Table())
}
