package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// StateFile is the name of the state file in a lab directory.
const StateFile = "state.json"

// State is what a lab records about itself, so that another process can
// remove it (`iphttps lab down`) after the lab process was interrupted or
// died.
type State struct {
	Prefix     string       `json:"prefix"`
	Dir        string       `json:"dir"`
	TempDir    bool         `json:"temp_dir"`
	LabPID     int          `json:"lab_pid"`
	LabStart   uint64       `json:"lab_start"`
	Namespaces []string     `json:"namespaces"`
	EtcNetns   []string     `json:"etc_netns"`
	Sockets    []string     `json:"sockets"`
	Procs      []ProcRecord `json:"procs"`
}

// ProcRecord names one child process of the lab. Start is the process start
// time from /proc, so a recycled PID is never mistaken for it.
type ProcRecord struct {
	Name  string `json:"name"`
	NS    string `json:"ns"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// writeState writes s to dir/state.json atomically.
func writeState(dir string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	tmp := filepath.Join(dir, StateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, StateFile)); err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	return nil
}

// ReadState reads the state file of the lab in dir. A missing file gives an
// error wrapping os.ErrNotExist.
func ReadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return s, fmt.Errorf("lab state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("lab state %s: %w", filepath.Join(dir, StateFile), err)
	}
	if err := validPrefix(s.Prefix); err != nil {
		return s, fmt.Errorf("lab state %s: %w", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// Running reports whether the lab process recorded in s is still alive
// (and is not the calling process).
func (s State) Running() bool {
	return s.LabPID != os.Getpid() && sameProcess(s.LabPID, s.LabStart)
}

// Destroy removes the lab recorded in dir/state.json: it asks a still
// running lab process to shut down (SIGTERM) and waits for it, stops the
// recorded daemons that are left, deletes the recorded namespaces and
// /etc/netns directories, and removes the sockets and the state file. It
// only touches PIDs recorded in the state file (checked against their start
// time) and names that carry the recorded prefix. log may be nil.
func Destroy(ctx context.Context, dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := ReadState(dir)
	if err != nil {
		return err
	}
	if s.Running() {
		log.Info("asking the lab process to shut down", "pid", s.LabPID)
		_ = syscall.Kill(s.LabPID, syscall.SIGTERM)
		deadline := time.Now().Add(60 * time.Second)
		for sameProcess(s.LabPID, s.LabStart) && time.Now().Before(deadline) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(100 * time.Millisecond)
		}
		if sameProcess(s.LabPID, s.LabStart) {
			log.Warn("lab process did not exit; removing its lab anyway", "pid", s.LabPID)
		}
	}
	var errs []error
	for _, p := range s.Procs {
		if p.PID == os.Getpid() || !sameProcess(p.PID, p.Start) {
			continue
		}
		log.Info("stopping", "name", p.Name, "pid", p.PID)
		_ = syscall.Kill(p.PID, syscall.SIGTERM)
		waitGone([]int{p.PID}, 5*time.Second)
		if sameProcess(p.PID, p.Start) {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			waitGone([]int{p.PID}, 2*time.Second)
		}
	}
	for _, ns := range s.Namespaces {
		if !IsLabNamespace(s.Prefix, ns) && !IsSixToFourLabNamespace(s.Prefix, ns) {
			log.Warn("state file names a namespace without the lab prefix; leaving it alone", "namespace", ns)
			continue
		}
		if NetnsExists(ns) {
			log.Info("deleting namespace", "namespace", ns)
		}
		if err := DeleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range s.EtcNetns {
		if base := filepath.Base(d); filepath.Dir(d) != etcNetnsDir || !IsLabNamespace(s.Prefix, base) && !IsSixToFourLabNamespace(s.Prefix, base) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	for _, sock := range s.Sockets {
		if filepath.Dir(sock) == filepath.Clean(dir) {
			_ = os.Remove(sock)
		}
	}
	if err := RemoveStale(ctx, s.Prefix, log); err != nil {
		errs = append(errs, err)
	}
	if s.TempDir && filepath.Clean(s.Dir) == filepath.Clean(dir) {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab directory: %w", err))
		}
	} else if err := os.Remove(filepath.Join(dir, StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove lab state: %w", err))
	}
	return errors.Join(errs...)
}

// RemoveStale deletes every namespace and /etc/netns directory named like a
// lab namespace of prefix (see [IsLabNamespace]), killing the processes in
// those namespaces first. log may be nil.
func RemoveStale(ctx context.Context, prefix string, log *slog.Logger) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names, err := ListNetns(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if !IsLabNamespace(prefix, n) {
			continue
		}
		log.Info("removing stale namespace", "namespace", n)
		if err := DeleteNetns(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	ents, err := os.ReadDir(etcNetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("read %s: %w", etcNetnsDir, err))
	}
	for _, e := range ents {
		if !IsLabNamespace(prefix, e.Name()) {
			continue
		}
		d := filepath.Join(etcNetnsDir, e.Name())
		log.Info("removing stale directory", "dir", d)
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// LabNamespaces lists the existing namespaces that carry prefix as a lab
// namespace name.
func LabNamespaces(ctx context.Context, prefix string) ([]string, error) {
	names, err := ListNetns(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if IsLabNamespace(prefix, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// etcNetnsPath is the /etc/netns directory of namespace ns.
func etcNetnsPath(ns string) string { return filepath.Join(etcNetnsDir, ns) }

// trimLines keeps the last n lines of s.
func trimLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Alive reports whether the recorded process still runs (same PID and
// start time).
func (r ProcRecord) Alive() bool { return sameProcess(r.PID, r.Start) }
