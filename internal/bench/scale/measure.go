package scale

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"debug/buildinfo"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serverCounters reads the server's counters the documented way:
// `iphttps show statistics --json --socket SOCK`.
func serverCounters(ctx context.Context, bin, sock string) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "show", "statistics", "--json", "--socket", sock)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("iphttps show statistics: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var all map[string]map[string]uint64
	if err := json.Unmarshal(stdout.Bytes(), &all); err != nil {
		return nil, fmt.Errorf("iphttps show statistics: %w", err)
	}
	for _, c := range all {
		return c, nil
	}
	return nil, errors.New("iphttps show statistics: no daemon in the answer")
}

// certKind describes the key of the certificate in a PEM file, e.g.
// "ECDSA P-256".
func certKind(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok {
		return "ECDSA " + k.Curve.Params().Name, nil
	}
	return c.PublicKeyAlgorithm.String(), nil
}

// binaryVersion names the VCS revision a Go binary was built from, with
// "+modified" when the tree had changes. A binary built without VCS
// information (-buildvcs=false) is named by its --version when that was set
// at build time, else by the checkout in the current directory, which is
// where bench/run builds it.
func binaryVersion(ctx context.Context, path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	if rev := vcsRevision(bi); rev != "" {
		return rev + " (" + bi.GoVersion + ")"
	}
	if v := versionFlag(ctx, path); v != "" && v != "dev" {
		return "version " + v + " (" + bi.GoVersion + ")"
	}
	return checkoutVersion(ctx) + " (" + bi.GoVersion + ")"
}

// versionFlag runs `path --version` ("iphttps version X") and returns X.
func versionFlag(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) == 3 && f[1] == "version" {
		return f[2]
	}
	return ""
}

// vcsRevision returns the VCS revision stamped into a binary, "" if none.
func vcsRevision(bi *debug.BuildInfo) string {
	rev, modified := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "+modified"
	}
	return rev
}

// checkoutVersion describes the git checkout in the current directory:
// "checkout 0123456789ab", "+modified" with uncommitted changes to tracked
// files.
func checkoutVersion(ctx context.Context) string {
	git := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "git", args...).Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil || rev == "" {
		return "unknown revision"
	}
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		rev += "+modified"
	}
	return "checkout " + rev
}

// fdLimit reads a process's soft limit of open files from /proc.
func fdLimit(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return f[0] + "/" + f[1], nil
			}
		}
	}
	return "", errors.New("no 'Max open files' line")
}

// firstLine returns the first line of file whose key matches, without the
// key and separator, e.g. "model name" in /proc/cpuinfo.
func firstLine(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// gcPoint is one collection of the Go runtime's GC trace (GODEBUG=gctrace=1).
type gcPoint struct {
	At       time.Duration // since the process started
	LiveMB   float64       // heap marked live
	StacksMB float64       // goroutine stacks scanned
}

// gcLine matches "gc 12 @3.456s 1%: ... ms cpu, 40->41->20 MB, 42 MB goal, 1 MB stacks, ...".
var gcLine = regexp.MustCompile(`^gc \d+ @([0-9.]+)s .*? (\d+)->(\d+)->(\d+) MB, \d+ MB goal, (\d+) MB stacks`)

// parseGCTrace extracts the collections from a log.
func parseGCTrace(r io.Reader) []gcPoint {
	var pts []gcPoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := gcLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err1 := strconv.ParseFloat(m[1], 64)
		live, err2 := strconv.ParseFloat(m[4], 64)
		stacks, err3 := strconv.ParseFloat(m[5], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		pts = append(pts, gcPoint{At: time.Duration(at * float64(time.Second)), LiveMB: live, StacksMB: stacks})
	}
	return pts
}

// progressSample is how many sessions the load generator had open at a time.
type progressSample struct {
	At     time.Time
	Opened int
}

// openedAt interpolates the sessions open at t from samples sorted by time
// (before the first: none; after the last: the last).
func openedAt(samples []progressSample, t time.Time) float64 {
	if len(samples) == 0 || t.Before(samples[0].At) {
		return 0
	}
	i, _ := slices.BinarySearchFunc(samples, t, func(s progressSample, t time.Time) int { return s.At.Compare(t) })
	if i >= len(samples) {
		return float64(samples[len(samples)-1].Opened)
	}
	b := samples[i]
	if i == 0 || b.At.Equal(t) {
		return float64(b.Opened)
	}
	a := samples[i-1]
	f := float64(t.Sub(a.At)) / float64(b.At.Sub(a.At))
	return float64(a.Opened) + f*float64(b.Opened-a.Opened)
}

// slope fits y = a + b*x by least squares and returns b; ok is false with
// fewer than two distinct x.
func slope(xs, ys []float64) (b float64, ok bool) {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0, false
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den <= 1e-9*n*sxx || den == 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / den, true
}

// logProblems counts the WARN and ERROR lines of a slog text log and keeps
// a few distinct messages. Lines containing one of the expected strings are
// skipped.
func logProblems(path string, expected ...string) (int, []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	n := 0
	var samples []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	msgRE := regexp.MustCompile(`msg=("(?:[^"\\]|\\.)*"|\S+)`)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "time=") { // GC trace and the benchmark's own lines
			continue
		}
		if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
			continue
		}
		for _, e := range expected {
			if strings.Contains(line, e) {
				continue lines
			}
		}
		n++
		msg := line
		if m := msgRE.FindStringSubmatch(line); m != nil {
			msg = strings.Trim(m[1], `"`)
		}
		if len(samples) < 5 && !slices.Contains(samples, msg) {
			samples = append(samples, msg)
		}
	}
	return n, samples
}
