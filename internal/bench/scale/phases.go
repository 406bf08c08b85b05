package scale

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/bench/procstat"
	"github.com/iphttps/iphttps/internal/loadgen"
)

// quietBusy is the machine busy time (percent of one CPU, other users
// only: the server is idle then) below which a phase starts at once.
const quietBusy = 40

// waitQuiet waits, at most o.QuietWait, for other users of the machine to
// calm down before a phase whose numbers they would distort.
func (r *runner) waitQuiet(ctx context.Context, phase string) (netbench.Quiet, error) {
	if r.o.QuietWait <= 0 {
		return netbench.Quiet{}, nil
	}
	q, err := netbench.WaitQuiet(ctx, quietBusy, r.o.QuietWait)
	if err != nil {
		return q, err
	}
	if !q.Quiet {
		r.log.Warn("the machine is busy with other work; measuring anyway", "phase", phase,
			"busy_pct_of_one_cpu", fmt.Sprintf("%.0f", q.Busy), "waited", q.Waited.Round(time.Second))
	} else if q.Waited > 2*time.Second {
		r.log.Info("waited for a quiet machine", "phase", phase, "waited", q.Waited.Round(time.Second))
	}
	return q, nil
}

// minBaselineRate is the lowest rate of the baseline pings, per second.
const minBaselineRate = 100

// idlePhase opens o.Sessions sessions and holds them; over o.Time it
// measures the server's and the generator's CPU, then their memory, and
// confirms with the server that it holds the sessions.
func (r *runner) idlePhase(ctx context.Context) error {
	n := r.o.Sessions
	res := &IdleResult{ServerRSSBefore: r.rss0}
	r.res.Idle = res
	k0 := snapshotKernel(ctx)
	defer func() { res.KernelCounters = moved(k0, snapshotKernel(ctx)) }()
	budget := openBudget(n) + r.o.Time + 2*time.Minute
	r.log.Info("idle phase: opening sessions", "sessions", n, "concurrency", r.o.Concurrency)
	g, err := r.startLoadgen("loadgen-idle", string(loadgen.ModeIdle), budget,
		"--sessions", strconv.Itoa(n), "--hold", budget.String(), "--stdin-stop")
	if err != nil {
		return err
	}
	defer g.p.Kill()
	var samples []progressSample
	up, err := g.await(ctx, "up", budget, func(e loadgen.Event) {
		samples = append(samples, progressSample{e.At, e.Opened})
	})
	if err != nil {
		return err
	}
	samples = append(samples, progressSample{up.At, up.Opened})
	r.log.Info("idle phase: sessions up", "opened", up.Opened, "failed", up.Failed)
	if up.Opened < n {
		r.fail("idle phase: only %d of %d sessions came up (%d failed)", up.Opened, n, up.Failed)
	}
	if err := sleep(ctx, 3*time.Second); err != nil { // let both sides settle
		return err
	}
	if c, err := serverCounters(ctx, r.o.IPHTTPS, r.sock); err == nil {
		res.ServerActiveBefore = c["sessions_active"]
	} else {
		return err
	}

	r.log.Info("idle phase: measuring CPU", "window", r.o.Time)
	s0, g0 := cpuOf(r.server.PID()), cpuOf(g.p.PID())
	m0, _ := procstat.ReadMachine()
	t0 := time.Now()
	if err := sleep(ctx, r.o.Time); err != nil {
		return err
	}
	s1, g1 := cpuOf(r.server.PID()), cpuOf(g.p.PID())
	m1, _ := procstat.ReadMachine()
	wall := time.Since(t0)
	res.WindowSeconds = wall.Seconds()
	res.ServerCPUPercent = procstat.Percent(s1-s0, wall)
	res.LoadgenCPUPercent = procstat.Percent(g1-g0, wall)
	res.MachineBusyPercent = procstat.BusyPercent(m0, m1, r.res.Environment.CPUs)
	if res.ServerRSSWith, err = procstat.RSS(r.server.PID()); err != nil {
		return fmt.Errorf("server RSS: %w", err)
	}
	res.LoadgenRSS, _ = procstat.RSS(g.p.PID())
	res.ServerTCPSocketsInUse = tcpInUse(r.server.PID())
	c, err := serverCounters(ctx, r.o.IPHTTPS, r.sock)
	if err != nil {
		return err
	}
	res.ServerActiveAfter = c["sessions_active"]
	r.log.Info("idle phase: measured", "server_sessions_active", res.ServerActiveAfter,
		"server_rss_mib", float64(res.ServerRSSWith)/(1<<20), "server_cpu_percent", res.ServerCPUPercent)
	held := res.ServerActiveAfter
	if held == 0 {
		held = uint64(up.Opened)
	}
	if held > 0 && res.ServerRSSWith > r.rss0 {
		res.RSSPerSessionKiB = float64(res.ServerRSSWith-r.rss0) / float64(held) / 1024
	}
	r.memoryBreakdown(res, samples, t0.Add(wall))

	g.p.Stdin().Close() // ends the hold
	done, err := g.await(ctx, "done", 2*time.Minute, nil)
	if err != nil {
		return err
	}
	res.Open, res.Hold = done.Report.Handshake, done.Report.Hold
	if err := waitExit(g.p, time.Minute); err != nil {
		r.fail("idle phase: load generator: %v", err)
	}
	if res.Hold != nil && res.Hold.Dropped > 0 {
		r.fail("idle phase: %d sessions dropped while held: %s", res.Hold.Dropped, strings.Join(res.Hold.Errors, "; "))
	}
	if res.Open.Failed > 0 {
		r.fail("idle phase: %d session handshakes failed: by phase %v: %s", res.Open.Failed, res.Open.FailedByPhase, strings.Join(res.Open.Errors, "; "))
	}
	if res.ServerActiveBefore < uint64(n) || res.ServerActiveAfter < uint64(n) {
		r.fail("idle phase: the server reported %d then %d active sessions, want %d", res.ServerActiveBefore, res.ServerActiveAfter, n)
	}
	return r.waitServerIdle(ctx)
}

// memoryBreakdown fits the server's live Go heap and goroutine stacks, from
// its GC trace, against the sessions open at each collection up to end.
func (r *runner) memoryBreakdown(res *IdleResult, samples []progressSample, end time.Time) {
	f, err := os.Open(filepath.Join(r.dir, "server.log"))
	if err != nil {
		return
	}
	pts := parseGCTrace(f)
	f.Close()
	var xs, heap, stacks []float64
	for _, p := range pts {
		at := r.server.Started().Add(p.At)
		if at.After(end) {
			break
		}
		xs = append(xs, openedAt(samples, at))
		heap = append(heap, p.LiveMB*1024)
		stacks = append(stacks, p.StacksMB*1024)
	}
	if len(xs) == 0 {
		return
	}
	last := len(xs) - 1
	res.ServerGoHeapLiveMB, res.ServerGoStacksMB, res.ServerSessionsLastGC = heap[last]/1024, stacks[last]/1024, xs[last]
	h, ok1 := slope(xs, heap)
	s, ok2 := slope(xs, stacks)
	if ok1 && ok2 && xs[last] >= float64(r.o.Sessions)/4 {
		res.HeapPerSessionKiB, res.StacksPerSessionKiB, res.GCPoints = h, s, len(xs)
	}
}

// tcpInUse reads "TCP: inuse N" from the server namespace's sockstat.
func tcpInUse(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/sockstat", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 3 && fl[0] == "TCP:" && fl[1] == "inuse" {
			n, _ := strconv.Atoi(fl[2])
			return n
		}
	}
	return 0
}

// waitServerIdle waits until the server has let go of every session, so
// the next phase starts clean.
func (r *runner) waitServerIdle(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := serverCounters(ctx, r.o.IPHTTPS, r.sock)
		if err != nil {
			return err
		}
		if c["sessions_active"] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.fail("the server still reports %d active sessions a minute after the load generator closed them", c["sessions_active"])
			return nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// handshakePhase opens o.Handshakes sessions as fast as o.Concurrency
// allows, each closed once its Router Advertisement arrived.
func (r *runner) handshakePhase(ctx context.Context) error {
	n := r.o.Handshakes
	res := &PhaseCPU{}
	r.res.Handshake = res
	budget := openBudget(n) + time.Minute
	var err error
	if res.Quiet, err = r.waitQuiet(ctx, "handshake"); err != nil {
		return err
	}
	r.log.Info("handshake phase", "sessions", n, "concurrency", r.o.Concurrency)
	k0 := snapshotKernel(ctx)
	defer func() { res.KernelCounters = moved(k0, snapshotKernel(ctx)) }()
	s0, d0 := cpuOf(r.server.PID()), runDelay(r.server.PID())
	m0, _ := procstat.ReadMachine()
	t0 := time.Now()
	g, err := r.startLoadgen("loadgen-handshake", string(loadgen.ModeHandshake), budget, "--sessions", strconv.Itoa(n))
	if err != nil {
		return err
	}
	defer g.p.Kill()
	up, err := g.await(ctx, "up", budget, nil)
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	s1 := cpuOf(r.server.PID())
	res.ServerRunDelayMs = ms(runDelay(r.server.PID()) - d0)
	m1, _ := procstat.ReadMachine()
	res.MachineBusyPercent = procstat.BusyPercent(m0, m1, r.res.Environment.CPUs)
	done, err := g.await(ctx, "done", time.Minute, nil)
	if err != nil {
		return err
	}
	if err := waitExit(g.p, time.Minute); err != nil {
		r.fail("handshake phase: load generator: %v", err)
	}
	res.Report = done.Report.Handshake
	res.Seconds = wall.Seconds()
	res.ServerCPUPercent = procstat.Percent(s1-s0, wall)
	res.LoadgenCPUPercent = procstat.Percent(time.Duration(up.CPUSeconds*float64(time.Second)), wall)
	if res.Report.Completed > 0 {
		res.ServerCPUPerOpMs = (s1 - s0).Seconds() * 1000 / float64(res.Report.Completed)
	}
	r.log.Info("handshake phase: done", "completed", res.Report.Completed, "failed", res.Report.Failed,
		"per_second", res.Report.PerSecond, "p50_ms", res.Report.Total.P50, "p99_ms", res.Report.Total.P99)
	if res.Report.Failed > 0 || res.Report.Completed < n {
		r.fail("handshake phase: %d of %d handshakes completed: failures by phase %v: %s",
			res.Report.Completed, n, res.Report.FailedByPhase, strings.Join(res.Report.Errors, "; "))
	}
	return r.waitServerIdle(ctx)
}

// tricklePhase opens o.TrickleSessions sessions; each sends o.TrickleRate
// echo requests per second for o.Time to the intranet host, while the
// generator pings the same host without the tunnel at the same rate.
func (r *runner) tricklePhase(ctx context.Context) error {
	n := r.o.TrickleSessions
	res := &Trickle{}
	r.res.Trickle = res
	budget := openBudget(n) + r.o.Time + 2*time.Minute
	rate := strconv.FormatFloat(r.o.TrickleRate, 'f', -1, 64)
	// The baseline is one sender: at least 100 requests/s so that its p99
	// rests on enough samples, still nothing beside the tunnel's load.
	baseRate := strconv.FormatFloat(max(r.o.TrickleRate, minBaselineRate), 'f', -1, 64)
	var err error
	if res.Quiet, err = r.waitQuiet(ctx, "trickle"); err != nil {
		return err
	}
	r.log.Info("trickle phase", "sessions", n, "rate_per_session", rate, "time", r.o.Time)
	k0 := snapshotKernel(ctx)
	g, err := r.startLoadgen("loadgen-trickle", string(loadgen.ModeTrickle), budget,
		"--sessions", strconv.Itoa(n),
		"--rate", rate, "--duration", r.o.Time.String(),
		"--target", intranetV6,
		"--baseline-target", intranetV6, "--baseline-rate", baseRate)
	if err != nil {
		return err
	}
	defer g.p.Kill()
	up, err := g.await(ctx, "up", budget, nil)
	if err != nil {
		return err
	}
	if up.Opened < n {
		r.fail("trickle phase: only %d of %d sessions came up", up.Opened, n)
	}
	s0, d0, t0 := cpuOf(r.server.PID()), runDelay(r.server.PID()), time.Now()
	m0, _ := procstat.ReadMachine()
	done, err := g.await(ctx, "done", r.o.Time+time.Minute, nil)
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	res.ServerRunDelayMs = ms(runDelay(r.server.PID()) - d0)
	m1, _ := procstat.ReadMachine()
	res.MachineBusyPercent = procstat.BusyPercent(m0, m1, r.res.Environment.CPUs)
	res.KernelCounters = moved(k0, snapshotKernel(ctx))
	res.Seconds = wall.Seconds()
	res.ServerCPUPercent = procstat.Percent(cpuOf(r.server.PID())-s0, wall)
	res.LoadgenCPUPercent = procstat.Percent(time.Duration((done.CPUSeconds-up.CPUSeconds)*float64(time.Second)), wall)
	if err := waitExit(g.p, time.Minute); err != nil {
		r.fail("trickle phase: load generator: %v", err)
	}
	rep := done.Report
	res.Open, res.Echo, res.Baseline = rep.Handshake, rep.Echo, rep.Baseline
	if res.Echo == nil {
		return fmt.Errorf("the load generator reported no echo results")
	}
	if res.Baseline != nil && res.Baseline.RTT.N > 0 && res.Echo.RTT.N > 0 {
		res.AddedP50 = res.Echo.RTT.P50 - res.Baseline.RTT.P50
		res.AddedP99 = res.Echo.RTT.P99 - res.Baseline.RTT.P99
	}
	e := res.Echo
	r.log.Info("trickle phase: done", "sent", e.Sent, "received", e.Received, "lost", e.Lost,
		"p50_ms", e.RTT.P50, "p99_ms", e.RTT.P99, "added_p50_ms", res.AddedP50, "added_p99_ms", res.AddedP99)
	if res.Open.Failed > 0 {
		r.fail("trickle phase: %d session handshakes failed: %s", res.Open.Failed, strings.Join(res.Open.Errors, "; "))
	}
	if e.Lost > 0 || e.Sent < e.Planned || e.SendersFailed > 0 {
		r.fail("trickle phase: %d of %d echo requests lost (%d planned, %d sessions with loss, %d failed)%s; kernel counters that moved: %v; "+
			"server CPU %.0f%%, its threads waited %.0f ms for a CPU, machine busy %.0f%% of one CPU",
			e.Lost, e.Sent, e.Planned, e.SendersWithLoss, e.SendersFailed, joinErrors(e.Errors), res.KernelCounters,
			res.ServerCPUPercent, res.ServerRunDelayMs, res.MachineBusyPercent)
	}
	if b := res.Baseline; b == nil || b.Lost > 0 || b.SendersFailed > 0 {
		if b == nil {
			r.fail("trickle phase: no baseline pings")
		} else {
			r.fail("trickle phase: baseline pings without the tunnel: %d of %d lost: %s", b.Lost, b.Sent, strings.Join(b.Errors, "; "))
		}
	}
	return nil
}

// checks turns the results into the table's rows.
func (res *Result) checks() []Check {
	var cs []Check
	if i := res.Idle; i != nil {
		held := 0
		if i.Hold != nil {
			held = i.Hold.Held
		}
		cs = append(cs,
			Check{
				Metric: "Concurrent sessions held on one server",
				Value:  fmt.Sprintf("%d (server: %d active)", held, i.ServerActiveAfter),
				Target: strconv.Itoa(res.Settings.Sessions),
				Met:    held >= res.Settings.Sessions && i.ServerActiveAfter >= uint64(res.Settings.Sessions),
			},
			Check{
				Metric: "Server RSS per idle session",
				Value:  fmt.Sprintf("%.1f KiB (%s → %s)", i.RSSPerSessionKiB, mib(i.ServerRSSBefore), mib(i.ServerRSSWith)),
				Target: fmt.Sprintf("≤ %d KiB", TargetRSSPerSessionKiB),
				Met:    i.RSSPerSessionKiB > 0 && i.RSSPerSessionKiB <= TargetRSSPerSessionKiB,
			},
			Check{
				Metric: "Server CPU, sessions idle",
				Value:  fmt.Sprintf("%.2f%% of one CPU over %.0f s", i.ServerCPUPercent, i.WindowSeconds),
				Target: fmt.Sprintf("≤ %d%%", TargetIdleCPUPercent),
				Met:    i.WindowSeconds > 0 && i.ServerCPUPercent <= TargetIdleCPUPercent,
			},
			Check{
				Metric: "Load generator RSS / CPU, sessions idle",
				Value: fmt.Sprintf("%s (%.1f KiB/session) / %.2f%%", mib(i.LoadgenRSS),
					float64(i.LoadgenRSS)/float64(max(held, 1))/1024, i.LoadgenCPUPercent),
			})
	}
	if h := res.Handshake; h != nil {
		cs = append(cs,
			Check{
				Metric: "Handshake rate (TCP + TLS + POST + 200 + RS/RA)",
				Value: fmt.Sprintf("%.0f/s (%d sessions, concurrency %d, client key exchange %s)",
					h.Report.PerSecond, h.Report.Completed, h.Report.Concurrency, res.Settings.KeyExchange),
				Target: fmt.Sprintf("≥ %d/s", TargetHandshakesPerSec),
				Met:    h.Report.PerSecond >= TargetHandshakesPerSec && h.Report.Failed == 0,
			},
			Check{
				Metric: "Handshake time p50 / p99",
				Value:  fmt.Sprintf("%.1f / %.1f ms", h.Report.Total.P50, h.Report.Total.P99),
			},
			Check{
				Metric: "Server CPU per handshake",
				Value:  fmt.Sprintf("%.2f ms (≈ %.0f/s per CPU)", h.ServerCPUPerOpMs, 1000/max(h.ServerCPUPerOpMs, 0.001)),
			})
	}
	if t := res.Trickle; t != nil && t.Echo != nil {
		e := t.Echo
		cs = append(cs, Check{
			Metric: "Trickle loss",
			Value: fmt.Sprintf("%d of %d (%d sessions × %s/s × %s)", e.Lost+(e.Planned-e.Sent), e.Planned, e.Senders,
				strconv.FormatFloat(res.Settings.TrickleRate, 'f', -1, 64), res.Settings.Time),
			Target: "0",
			Met:    e.Lost == 0 && e.Sent == e.Planned && e.Planned > 0,
		}, Check{
			Metric: "Tunnel RTT p50 / p99",
			Value:  fmt.Sprintf("%.3f / %.3f ms", e.RTT.P50, e.RTT.P99),
		})
		if b := t.Baseline; b != nil {
			cs = append(cs, Check{
				Metric: "Plain RTT p50 / p99 (no tunnel, same path)",
				Value:  fmt.Sprintf("%.3f / %.3f ms", b.RTT.P50, b.RTT.P99),
			}, Check{
				Metric: "Added latency p50 / p99",
				Value:  fmt.Sprintf("%.3f / %.3f ms", t.AddedP50, t.AddedP99),
			})
		}
	}
	return cs
}

// ms converts to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// joinErrors renders sample errors after a message.
func joinErrors(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return ": " + strings.Join(errs, "; ")
}
