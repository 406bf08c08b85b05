// Package scale is the scale benchmark of iphttps (iphttps-bench scale): one
// iphttps server in a network namespace, a load generator process
// (internal/loadgen) in another, and an intranet host behind the server. It
// measures the server's memory and CPU with many idle sessions, the
// handshake rate, and loss and added latency of a steady trickle of echo
// requests through many sessions.
package scale

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/bench/docsection"
	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/bench/procstat"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/loadgen"
)

// Options describe one run.
type Options struct {
	// IPHTTPS is the iphttps binary to benchmark.
	IPHTTPS string
	// Loadgen is the command line that starts the load generator, to
	// which its flags are appended, e.g. [/path/iphttps-bench scale loadgen].
	Loadgen []string
	// Sessions is the number of idle sessions held at once.
	Sessions int
	// Handshakes is the number of sessions opened in the handshake-rate
	// phase, and Concurrency the handshakes in progress at once (also
	// when opening the other phases' sessions).
	Handshakes  int
	Concurrency int
	// TrickleSessions each send TrickleRate echo requests per second for
	// Time. Time is also the idle CPU measurement window.
	TrickleSessions int
	TrickleRate     float64
	Time            time.Duration
	// Sources is the number of client source addresses.
	Sources int
	// KeyExchange is the TLS key exchange the load generator offers
	// (loadgen.KeyExchangeWindows or loadgen.KeyExchangeGo).
	KeyExchange string
	// ResultsDir receives a directory per run (UTC timestamp) with
	// scale.json, scale.md and the logs.
	ResultsDir string
	// Doc, if set, is the markdown document whose scale section is
	// replaced with the results.
	Doc string
	// Smoke marks a small run.
	Smoke bool
	// MaxTime bounds the whole run.
	MaxTime time.Duration
	// QuietWait bounds the wait for a quiet machine before the handshake
	// and trickle phases (0: no wait).
	QuietWait time.Duration
	// Log receives progress; Out the results table.
	Log *slog.Logger
	Out io.Writer
}

func (o Options) check() (Options, error) {
	switch {
	case o.IPHTTPS == "":
		return o, errors.New("no iphttps binary given (--iphttps)")
	case len(o.Loadgen) == 0:
		return o, errors.New("no load generator command")
	case o.Sessions < 1 || o.Handshakes < 1 || o.TrickleSessions < 1:
		return o, errors.New("sessions, handshakes and trickle sessions must be at least 1")
	case o.Sessions > 100_000 || o.Handshakes > 100_000 || o.TrickleSessions > 20_000:
		return o, errors.New("at most 100000 sessions and handshakes and 20000 trickle sessions")
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return o, errors.New("concurrency must be between 1 and 4096")
	case o.TrickleRate <= 0 || o.TrickleRate > 1000:
		return o, errors.New("trickle rate must be more than 0 and at most 1000 per second")
	case o.Time < time.Second || o.Time > time.Hour:
		return o, errors.New("time must be between 1s and 1h")
	case o.MaxTime <= 0:
		return o, errors.New("max time must be positive")
	}
	abs, err := filepath.Abs(o.IPHTTPS)
	if err != nil {
		return o, err
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return o, fmt.Errorf("iphttps binary %s is not an executable file", abs)
	}
	o.IPHTTPS = abs
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return o, nil
}

// lockPath is the lock that keeps two scale runs from sharing namespaces; the
// throughput benchmark takes another, so both can run at the same time.
const lockPath = "/run/iphttps-bench-scale.lock"

// workDirPattern names the temporary directory of a run (control socket,
// certificate).
const workDirPattern = "iphttps-bench-scale-*"

// runner holds one run's state.
type runner struct {
	o        Options
	log      *slog.Logger
	dir      string // results of this run
	work     string // control socket and certificate
	sock     string
	pem      string
	server   *netbench.Proc
	children []*netbench.Proc
	rss0     uint64
	res      *Result
}

// Run performs the benchmark: it takes the lock, removes leftovers of an
// aborted run, builds the namespaces, starts the server, runs the idle,
// handshake and trickle phases, writes the results and removes everything
// it created. A returned error means the run could not take place; a run
// that took place returns its Result, whose Failures say whether sessions
// failed or packets were lost.
func Run(ctx context.Context, o Options) (*Result, error) {
	o, err := o.check()
	if err != nil {
		return nil, err
	}
	if err := lab.CheckRoot(); err != nil {
		return nil, errors.New("the scale benchmark must run as root (it creates network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("ip(8) not found: install iproute2")
	}
	release, err := netbench.Lock(lockPath)
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, o.MaxTime)
	defer cancel()

	r := &runner{o: o, log: o.Log, res: &Result{Started: time.Now().UTC(), Smoke: o.Smoke}}
	r.res.Settings = Settings{
		Sessions: o.Sessions, OpenConcurrency: o.Concurrency, Handshakes: o.Handshakes, HandshakeConcurrency: o.Concurrency,
		TrickleSessions: o.TrickleSessions, TrickleRate: o.TrickleRate, Time: o.Time.String(),
		KeyExchange: cmp.Or(o.KeyExchange, loadgen.KeyExchangeWindows),
	}
	defer r.teardown()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	r.phases(ctx)
	r.finish(ctx)
	r.res.Seconds = time.Since(r.res.Started).Seconds()
	r.res.Checks = r.res.checks()
	if err := ctx.Err(); err != nil {
		r.res.Failures = append(r.res.Failures, "run interrupted: "+err.Error())
		if werr := r.res.writeFiles(r.dir); werr != nil {
			r.log.Error("writing partial results", "err", werr)
		}
		return nil, fmt.Errorf("run interrupted (%w); partial results in %s", err, r.dir)
	}

	r.res.printTable(o.Out)
	if err := r.res.writeFiles(r.dir); err != nil {
		return r.res, fmt.Errorf("writing results to %s: %w", r.dir, err)
	}
	r.log.Info("results written", "dir", r.dir)
	if o.Doc != "" {
		if err := docsection.UpdateFile(o.Doc, docSection, r.res.Markdown(), docsection.PerformanceTemplate); err != nil {
			return r.res, fmt.Errorf("updating %s: %w", o.Doc, err)
		}
		r.log.Info("scale section updated", "doc", o.Doc)
	}
	return r.res, nil
}

// fail records a failure of the run.
func (r *runner) fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.log.Error(msg)
	r.res.Failures = append(r.res.Failures, msg)
}

// setup prepares the machine and starts the server.
func (r *runner) setup(ctx context.Context) error {
	r.log.Info("removing leftovers of earlier runs", "namespaces", namespaces())
	if err := removeNamespaces(ctx); err != nil {
		return fmt.Errorf("removing leftover namespaces: %w", err)
	}
	// Under the lock, any work directory left is an aborted run's.
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), workDirPattern))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	r.dir = filepath.Join(r.o.ResultsDir, r.res.Started.Format("20060102T150405Z"))
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	var err error
	if r.work, err = os.MkdirTemp("", workDirPattern); err != nil {
		return err
	}
	r.sock = filepath.Join(r.work, "srv.sock")
	r.pem = filepath.Join(r.work, "self-signed-"+serverIPv4+".pem")

	most := max(r.o.Sessions, r.o.TrickleSessions, r.o.Concurrency)
	if err := raiseFDLimit(uint64(most + 1024)); err != nil { // one per session, and some
		return err
	}
	total := r.o.Sessions + r.o.Handshakes + r.o.TrickleSessions
	ports := (total+r.o.Sources-1)/r.o.Sources + 1000
	r.log.Info("building namespaces", "namespaces", namespaces(), "source_addresses", r.o.Sources)
	portRange, err := buildTopology(ctx, r.o.Sources, ports)
	if err != nil {
		return err
	}
	env := &r.res.Environment
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env.Kernel = strings.TrimSpace(string(b))
	}
	env.CPU = firstLine("/proc/cpuinfo", "model name")
	env.CPUs = runtime.NumCPU()
	env.IPHTTPS = r.o.IPHTTPS
	env.IPHTTPSBuild = binaryVersion(ctx, r.o.IPHTTPS)
	env.PortRange = portRange
	env.SourceAddrs = r.o.Sources
	return r.startServer(ctx)
}

// raiseFDLimit makes this process's open-file limit (soft and hard) at
// least need, within fs.nr_open; the server and the load generator inherit
// it (Setrlimit also stops Go from restoring the original soft limit in
// children). Raising the hard limit needs CAP_SYS_RESOURCE; without it a
// hard limit that is already high enough will do.
func raiseFDLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			need = min(need, n)
		}
	}
	want := lim
	want.Cur = max(lim.Cur, need)
	want.Max = max(lim.Max, need)
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	if err != nil && lim.Max >= need {
		want.Max = lim.Max
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	}
	if err != nil {
		return fmt.Errorf("the run needs %d open files per process, the hard limit is %d and cannot be raised (%v; CAP_SYS_RESOURCE?): use fewer sessions", need, lim.Max, err)
	}
	return nil
}

// startServer starts iphttps server in its namespace, waits until its
// control socket answers, checks its certificate and takes its resident
// memory before any session.
func (r *runner) startServer(ctx context.Context) error {
	argv := []string{r.o.IPHTTPS, "server",
		"--listen", serverIPv4 + ":" + serverPort,
		"--prefix", linkPrefix,
		"--self-signed", serverIPv4,
		"--control-socket", r.sock,
		"--log-level", "warn",
		"--max-clients", strconv.Itoa(max(20000, r.o.Sessions+r.o.Concurrency)),
		// The load comes from a few addresses: no per-source limits.
		"--max-clients-per-source", "0", "--max-pending-per-source", "0",
		"--max-pending", strconv.Itoa(max(4096, 2*r.o.Concurrency)),
	}
	logPath := filepath.Join(r.dir, "server.log")
	r.log.Info("starting the server", "namespace", nsSrv, "log", logPath)
	p, err := r.start("server", netbench.Spec{NS: nsSrv, Argv: argv, Env: []string{"GODEBUG=gctrace=1"}, Log: logPath})
	if err != nil {
		return err
	}
	r.server = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p.Exited() {
			return fmt.Errorf("the server exited at start: %v; its log ends:\n%s", p.ExitStatus(), lab.LogTail(logPath, 15))
		}
		if _, err := os.Stat(r.pem); err == nil {
			if _, err := serverCounters(ctx, r.o.IPHTTPS, r.sock); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not answer on %s within 20s; its log ends:\n%s", r.sock, lab.LogTail(logPath, 15))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	env := &r.res.Environment
	if env.Certificate, err = certKind(r.pem); err != nil {
		return fmt.Errorf("the server's self-signed certificate: %w", err)
	}
	if env.ServerFDLimit, err = fdLimit(p.PID()); err != nil {
		return fmt.Errorf("the server's open-file limit: %w", err)
	}
	env.ServerTUN = linkInfo(ctx, nsSrv, tunName)
	r.log.Info("server up", "pid", p.PID(), "certificate", env.Certificate, "open_files", env.ServerFDLimit, "tun", env.ServerTUN)
	if err := sleep(ctx, 2*time.Second); err != nil { // let start-up settle
		return err
	}
	if r.rss0, err = procstat.RSS(p.PID()); err != nil {
		return fmt.Errorf("server RSS: %w", err)
	}
	return nil
}

// phases runs the three phases; a phase that cannot go on stops the run.
func (r *runner) phases(ctx context.Context) {
	for _, p := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"idle", r.idlePhase},
		{"handshake", r.handshakePhase},
		{"trickle", r.tricklePhase},
	} {
		if err := p.fn(ctx); err != nil {
			r.fail("%s phase: %v", p.name, err)
			return
		}
		if r.server.Exited() {
			return // finish reports it
		}
	}
}

// finish reads the server's final counters and log and stops it.
func (r *runner) finish(ctx context.Context) {
	sv := &r.res.Server
	if r.server.Exited() {
		sv.UnexpectedExit = r.server.ExitStatus()
		r.fail("the server exited during the run: %s; its log ends:\n%s", sv.UnexpectedExit, lab.LogTail(filepath.Join(r.dir, "server.log"), 15))
	} else {
		if c, err := serverCounters(ctx, r.o.IPHTTPS, r.sock); err == nil {
			sv.Counters = c
		} else {
			r.log.Warn("final server counters", "err", err)
		}
		// SIGTERM, then after 15 s the process group is killed; how it
		// ended is worth a warning unless it exited with status 0.
		err := r.server.Stop(15 * time.Second)
		if err == nil {
			err = r.server.Wait(context.Background())
		}
		if err != nil {
			r.log.Warn("stopping the server", "err", err)
		}
	}
	sv.LogProblems, sv.LogSamples = logProblems(filepath.Join(r.dir, "server.log"), "self-signed certificate")
	if sv.LogProblems > 0 {
		r.log.Warn("the server logged warnings or errors", "count", sv.LogProblems, "samples", sv.LogSamples)
	}
}

// teardown kills what is still running and removes the namespaces and the
// work directory, whatever happened.
func (r *runner) teardown() {
	for _, p := range r.children {
		_ = p.Kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := removeNamespaces(ctx); err != nil {
		r.log.Error("removing namespaces", "err", err)
	}
	if r.work != "" {
		os.RemoveAll(r.work)
	}
}

// start starts a process of the run (s.Lifetime is set here). The run's
// context does not bound it: an interrupted run still stops the server
// gracefully in finish, and teardown kills whatever is left. The lifetime,
// past o.MaxTime (which bounds the run), is only a backstop.
func (r *runner) start(name string, s netbench.Spec) (*netbench.Proc, error) {
	s.Lifetime = r.o.MaxTime + 5*time.Minute
	p, err := netbench.Start(context.Background(), name, s)
	if err != nil {
		return nil, err
	}
	r.children = append(r.children, p)
	return p, nil
}

// waitExit waits up to timeout for p to end by itself (it is not killed)
// and returns how it ended: nil for exit status 0.
func waitExit(p *netbench.Proc, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.Done():
		return p.Wait(context.Background())
	case <-t.C:
		return fmt.Errorf("%s (pid %d) still running after %v", p.Name, p.PID(), timeout)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// generator is a running load generator and its events.
type generator struct {
	p      *netbench.Proc
	log    string // its standard error
	events chan loadgen.Event
	err    error // decoding error, valid once events is closed
}

// startLoadgen starts the load generator in the client namespace with mode
// and extra flags; it ends by itself within maxTime.
func (r *runner) startLoadgen(name, mode string, maxTime time.Duration, extra ...string) (*generator, error) {
	argv := append([]string(nil), r.o.Loadgen...)
	argv = append(argv,
		"--server", serverIPv4+":"+serverPort,
		"--ca", r.pem,
		"--mode", mode,
		"--concurrency", strconv.Itoa(r.o.Concurrency),
		"--timeout", "30s",
		"--max-time", maxTime.String(),
		"--progress", "250ms",
	)
	if r.o.KeyExchange != "" {
		argv = append(argv, "--key-exchange", r.o.KeyExchange)
	}
	for _, s := range sourceAddrs(r.o.Sources) {
		argv = append(argv, "--source", s)
	}
	argv = append(argv, extra...)
	logPath := filepath.Join(r.dir, name+".log")
	p, err := r.start(name, netbench.Spec{NS: nsCli, Argv: argv, Log: logPath, Pipes: true})
	if err != nil {
		return nil, err
	}
	g := &generator{p: p, log: logPath, events: make(chan loadgen.Event, 1024)}
	go func() {
		defer close(g.events)
		defer p.Stdout().Close()
		dec := json.NewDecoder(p.Stdout())
		for {
			var e loadgen.Event
			if err := dec.Decode(&e); err != nil {
				if !errors.Is(err, io.EOF) {
					g.err = err
				}
				return
			}
			g.events <- e
		}
	}()
	return g, nil
}

// await returns the next event named want, handing progress events to
// onProgress (if not nil). It fails if the generator ends first, or ctx or
// timeout ends.
func (g *generator) await(ctx context.Context, want string, timeout time.Duration, onProgress func(loadgen.Event)) (loadgen.Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return loadgen.Event{}, ctx.Err()
		case <-t.C:
			return loadgen.Event{}, fmt.Errorf("%s: no %q event within %v", g.p.Name, want, timeout)
		case e, ok := <-g.events:
			if !ok {
				err := waitExit(g.p, 5*time.Second)
				return loadgen.Event{}, fmt.Errorf("%s ended before %q (exit: %v, output: %v); its log ends:\n%s",
					g.p.Name, want, err, g.err, lab.LogTail(g.log, 10))
			}
			if e.Event == want {
				return e, nil
			}
			if e.Event == "progress" && onProgress != nil {
				onProgress(e)
			}
		}
	}
}

// openBudget is a generous bound on opening n sessions.
func openBudget(n int) time.Duration {
	return 60*time.Second + time.Duration(n)*20*time.Millisecond
}

// cpuOf reads a process's CPU time, 0 if it cannot be read.
func cpuOf(pid int) time.Duration {
	d, _ := procstat.CPUTime(pid)
	return d
}
