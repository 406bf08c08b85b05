package tput

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/bench/iperf"
	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/bench/procstat"
	"github.com/iphttps/iphttps/internal/lab"
)

const (
	idlePings    = 20
	pingInterval = 200 * time.Millisecond
	// minMbps is the goodput below which a test counts as "no traffic".
	minMbps = 1.0
)

// daemon is a process whose CPU time (with its descendants') a test reports.
type daemon struct {
	role string // "server" or "client"
	proc *netbench.Proc
}

// counterFunc reads the drop and error counters of a section's daemons and
// devices, by name.
type counterFunc func(ctx context.Context) map[string]uint64

// waitQuiet waits (bounded) for a quiet machine and logs when it was not.
func (b *bench) waitQuiet(ctx context.Context) netbench.Quiet {
	q, err := netbench.WaitQuiet(ctx, b.opts.QuietMax, b.opts.QuietWait)
	if err != nil {
		return q
	}
	if !q.Quiet {
		b.log.Warn("machine not quiet before the test; measuring anyway", "busy_pct_of_one_cpu", fmt.Sprintf("%.0f", q.Busy), "waited", q.Waited.Round(time.Second))
	}
	return q
}

// ping pings target from the client namespace count times.
func (b *bench) ping(ctx context.Context, target string, count int) (*iperf.Ping, error) {
	timeout := time.Duration(count)*pingInterval + 15*time.Second
	out, err := netbench.Output(ctx, NSCli, timeout, iperf.PingArgs(target, count, pingInterval)...)
	p, perr := iperf.ParsePing(string(out))
	if perr != nil {
		if err != nil {
			return nil, err
		}
		return nil, perr
	}
	return &p, nil
}

// idlePing measures the idle round trip to target.
func (b *bench) idlePing(ctx context.Context, run int, sec, target string) Measurement {
	m := Measurement{Test: idle(sec), Run: run}
	m.Quiet = b.waitQuiet(ctx)
	mach0, _ := procstat.ReadMachine()
	m.Start = time.Now()
	p, err := b.ping(ctx, target, idlePings)
	mach1, _ := procstat.ReadMachine()
	m.Seconds = time.Since(m.Start).Seconds()
	m.MachineBusy = procstat.BusyPercent(mach0, mach1, runtime.NumCPU())
	switch {
	case err != nil:
		m.Error = err.Error()
	case p.Received == 0:
		m.Error = fmt.Sprintf("no reply from %s", target)
	}
	m.Ping = p
	return m
}

// loadedPingPlan says when the ping under load starts in a test of length
// d, and how many pings fit before the load ends (at most 20, 0.2 s apart).
func loadedPingPlan(d time.Duration) (delay time.Duration, count int) {
	delay = min(1500*time.Millisecond, d/4)
	count = int((d - delay - 500*time.Millisecond) / pingInterval)
	return delay, max(3, min(idlePings, count))
}

// iperfTests are the (streams, direction) pairs of a tunnel or the veth.
func (b *bench) iperfTests() []struct {
	streams int
	dir     string
} {
	tests := []struct {
		streams int
		dir     string
	}{{1, "fwd"}, {1, "rev"}, {4, "fwd"}, {4, "rev"}}
	if b.opts.Smoke {
		tests = tests[:2]
	}
	return tests
}

// iperfTest runs one iperf3 test against target from the client namespace,
// retrying once (with a fresh iperf3 server) if it fails to run.
func (b *bench) iperfTest(ctx context.Context, run int, sec, target string, streams int, dir string, daemons []daemon, counters counterFunc) Measurement {
	var m Measurement
	for try := 1; try <= 2; try++ {
		m = b.iperfOnce(ctx, run, sec, target, streams, dir, daemons, counters, try)
		if m.Error == "" || ctx.Err() != nil || !daemonsRunning(daemons) {
			break
		}
		if try == 1 {
			b.log.Warn("iperf3 failed; restarting its server and trying again", "test", m.Key(), "err", m.Error)
			if err := b.restartIperfServer(ctx); err != nil {
				m.Error += "; " + err.Error()
				break
			}
		}
	}
	return m
}

func (b *bench) iperfOnce(ctx context.Context, run int, sec, target string, streams int, dir string, daemons []daemon, counters counterFunc, try int) Measurement {
	m := Measurement{Test: Test{Section: sec, Kind: KindIperf, Streams: streams, Dir: dir}, Run: run}
	m.Quiet = b.waitQuiet(ctx)
	var before map[string]uint64
	if counters != nil {
		before = counters(ctx)
	}
	cpu0 := readCPU(daemons)
	mach0, _ := procstat.ReadMachine()
	m.Start = time.Now()

	var loaded *iperf.Ping
	var loadedErr error
	pingDone := make(chan struct{})
	if streams == 1 {
		delay, count := loadedPingPlan(b.opts.Time)
		go func() {
			defer close(pingDone)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			loaded, loadedErr = b.ping(ctx, target, count)
		}()
	} else {
		close(pingDone)
	}
	out, runErr := netbench.Output(ctx, NSCli, b.opts.Time+30*time.Second, iperf.ClientArgs(target, b.opts.Time, streams, dir == "rev")...)
	wall := time.Since(m.Start)
	mach1, _ := procstat.ReadMachine()
	cpu1 := readCPU(daemons)
	<-pingDone
	m.Seconds = wall.Seconds()
	m.MachineBusy = procstat.BusyPercent(mach0, mach1, runtime.NumCPU())
	m.CPU = cpuPercent(cpu0, cpu1, wall)
	if counters != nil {
		m.Drops = moved(before, counters(ctx))
	}
	raw := filepath.Join(b.logs, fmt.Sprintf("run%d-%s-P%d-%s-try%d.json", run, sec, streams, dir, try))
	_ = os.WriteFile(raw, out, 0o644)

	res, perr := iperf.Parse(out)
	switch {
	case perr != nil && strings.HasPrefix(perr.Error(), "iperf3: "):
		m.Error = perr.Error() // iperf3's own message is the clearest
	case runErr != nil:
		m.Error = runErr.Error()
	case perr != nil:
		m.Error = perr.Error()
	case res.Mbps < minMbps:
		m.Error = fmt.Sprintf("no traffic: %.3f Mbit/s", res.Mbps)
	}
	if m.Error == "" {
		m.Iperf = &res
		m.Mbps = res.Mbps
		m.Retransmits = res.Retransmits
	}
	if !daemonsRunning(daemons) {
		m.Error = strings.TrimPrefix(m.Error+"; a daemon under test exited", "; ")
	}
	if streams == 1 {
		if loadedErr != nil {
			b.log.Warn("ping under load failed", "test", m.Key(), "err", loadedErr)
		}
		m.Ping = loaded
	}
	return m
}

// readCPU reads the CPU time of each daemon's process tree; daemons that
// have ended are left out.
func readCPU(daemons []daemon) map[string]netbench.TreeCPU {
	out := map[string]netbench.TreeCPU{}
	for _, d := range daemons {
		if t, err := netbench.ReadTreeCPU(d.proc.PID()); err == nil {
			out[d.role] = t
		}
	}
	return out
}

// cpuPercent turns two readings into % of one CPU over wall.
func cpuPercent(a, b map[string]netbench.TreeCPU, wall time.Duration) map[string]float64 {
	if len(b) == 0 {
		return nil
	}
	out := map[string]float64{}
	for role, t1 := range b {
		if t0, ok := a[role]; ok {
			out[role] = procstat.Percent(t1.Since(t0), wall)
		}
	}
	return out
}

func daemonsRunning(ds []daemon) bool {
	for _, d := range ds {
		if d.proc.Exited() {
			return false
		}
	}
	return true
}

// moved returns the counters that grew from before to after, by how much.
func moved(before, after map[string]uint64) map[string]uint64 {
	var out map[string]uint64
	for k, v := range after {
		if v > before[k] {
			if out == nil {
				out = map[string]uint64{}
			}
			out[k] = v - before[k]
		}
	}
	return out
}

// isDropCounter tells the drop and error counters among a daemon's.
func isDropCounter(name string) bool {
	return strings.HasPrefix(name, "drop_") || strings.HasSuffix(name, "_errors") ||
		name == "handshake_failures" || name == "refused_full"
}

// devCounters adds the drop counters of device dev in ns to out, as
// "label name".
func devCounters(ctx context.Context, out map[string]uint64, label, ns, dev string) error {
	s, err := netbench.ReadDevStats(ctx, ns, dev)
	if err != nil {
		return err
	}
	for k, v := range s.Map() {
		out[label+" "+k] = v
	}
	return nil
}

// waitFor polls ok every 200 ms until it holds, ctx ends, timeout passes, or
// one of procs exits; the error says which.
func waitFor(ctx context.Context, what string, timeout time.Duration, ok func() bool, procs ...*netbench.Proc) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return nil
		}
		for _, p := range procs {
			if p.Exited() {
				return fmt.Errorf("%s: %v", what, p.Wait(ctx))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// listening reports whether something listens on TCP port in ns.
func listening(ctx context.Context, ns string, port int) bool {
	out, err := netbench.Output(ctx, ns, 5*time.Second, "ss", "-Hltn", "sport = :"+strconv.Itoa(port))
	return err == nil && strings.TrimSpace(string(out)) != ""
}

// answers reports whether target answers one ping from the client side.
func answers(ctx context.Context, target string) bool {
	_, err := netbench.Output(ctx, NSCli, 5*time.Second, "ping", "-n", "-c", "1", "-W", "1", target)
	return err == nil
}

// linkMTU reads the MTU of dev in ns.
func linkMTU(ctx context.Context, ns, dev string) (int, error) {
	out, err := netbench.Output(ctx, "", 5*time.Second, "ip", "-n", ns, "-o", "link", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(out))
	if i := slices.Index(f, "mtu"); i >= 0 && i+1 < len(f) {
		return strconv.Atoi(f[i+1])
	}
	return 0, errors.New("no mtu in ip link output")
}

// fmtCPU is "server 95, client 80".
func fmtCPU(cpu map[string]float64) string {
	var parts []string
	for _, role := range []string{"server", "client"} {
		if v, ok := cpu[role]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", role, v))
		}
	}
	return strings.Join(parts, ", ")
}

// fmtDrops is "name +n, ..." sorted by name.
func fmtDrops(d map[string]uint64) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s +%d", k, d[k])
	}
	return strings.Join(parts, ", ")
}

// logTail is the last lines a daemon wrote to its log (without the
// benchmark's own "=== " lines), joined with " | ", for error messages.
func logTail(path string) string {
	var keep []string
	for _, l := range strings.Split(lab.LogTail(path, 12), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "=== ") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 3 {
		keep = keep[len(keep)-3:]
	}
	if len(keep) == 0 {
		return "(nothing logged)"
	}
	return strings.Join(keep, " | ")
}
