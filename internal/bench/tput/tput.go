// Package tput is the throughput benchmark of iphttps: in two network
// namespaces joined by a veth it measures the ceilings (plain TCP over the
// veth, one TLS 1.3 stream), the iphttps tunnel and, as the peer to beat,
// ocserv with openconnect in CSTP mode (IP over TLS over TCP), each with
// iperf3, ping (idle and under load) and the CPU of the daemons, and derives
// the ratios the project's targets are stated in.
package tput

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/bench/tlspump"
	"github.com/iphttps/iphttps/internal/lab"
)

// The benchmark's namespaces, devices and addresses (documentation ranges
// only). Another benchmark uses ipbs-*; these names are this one's alone.
const (
	NSSrv  = "ipbt-srv"
	NSCli  = "ipbt-cli"
	DevSrv = "ipbt-s0"
	DevCli = "ipbt-c0"

	// iphttps: the server's /64 and its own address in it.
	iphttpsPrefix = "2001:db8:5::/64"
	iphttpsHost   = "2001:db8:5::1"
	iphttpsCliDev = "iphttps0"    // the client's default TUN name
	iphttpsSrvDev = "iphttps-srv" // the server's default TUN name

	// ocserv: the pools inside the tunnel, the client's TUN and the
	// prefix of the server's per-client TUN devices.
	ocservPort   = 4443
	ocservPool6  = "2001:db8:100::/64"
	ocservPool4  = "198.51.100.0/24"
	ocservCliDev = "ipbt-oc0"
	ocservSrvDev = "ipbt-vs"

	tlsPort = 8443

	// LockPath keeps two runs of this benchmark (same namespace names)
	// apart; the scale benchmark does not take it.
	LockPath = "/run/iphttps-bench-throughput.lock"

	// WantSuite is the suite the TLS ceiling and the tunnels should use.
	WantSuite = "TLS_AES_128_GCM_SHA256"
)

func topology() netbench.Pair {
	return netbench.Pair{
		SrvNS: NSSrv, CliNS: NSCli, SrvDev: DevSrv, CliDev: DevCli,
		Srv4: netip.MustParsePrefix("192.0.2.1/24"), Cli4: netip.MustParsePrefix("192.0.2.2/24"),
		Srv6: netip.MustParsePrefix("2001:db8:1::1/64"), Cli6: netip.MustParsePrefix("2001:db8:1::2/64"),
	}
}

// Options of a benchmark run.
type Options struct {
	IPHTTPS    string        // the iphttps binary under test
	Self       string        // this benchmark's binary, re-executed for the TLS pump
	Time       time.Duration // per iperf3 test and TLS stream
	Runs       int           // repetitions of the whole set
	Smoke      bool          // the CI check: see SmokeOptions
	Sections   []string      // sections to run (AllSections if empty)
	ResultsDir string        // results go to ResultsDir/<UTC timestamp>/
	QuietMax   float64       // busy % of one CPU under which the machine is quiet
	QuietWait  time.Duration // longest wait for a quiet machine before a test
	Log        *slog.Logger
}

// smoke turns o into the CI check: one run of 2 s tests, 1 stream only,
// without ocserv.
func (o Options) smoke() Options {
	o.Runs = 1
	o.Time = 2 * time.Second
	var secs []string
	for _, s := range o.Sections {
		if s != SecOcserv && s != SecMiredo { // the peers: measured in full runs only
			secs = append(secs, s)
		}
	}
	o.Sections = secs
	return o
}

// Result is everything one benchmark run measured.
type Result struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Options  struct {
		TimeSeconds float64  `json:"time_seconds"`
		Runs        int      `json:"runs"`
		Smoke       bool     `json:"smoke"`
		Sections    []string `json:"sections"`
		QuietMax    float64  `json:"quiet_max"`
	} `json:"options"`
	Machine      Machine       `json:"machine"`
	Measurements []Measurement `json:"measurements"`
	Sessions     []Session     `json:"sessions"`
	Summaries    []Summary     `json:"summaries"`
	Ratios       []Ratio       `json:"ratios"`
	// Failures are what did not run; Notes what looked wrong.
	Failures []string `json:"failures,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	// Dir is where the result files are.
	Dir string `json:"-"`
}

// ErrFailed is wrapped by Run's error when a part of the benchmark did not
// run (the result is still complete for what did).
var ErrFailed = errors.New("benchmark incomplete")

// bench is one run of the benchmark.
type bench struct {
	opts  Options
	log   *slog.Logger
	pair  netbench.Pair
	work  string // scratch: certificates, configs, control sockets
	logs  string // daemon logs and raw iperf3 reports
	cert  tlspump.Cert
	iperf *netbench.Proc
	res   *Result
	oc    *ocservFiles
}

// Run runs the benchmark and writes throughput.json and throughput.md in a
// new directory under o.ResultsDir. It returns the result even when a part
// failed (then the error wraps ErrFailed), and a nil result only when
// nothing could be measured.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if len(o.Sections) == 0 {
		o.Sections = AllSections
	}
	for _, s := range o.Sections {
		if !slices.Contains(AllSections, s) {
			return nil, fmt.Errorf("unknown section %q (known: %s)", s, strings.Join(AllSections, ","))
		}
	}
	if o.Smoke {
		o = o.smoke()
	}
	if o.Runs < 1 || o.Time < time.Second {
		return nil, fmt.Errorf("need at least 1 run of at least 1 s (got %d runs of %v)", o.Runs, o.Time)
	}
	if err := lab.CheckRoot(); err != nil {
		return nil, errors.New("the benchmark must run as root: it creates network namespaces and TUN devices")
	}
	if err := checkTools(o); err != nil {
		return nil, err
	}
	release, err := netbench.Lock(LockPath)
	if err != nil {
		return nil, err
	}
	defer release()

	b := &bench{opts: o, log: o.Log, pair: topology(), res: &Result{Started: time.Now().UTC()}}
	b.res.Options.TimeSeconds = o.Time.Seconds()
	b.res.Options.Runs = o.Runs
	b.res.Options.Smoke = o.Smoke
	b.res.Options.Sections = o.Sections
	b.res.Options.QuietMax = o.QuietMax
	b.res.Dir = filepath.Join(o.ResultsDir, b.res.Started.Format("20060102T150405Z"))
	b.logs = filepath.Join(b.res.Dir, "logs")
	if err := os.MkdirAll(b.logs, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	b.work, err = os.MkdirTemp("", "ipbt-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(b.work)
	// ocserv's workers run as nobody and reach its sockets here.
	if err := os.Chmod(b.work, 0o755); err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}

	teardown := func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := b.pair.Down(tctx); err != nil {
			b.log.Error("tear down namespaces", "err", err)
		}
	}
	for _, ns := range b.pair.Namespaces() {
		if lab.NetnsExists(ns) {
			b.log.Warn("removing the namespaces an earlier run left", "namespace", ns)
			teardown()
			break
		}
	}
	defer teardown()
	b.log.Info("setting up", "namespaces", NSSrv+", "+NSCli, "results", b.res.Dir)
	if err := b.pair.Up(ctx); err != nil {
		return nil, fmt.Errorf("namespaces: %w", err)
	}
	b.res.Machine = describeMachine(ctx, o.IPHTTPS, slices.Contains(o.Sections, SecOcserv))
	if mtu, err := linkMTU(ctx, NSCli, DevCli); err == nil {
		b.res.Machine.MTU["veth"] = mtu
	}
	b.cert, err = tlspump.WriteCert(b.work, b.pair.Srv4.Addr(), b.pair.Srv6.Addr())
	if err != nil {
		return nil, err
	}
	if err := b.startIperfServer(ctx); err != nil {
		return nil, err
	}
	defer func() { _ = b.iperf.Stop(5 * time.Second) }()

	b.runAll(ctx)
	b.finish()
	if werr := b.write(); werr != nil {
		return b.res, werr
	}
	if ctx.Err() != nil {
		return b.res, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if len(b.res.Failures) > 0 {
		return b.res, fmt.Errorf("%w: %s", ErrFailed, strings.Join(b.res.Failures, "; "))
	}
	return b.res, nil
}

// runAll runs every section of every run, in order.
func (b *bench) runAll(ctx context.Context) {
	for run := 1; run <= b.opts.Runs; run++ {
		for _, sec := range AllSections {
			if !slices.Contains(b.opts.Sections, sec) || ctx.Err() != nil {
				continue
			}
			b.log.Info("section", "run", run, "of", b.opts.Runs, "section", sec)
			switch sec {
			case SecVeth:
				b.runVeth(ctx, run)
			case SecTLS:
				b.add(b.runTLS(ctx, run))
			case SecIPHTTPS:
				b.runIPHTTPS(ctx, run)
			case SecOcserv:
				b.runOcserv(ctx, run)
			case SecTeredo:
				b.runTeredo(ctx, run)
			case SecMiredo:
				b.runMiredo(ctx, run)
			case SecSixToFour:
				b.runSixToFour(ctx, run)
			}
		}
	}
}

// finish computes the summaries and ratios and collects the failures.
func (b *bench) finish() {
	r := b.res
	r.Finished = time.Now().UTC()
	r.Summaries = Summarize(r.Measurements)
	r.Ratios = Ratios(r.Summaries)
	for _, m := range r.Measurements {
		if m.Error != "" {
			r.Failures = append(r.Failures, fmt.Sprintf("run %d %s: %s", m.Run, m.Key(), m.Error))
		}
	}
	for _, s := range r.Sessions {
		if s.Error != "" {
			r.Failures = append(r.Failures, fmt.Sprintf("run %d %s: %s", s.Run, s.Section, s.Error))
		}
	}
	for sec, suite := range r.Machine.Suites {
		if !strings.Contains(suite, WantSuite) && !strings.Contains(suite, "AES-128-GCM") {
			r.Notes = append(r.Notes, fmt.Sprintf("%s negotiated %s, not %s: the comparison is not like for like", sectionName(sec), suite, WantSuite))
		}
	}
	for _, s := range r.Summaries {
		if s.NotQuiet > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: the machine was not quiet (busy ≥ %.0f%% of one CPU) before %d of %d runs", s.Key(), r.Options.QuietMax, s.NotQuiet, s.Runs+s.Failed))
		}
	}
	slices.Sort(r.Notes)
}

// write saves throughput.json and throughput.md in the result directory.
func (b *bench) write() error {
	js, err := json.MarshalIndent(b.res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.res.Dir, "throughput.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.res.Dir, "throughput.md"), []byte(Markdown(b.res)), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	b.log.Info("results written", "dir", b.res.Dir)
	return nil
}

// add records a measurement and logs it.
func (b *bench) add(m Measurement) {
	b.res.Measurements = append(b.res.Measurements, m)
	attrs := []any{"run", m.Run, "test", m.Key()}
	if m.Kind != KindPing {
		attrs = append(attrs, "mbps", fmt.Sprintf("%.0f", m.Mbps))
	}
	if m.Retransmits != nil {
		attrs = append(attrs, "retr", *m.Retransmits)
	}
	if m.Ping != nil {
		attrs = append(attrs, "ping", m.Ping.String())
	}
	if len(m.CPU) > 0 {
		attrs = append(attrs, "cpu", fmtCPU(m.CPU))
	}
	attrs = append(attrs, "busy", fmt.Sprintf("%.0f", m.MachineBusy))
	if len(m.Drops) > 0 {
		attrs = append(attrs, "drops", fmtDrops(m.Drops))
	}
	if !m.Quiet.Quiet {
		attrs = append(attrs, "pre_test_busy", fmt.Sprintf("%.0f", m.Quiet.Busy))
	}
	if m.Error != "" {
		b.log.Error("measurement failed", append(attrs, "err", m.Error)...)
		return
	}
	b.log.Info("measured", attrs...)
}

// checkTools names the programs the chosen sections need that are missing.
func checkTools(o Options) error {
	tools := map[string]string{"ip": "iproute2", "ss": "iproute2", "tc": "iproute2", "ping": "iputils-ping", "iperf3": "iperf3"}
	if slices.Contains(o.Sections, SecOcserv) {
		tools["ocserv"], tools["ocpasswd"], tools["openconnect"] = "ocserv", "ocserv", "openconnect"
	}
	var missing, pkgs []string
	for t, pkg := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
			if !slices.Contains(pkgs, pkg) {
				pkgs = append(pkgs, pkg)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		slices.Sort(pkgs)
		return fmt.Errorf("missing %s: apt-get install %s (bench/run installs them)", strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if slices.Contains(o.Sections, SecIPHTTPS) {
		if st, err := os.Stat(o.IPHTTPS); err != nil || st.IsDir() {
			return fmt.Errorf("iphttps binary %q not found (--iphttps)", o.IPHTTPS)
		}
	}
	if slices.Contains(o.Sections, SecTLS) && o.Self == "" {
		return errors.New("the TLS section needs the benchmark's own binary path")
	}
	return nil
}
