package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is one child process of the lab, run as `ip netns exec NS argv...`.
// ip execs argv in place, so the child's PID is the daemon's PID. The child
// gets its own process group (a Ctrl-C in the lab's terminal reaches only the
// lab process, which then stops its children in order) and writes stdout and
// stderr to its log file.
type proc struct {
	name    string
	ns      string
	argv    []string
	logPath string
	cmd     *exec.Cmd
	pid     int
	start   uint64
	began   time.Time
	done    chan struct{} // closed when the process has been reaped
	state   *os.ProcessState
	waitErr error
	// stopped is set when the lab itself stopped or killed the process, so
	// its exit is expected.
	stopped atomic.Bool
	// reported is set once an unexpected exit was returned to a caller (by
	// WaitStatus), so Down does not report it again.
	reported atomic.Bool
}

// startProc starts argv inside namespace ns, appending its output to
// logPath after a header line naming the command.
func startProc(name, ns, logPath string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	fmt.Fprintf(f, "=== %s lab: starting %s in namespace %s: %s\n",
		time.Now().Format(time.RFC3339Nano), name, ns, strings.Join(argv, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	p := &proc{
		name:    name,
		ns:      ns,
		argv:    argv,
		logPath: logPath,
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		began:   time.Now(),
		done:    make(chan struct{}),
	}
	// The start time is read before the process can be reaped (only the
	// Wait below reaps it), so it is always there.
	p.start, _ = procStart(p.pid)
	go func() {
		err := cmd.Wait()
		p.state = cmd.ProcessState
		p.waitErr = err
		fmt.Fprintf(f, "=== %s lab: %s exited: %s\n", time.Now().Format(time.RFC3339Nano), name, p.exitString())
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended (and been reaped).
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitString describes how the process ended; only valid after done.
func (p *proc) exitString() string {
	if p.state == nil {
		if p.waitErr != nil {
			return p.waitErr.Error()
		}
		return "unknown"
	}
	return p.state.String()
}

// exitErr is nil for exit status 0, else an error describing the exit.
func (p *proc) exitErr() error {
	if p.state != nil && p.state.Success() {
		return nil
	}
	return fmt.Errorf("%s (pid %d) %s", p.name, p.pid, p.exitString())
}

// stop sends sig and waits up to grace for the process to exit; if it does
// not, the whole process group is killed. It returns nil only if the process
// exited with status 0 within grace. Stopping an exited process reports how
// it had exited.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	p.stopped.Store(true)
	if p.exited() {
		return p.exitErr()
	}
	_ = syscall.Kill(p.pid, sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-t.C:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit within %s of %s, nor after SIGKILL", p.name, p.pid, grace, sig)
	}
	return fmt.Errorf("%s (pid %d) did not exit within %s of %s; killed", p.name, p.pid, grace, sig)
}

// kill sends SIGKILL to the process group and waits for the process.
func (p *proc) kill() error {
	p.stopped.Store(true)
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL for 5s", p.name, p.pid)
	}
}

// record is p as the state file keeps it.
func (p *proc) record() ProcRecord {
	return ProcRecord{Name: p.name, NS: p.ns, PID: p.pid, Start: p.start}
}

// LogTail returns the last n lines of the file at path (reading at most its
// last 64 KiB), or a note saying why it could not be read.
func LogTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxRead = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	off := max(st.Size()-maxRead, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(log: %v)", err)
	}
	if len(b) == 0 {
		return "(log is empty)"
	}
	return trimLines(string(b), n)
}
