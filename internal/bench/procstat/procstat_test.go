package procstat

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	line := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 10 18446744073709551615\n"
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Fatalf("CPU time %v, want %v", got, want)
	}
	if _, err := parseStatCPU("1 (x) S 1 2"); err == nil {
		t.Fatal("short line accepted")
	}
}

func TestParseStatPPID(t *testing.T) {
	pp, err := parseStatPPID("42 (a (b) c) S 7 42 42 0 -1\n")
	if err != nil || pp != 7 {
		t.Fatalf("ppid %d, %v", pp, err)
	}
	if _, err := parseStatPPID("42 (x"); err == nil {
		t.Fatal("malformed line accepted")
	}
}

func TestSelf(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS %d, %v", rss, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if pp, err := ParentPID(os.Getpid()); err != nil || pp != os.Getppid() {
		t.Fatalf("parent %d, %v; want %d", pp, err, os.Getppid())
	}
}

// TestBusyWhileSpinning spins this process until it has used spinCPU of CPU
// time (for at most spinLimit of wall time) and requires that both its CPU
// time and the machine's busy time saw it: a process that spins is busy.
// Spinning for an amount of CPU time rather than of wall time keeps the
// test sound on a loaded machine, where the spinning thread gets only a
// share of a CPU (and the others make the machine busier still). A
// reading stuck at 0 fails: the CPU time never grows (the spin runs into
// spinLimit), or the machine reads less than 10 % of one CPU busy while a
// process spun on it. (The process's system time alone, from the runtime
// and the reads of /proc, grows by about 1 % of the wall time: 150 ms in
// spinLimit, half of spinCPU.)
func TestBusyWhileSpinning(t *testing.T) {
	const (
		spinCPU   = 300 * time.Millisecond
		spinLimit = 15 * time.Second
	)
	ncpu := procStatCPUs(t) // the CPUs /proc/stat sums, for percent of one CPU
	self := os.Getpid()
	c0, err := CPUTime(self)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ReadMachine()
	if err != nil {
		t.Fatal(err)
	}
	var used time.Duration
	deadline := time.Now().Add(spinLimit)
	for next := time.Now(); used < spinCPU && time.Now().Before(deadline); {
		if time.Now().Before(next) {
			continue // spin
		}
		next = time.Now().Add(50 * time.Millisecond)
		c, err := CPUTime(self)
		if err != nil {
			t.Fatal(err)
		}
		used = c - c0
	}
	b, err := ReadMachine()
	if err != nil {
		t.Fatal(err)
	}
	wall := b.At.Sub(a.At)
	own := Percent(used, wall)
	busy := BusyPercent(a, b, ncpu)
	t.Logf("spun %v: this process used %v of CPU (%.0f %% of one), the machine (%d CPUs) was busy %.0f %% of one CPU", wall.Round(time.Millisecond), used, own, ncpu, busy)
	if used < spinCPU {
		t.Errorf("spinning for %v used %v of CPU time, want %v", wall.Round(time.Millisecond), used, spinCPU)
	}
	// The machine's busy time holds this process's; ticks are counted
	// per CPU, hence the slack of half.
	if busy < 10 || busy < own/2 || busy > float64(ncpu)*100 {
		t.Errorf("machine busy %.1f %% of one CPU while this process spun at %.0f %%, want at least 10 %% and at least half of that (at most %d %%)", busy, own, ncpu*100)
	}
}

// procStatCPUs counts the cpuN lines of /proc/stat.
func procStatCPUs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "cpu"); ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' {
			n++
		}
	}
	if n == 0 {
		t.Fatal("no cpuN line in /proc/stat")
	}
	return n
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
