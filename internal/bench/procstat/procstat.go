// Package procstat reads what the benchmarks report about processes and the
// machine from /proc: CPU time, resident memory, and the machine's busy time.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc (100 on Linux).
const clockTicks = 100

// CPUTime is the user plus system CPU time a process has used so far, all its
// threads included (the children it waited for are not).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// ParentPID is the process ID of a process's parent.
func ParentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatPPID(string(b))
}

// statFields returns the fields of a /proc/PID/stat line after the command
// name (field 2), which may hold spaces and parentheses: the state (field
// 3) is the first. It fails if there are fewer than n.
func statFields(s string, n int) ([]string, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("procstat: malformed stat line")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < n {
		return nil, fmt.Errorf("procstat: short stat line")
	}
	return f, nil
}

// parseStatPPID reads the parent PID (field 4) of a /proc/PID/stat line.
func parseStatPPID(s string) (int, error) {
	f, err := statFields(s, 2)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat
// line.
func parseStatCPU(s string) (time.Duration, error) {
	f, err := statFields(s, 13)
	if err != nil {
		return 0, err
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("procstat: bad CPU fields %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// RSS is the resident set size of a process in bytes (VmRSS).
func RSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmRSS:")
}

func parseStatusKB(b []byte, key string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) < 1 {
			break
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: %s %q: %w", key, f[0], err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("procstat: no %s line", key)
}

// Machine is a reading of the machine-wide CPU counters (/proc/stat).
type Machine struct {
	Busy, Total uint64 // ticks summed over all CPUs; idle and iowait are not busy
	At          time.Time
}

// ReadMachine reads /proc/stat.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("procstat: unexpected /proc/stat line %q", line)
	}
	m := Machine{At: time.Now()}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("procstat: /proc/stat field %q: %w", s, err)
		}
		if i >= 8 { // guest time is already counted in user time
			break
		}
		m.Total += v
		if i != 3 && i != 4 { // idle, iowait
			m.Busy += v
		}
	}
	return m, nil
}

// BusyPercent is the machine's busy time between two readings, in percent of
// one CPU (a 2-CPU machine fully busy reads 200).
func BusyPercent(a, b Machine, ncpu int) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total) * float64(ncpu) * 100
}

// Percent is CPU time used over a wall-clock interval, in percent of one CPU.
func Percent(used, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(used) / float64(wall) * 100
}

// Median of xs (the mean of the two middle values for an even count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
