package scale

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a process the benchmark started inside a namespace as
// `ip netns exec NS argv...`. ip execs argv in place, so the child's PID is
// the measured program's. It has its own process group and dies with the
// benchmark (parent-death signal), should the benchmark be killed.
type child struct {
	name  string
	pid   int
	began time.Time
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{}  // closed once reaped
	err   error          // exit status, valid after done
	stdin io.WriteCloser // with pipes: the child's standard input
	out   io.ReadCloser  // with pipes: the child's standard output
}

// childSpec describes a child to start.
type childSpec struct {
	name    string
	ns      string
	argv    []string
	env     []string // added to the benchmark's environment
	logPath string   // stderr (and stdout, unless pipes) go here
	pipes   bool     // give the child a stdin pipe and read its stdout
}

// startChild starts spec.
func startChild(spec childSpec) (*child, error) {
	lf, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", spec.name, err)
	}
	fmt.Fprintf(lf, "=== %s scale: starting %s in namespace %s: %s\n",
		time.Now().UTC().Format(time.RFC3339Nano), spec.name, spec.ns, strings.Join(spec.argv, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", spec.ns}, spec.argv...)...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c := &child{name: spec.name, cmd: cmd, log: lf, done: make(chan struct{})}
	// Plain pipes rather than exec's: Wait must not close the read end
	// before everything the child wrote has been read.
	var childEnds []*os.File
	closeAll := func(fs ...*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	if spec.pipes {
		inR, inW, err := os.Pipe()
		if err != nil {
			lf.Close()
			return nil, fmt.Errorf("%s: stdin pipe: %w", spec.name, err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			closeAll(lf, inR, inW)
			return nil, fmt.Errorf("%s: stdout pipe: %w", spec.name, err)
		}
		cmd.Stdin, cmd.Stdout = inR, outW
		c.stdin, c.out = inW, outR
		childEnds = []*os.File{inR, outW}
	} else {
		cmd.Stdout = lf
	}
	err = cmd.Start()
	closeAll(childEnds...)
	if err != nil {
		lf.Close()
		if c.stdin != nil {
			c.stdin.Close()
			c.out.Close()
		}
		return nil, fmt.Errorf("%s: start %s: %w", spec.name, spec.argv[0], err)
	}
	c.pid, c.began = cmd.Process.Pid, time.Now()
	go func() {
		c.err = cmd.Wait()
		fmt.Fprintf(lf, "=== %s scale: %s exited: %v\n", time.Now().UTC().Format(time.RFC3339Nano), spec.name, exitText(c.err))
		lf.Close()
		close(c.done)
	}()
	return c, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// exited reports whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the child to end by itself and returns its
// exit error; a child still running afterwards is an error (not killed).
func (c *child) wait(timeout time.Duration) error {
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("%s (pid %d): %w", c.name, c.pid, c.err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running after %v", c.name, c.pid, timeout)
	}
}

// stop sends SIGTERM, waits up to grace, then kills the process group. It
// returns nil if the child ended with status 0 within grace.
func (c *child) stop(grace time.Duration) error {
	if c.exited() {
		return c.exitErr()
	}
	_ = syscall.Kill(c.pid, syscall.SIGTERM)
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(grace):
	}
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL for 5s", c.name, c.pid)
	}
	return fmt.Errorf("%s (pid %d) did not end within %v of SIGTERM; killed", c.name, c.pid, grace)
}

// kill kills the process group at once and waits for the child.
func (c *child) kill() {
	if c.exited() {
		return
	}
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

func (c *child) exitErr() error {
	if c.err != nil {
		return fmt.Errorf("%s (pid %d): %w", c.name, c.pid, c.err)
	}
	return nil
}
