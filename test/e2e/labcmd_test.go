package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// TestLabCommand runs `iphttps lab` itself: the plain demonstration, then
// --keep ended by `iphttps lab down`, --keep ended by Ctrl-C (SIGINT), and
// --keep whose process is killed and cleaned up by `iphttps lab down`.
func TestLabCommand(t *testing.T) {
	bin := requireLab(t)

	t.Run("Demo", func(t *testing.T) {
		const prefix = "iptl-"
		dir := t.TempDir()
		cleanupPrefix(t, prefix, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "lab", "--prefix", prefix, "--dir", dir)
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		t.Logf("iphttps lab output:\n%s", out)
		if err != nil {
			t.Errorf("iphttps lab: %v", err)
		}
		text := string(out)
		addrRE := regexp.MustCompile(`(?m)^\s+cli[12]\s+(2001:db8:1:[0-9a-f:]+)`)
		if m := addrRE.FindAllStringSubmatch(text, -1); len(m) != 2 {
			t.Errorf("want the tunnel addresses of cli1 and cli2 in the output, found %v", m)
		}
		for _, want := range []string{"bytes from " + lab.IntranetHost, lab.StatusActive, "HTTP/1.1 200 OK"} {
			if !strings.Contains(text, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		assertNoLab(t, prefix)
	})

	t.Run("KeepThenDown", func(t *testing.T) {
		const prefix = "iptk-"
		dir := t.TempDir()
		cleanupPrefix(t, prefix, dir)
		p := startKeep(t, bin, prefix, dir)
		down := exec.Command(bin, "lab", "down", "--dir", dir)
		out, err := runBounded(down, 90*time.Second)
		t.Logf("iphttps lab down:\n%s", out)
		if err != nil {
			t.Fatalf("iphttps lab down: %v", err)
		}
		if err := p.wait(30 * time.Second); err != nil {
			t.Errorf("iphttps lab --keep after lab down: %v\n%s", err, p.output())
		}
		assertNoLab(t, prefix)
	})

	t.Run("KeepThenInterrupt", func(t *testing.T) {
		const prefix = "ipti-"
		dir := t.TempDir()
		cleanupPrefix(t, prefix, dir)
		p := startKeep(t, bin, prefix, dir)
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(30 * time.Second); err != nil {
			t.Errorf("iphttps lab --keep after Ctrl-C (SIGINT): %v\n%s", err, p.output())
		}
		if !strings.Contains(p.output(), "Lab removed") {
			t.Errorf("no \"Lab removed\" in the output:\n%s", p.output())
		}
		assertNoLab(t, prefix)
	})

	t.Run("DownAfterCrash", func(t *testing.T) {
		const prefix = "iptc-"
		dir := t.TempDir()
		cleanupPrefix(t, prefix, dir)
		p := startKeep(t, bin, prefix, dir)
		st, err := lab.ReadState(dir)
		if err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		_ = p.cmd.Process.Kill()
		_ = p.wait(10 * time.Second)
		t.Logf("lab process killed and reaped in %s", time.Since(killed).Round(time.Millisecond))
		alive := 0
		for _, r := range st.Procs {
			if r.Alive() {
				alive++
			}
		}
		if alive == 0 {
			t.Fatalf("no daemon survived the lab process; nothing to test (%+v)", st.Procs)
		}
		down := exec.Command(bin, "lab", "down", "--dir", dir)
		began := time.Now()
		out, err := runBounded(down, 90*time.Second)
		t.Logf("iphttps lab down (%s, %d daemons were alive):\n%s", time.Since(began).Round(time.Millisecond), alive, out)
		if err != nil {
			t.Fatalf("iphttps lab down: %v", err)
		}
		for _, r := range st.Procs {
			if r.Alive() {
				t.Errorf("%s (pid %d) survived lab down", r.Name, r.PID)
			}
		}
		assertNoLab(t, prefix)
	})
}

// cleanupPrefix removes whatever a failed run left with prefix.
func cleanupPrefix(t *testing.T, prefix, dir string) {
	t.Helper()
	ctx := context.Background()
	if err := lab.RemoveStale(ctx, prefix, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := lab.ReadState(dir); err == nil {
			_ = lab.Destroy(ctx, dir, nil)
		}
		_ = lab.RemoveStale(ctx, prefix, nil)
	})
}

// assertNoLab fails t if a namespace or /etc/netns directory with prefix
// remains.
func assertNoLab(t *testing.T, prefix string) {
	t.Helper()
	names, err := lab.LabNamespaces(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) > 0 {
		t.Errorf("namespaces left: %v", names)
	}
	dirs, _ := filepath.Glob("/etc/netns/" + prefix + "*")
	if len(dirs) > 0 {
		t.Errorf("/etc/netns directories left: %v", dirs)
	}
}

// keepProc is a running `iphttps lab --keep`.
type keepProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	exited chan struct{} // closed when the process has been reaped
	err    error         // its exit, valid after exited
}

func (p *keepProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// wait waits for the process to exit, killing it after timeout.
func (p *keepProc) wait(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("did not exit in time; killed")
	}
}

// startKeep starts `iphttps lab --keep` (with extra arguments) and waits
// (up to 2 minutes) until it says the lab stays up.
func startKeep(t *testing.T, bin, prefix, dir string, extra ...string) *keepProc {
	t.Helper()
	p := &keepProc{
		cmd:    exec.Command(bin, append([]string{"lab", "--keep", "--prefix", prefix, "--dir", dir}, extra...)...),
		exited: make(chan struct{}),
	}
	pr, pw := io.Pipe()
	p.cmd.Stdout = pw
	p.cmd.Stderr = pw
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		var once sync.Once
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "The lab stays up") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.wait(30 * time.Second)
		}
	})
	select {
	case <-ready:
		return p
	case <-p.exited:
		t.Fatalf("iphttps lab --keep exited before the lab was up: %v\n%s", p.err, p.output())
	case <-time.After(2 * time.Minute):
		t.Fatalf("iphttps lab --keep did not come up within 2 minutes:\n%s", p.output())
	}
	return nil
}

// runBounded runs cmd, killing it after timeout, and returns its combined
// output.
func runBounded(cmd *exec.Cmd, timeout time.Duration) (string, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), errors.New("timed out; killed")
	}
}
