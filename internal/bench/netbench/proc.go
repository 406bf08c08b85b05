package netbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Spec describes a process to start inside a namespace.
type Spec struct {
	NS       string        // namespace; empty: the caller's
	Argv     []string      // program and arguments
	Lifetime time.Duration // hard bound: the process group is killed after it (required)
	Stdin    io.Reader     // nil: /dev/null
	// Stdout and Stderr receive the output. Where nil, the output goes to
	// the file Log (appended), or is discarded if Log is empty too.
	Stdout, Stderr io.Writer
	Log            string
	// Pipes connects the process's standard input and output to pipes
	// whose other ends are Proc.Stdin and Proc.Stdout; Stdin and Stdout
	// must be nil then. They are plain pipes, not exec's, so that Wait does
	// not close the read end before everything written has been read.
	Pipes bool
	// Env is added to the benchmark's environment.
	Env []string
}

// Proc is a process started by Start. With a namespace it runs as
// `ip netns exec NS argv...`; ip execs the program in place, so PID is the
// program's own. It leads its own process group, so a Ctrl-C in the
// terminal reaches only the benchmark, which stops its processes itself, and
// it gets SIGKILL should the benchmark die first.
type Proc struct {
	Name  string
	Argv  []string
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{}
	err   error // Wait's result, valid once done is closed
	began time.Time
	stdin io.WriteCloser // with Spec.Pipes
	out   io.ReadCloser  // with Spec.Pipes
}

// command builds the exec.Cmd for argv inside ns, bounded by ctx: when ctx
// ends the whole process group is killed.
func command(ctx context.Context, ns string, argv []string) *exec.Cmd {
	name, args := argv[0], argv[1:]
	if ns != "" {
		name, args = "ip", append([]string{"netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild holding an output pipe must not keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Start starts s as a process named name (for messages). The process ends
// at the latest when s.Lifetime has passed or ctx is done.
func Start(ctx context.Context, name string, s Spec) (*Proc, error) {
	if len(s.Argv) == 0 {
		return nil, fmt.Errorf("start %s: no command", name)
	}
	if s.Lifetime <= 0 {
		return nil, fmt.Errorf("start %s: no lifetime bound", name)
	}
	if s.Pipes && (s.Stdin != nil || s.Stdout != nil) {
		return nil, fmt.Errorf("start %s: pipes and Stdin or Stdout given", name)
	}
	lctx, cancel := context.WithTimeout(ctx, s.Lifetime)
	cmd := command(lctx, s.NS, s.Argv)
	if len(s.Env) > 0 {
		cmd.Env = append(os.Environ(), s.Env...)
	}
	cmd.Stdin = s.Stdin
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	// ours are the pipe ends of the benchmark, theirs the process's, closed
	// here once it has started.
	var ours, theirs []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	if s.Pipes {
		inR, inW, err := os.Pipe()
		if err != nil {
			cancel()
			return nil, fmt.Errorf("start %s: stdin pipe: %w", name, err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			cancel()
			closeAll([]*os.File{inR, inW})
			return nil, fmt.Errorf("start %s: stdout pipe: %w", name, err)
		}
		cmd.Stdin, cmd.Stdout = inR, outW
		ours, theirs = []*os.File{inW, outR}, []*os.File{inR, outW}
	}
	var logf *os.File
	if s.Log != "" && (cmd.Stdout == nil || cmd.Stderr == nil) {
		f, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			cancel()
			closeAll(append(ours, theirs...))
			return nil, fmt.Errorf("start %s: log file: %w", name, err)
		}
		fmt.Fprintf(f, "=== %s: starting %s in namespace %q: %s\n", time.Now().Format(time.RFC3339Nano), name, s.NS, strings.Join(s.Argv, " "))
		logf = f
		if cmd.Stdout == nil {
			cmd.Stdout = f
		}
		if cmd.Stderr == nil {
			cmd.Stderr = f
		}
	}
	err := cmd.Start()
	closeAll(theirs)
	if err != nil {
		cancel()
		closeAll(ours)
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", name, s.Argv[0], err)
	}
	p := &Proc{Name: name, Argv: s.Argv, cmd: cmd, log: logf, done: make(chan struct{}), began: time.Now()}
	if s.Pipes {
		p.stdin, p.out = ours[0], ours[1]
	}
	go func() {
		p.err = cmd.Wait()
		cancel()
		if logf != nil {
			fmt.Fprintf(logf, "=== %s: %s exited: %v\n", time.Now().Format(time.RFC3339Nano), name, p.exitString())
			logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// PID is the process ID (that of the program itself, see Proc).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Started is when the process was started.
func (p *Proc) Started() time.Time { return p.began }

// Stdin is the write end of the pipe to the process's standard input, nil
// without Spec.Pipes. Closing it is the caller's business.
func (p *Proc) Stdin() io.WriteCloser { return p.stdin }

// Stdout is the read end of the pipe from the process's standard output,
// nil without Spec.Pipes. It reaches end of file once the process (and
// whatever inherited it) has closed it; closing it is the caller's
// business.
func (p *Proc) Stdout() io.ReadCloser { return p.out }

// Done is closed once the process has ended and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end, or for ctx, and returns how it ended:
// nil for exit status 0.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CPU is the user and system CPU time of the process, known once it has
// ended (zero before).
func (p *Proc) CPU() time.Duration {
	if !p.Exited() || p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// ExitStatus says how the process ended, as os.ProcessState does ("exit
// status 1", "signal: killed"); "" while it runs.
func (p *Proc) ExitStatus() string {
	if !p.Exited() {
		return ""
	}
	return p.exitString()
}

func (p *Proc) exitString() string {
	if st := p.cmd.ProcessState; st != nil {
		return st.String()
	}
	if p.err != nil {
		return p.err.Error()
	}
	return "unknown"
}

func (p *Proc) exitErr() error {
	if p.err == nil {
		return nil
	}
	return fmt.Errorf("%s (pid %d) %s", p.Name, p.PID(), p.exitString())
}

// Stop sends SIGTERM to the process and waits up to grace; then it kills the
// process group and waits up to 5 s more. It returns an error only if the
// process could not be ended; how a stopped process exited is not an error.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = syscall.Kill(p.PID(), syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	return p.Kill()
}

// Kill kills the process group (SIGKILL) at once and waits up to 5 s for
// the process to end. It returns an error only if the process survived.
func (p *Proc) Kill() error {
	if p.Exited() {
		return nil
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.PID())
	}
}

// Output runs argv inside ns (the caller's namespace if ns is empty),
// bounded by timeout and ctx, and returns its standard output. A failure
// carries the command and its standard error (or output).
func Output(ctx context.Context, ns string, timeout time.Duration, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := command(ctx, ns, argv)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		msg = lastLine(stdout.String())
	}
	where := ""
	if ns != "" {
		where = " in " + ns
	}
	if msg != "" {
		return stdout.Bytes(), fmt.Errorf("%s%s: %w: %s", strings.Join(argv, " "), where, err, msg)
	}
	return stdout.Bytes(), fmt.Errorf("%s%s: %w", strings.Join(argv, " "), where, err)
}

// lastLine is the last non-empty line of s, at most 200 bytes.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200] + "..."
	}
	return l
}
