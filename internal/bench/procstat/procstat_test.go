package procstat

import (
	"os"
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
	a, err := ReadMachine()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	b, _ := ReadMachine()
	if p := BusyPercent(a, b, 2); p < 0 || p > 200 {
		t.Fatalf("busy %v%%", p)
	}
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
