package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/testenv"
)

// Bounds of the waits.
const (
	upTimeout    = 30 * time.Second // a client coming up
	labUpTimeout = 60 * time.Second // building a topology
)

// requireLab skips (or, under CI, fails) without root, and fails when a
// tool is missing. It returns the iphttps binary.
func requireLab(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t, "end-to-end tests create network namespaces, veth pairs and TUN devices")
	if err := lab.CheckTools(); err != nil {
		t.Fatal(err)
	}
	if env.buildErr != nil {
		t.Fatal(env.buildErr)
	}
	if env.bin == "" {
		t.Fatal("the iphttps binary was not built")
	}
	return env.bin
}

// newLab builds a lab for t with the test's own namespace prefix and removes
// it when the test ends. When the test has failed, the tails of the
// daemons' logs are logged first.
func newLab(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	o.Binary = requireLab(t)
	o.Log = testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), labUpTimeout)
	defer cancel()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name := range l.PIDs() {
				t.Logf("--- last lines of %s:\n%s", l.LogFile(name), lab.LogTail(l.LogFile(name), 60))
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// startLab starts the server and clients 1..l.Clients() (with extra client
// arguments clientArgs[i-1], if given) and waits until every client is
// active. It returns the clients' tunnel addresses (index i-1).
func startLab(t *testing.T, l *lab.Lab, clientArgs ...[]string) []netip.Addr {
	t.Helper()
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= l.Clients(); i++ {
		var extra []string
		if i-1 < len(clientArgs) {
			extra = clientArgs[i-1]
		}
		if err := l.StartClient(i, extra...); err != nil {
			t.Fatal(err)
		}
	}
	addrs := make([]netip.Addr, l.Clients())
	for i := 1; i <= l.Clients(); i++ {
		s := waitActive(t, l, i)
		addrs[i-1], _ = lab.LinkAddr(s)
	}
	return addrs
}

// waitActive waits up to upTimeout for client i to be active.
func waitActive(t *testing.T, l *lab.Lab, i int) status.Interface {
	t.Helper()
	start := time.Now()
	s, err := l.WaitClientActive(context.Background(), i, upTimeout)
	if err != nil {
		t.Fatalf("client %d not active: %v", i, err)
	}
	a, _ := lab.LinkAddr(s)
	t.Logf("%s active after %s with %s", lab.ClientName(i), time.Since(start).Round(time.Millisecond), a)
	return s
}

// ping runs the real `ping -6 -c 3 -W 2` in ns, with extra options before
// the destination, and returns its output and error.
func ping(l *lab.Lab, ns string, dst string, opts ...string) (string, error) {
	args := append([]string{"ping", "-6", "-c", "3", "-W", "2"}, opts...)
	args = append(args, dst)
	out, err := l.Exec(ns, args...)
	return string(out), err
}

// mustPing fails t unless ping from ns to dst gets replies.
func mustPing(t *testing.T, l *lab.Lab, ns string, dst string) {
	t.Helper()
	out, err := ping(l, ns, dst)
	if err != nil {
		t.Errorf("ping %s from %s: %v\n%s", dst, ns, err, out)
		return
	}
	if !strings.Contains(out, "bytes from "+dst) {
		t.Errorf("ping %s from %s: no reply line in output:\n%s", dst, ns, out)
	}
}

// counter reads a server counter.
func counter(t *testing.T, l *lab.Lab, name string) uint64 {
	t.Helper()
	s, err := l.Status(context.Background(), "server")
	if err != nil {
		t.Fatalf("server status: %v", err)
	}
	v, ok := s.Counters[name]
	if !ok {
		t.Fatalf("server status has no counter %q (counters: %v)", name, s.Counters)
	}
	return v
}

// counterReaches reads a server counter until it reaches want (for at most
// 3 s) and returns the last value: a server may count a refused connection
// just after closing it (crypto/tls closes on a handshake timeout before
// returning), so the peer can see the close first.
func counterReaches(t *testing.T, l *lab.Lab, name string, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		v := counter(t, l, name)
		if v >= want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// transferResult is what the receiving end of a transfer saw.
type transferResult struct {
	n   int64
	sum []byte
	err error
	end time.Time // when the last byte arrived
}

// transfer streams size bytes of deterministic pseudo-random data over TCP
// from namespace fromNS to a listener on dst in namespace toNS, hashes both
// ends with SHA-256 and compares. It logs the throughput. The whole transfer
// is bounded by limit.
func transfer(t *testing.T, fromNS, toNS string, dst netip.Addr, size int64, limit time.Duration) {
	t.Helper()
	transferVia(t, fromNS, lab.Dialer(fromNS), toNS, dst, size, limit)
}

// transferVia is transfer with the sender's connection made by dial (for
// example through a SOCKS5 proxy); from names the sender in the log.
func transferVia(t *testing.T, from string, dial func(ctx context.Context, network, addr string) (net.Conn, error), toNS string, dst netip.Addr, size int64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	ln, err := lab.Listen(toNS, "tcp6", netip.AddrPortFrom(dst, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_ = ln.(*net.TCPListener).SetDeadline(deadline)

	results := make(chan transferResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			results <- transferResult{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		h := sha256.New()
		// Exactly size bytes, then the end of the stream.
		n, err := io.CopyBuffer(h, io.LimitReader(c, size), make([]byte, 256<<10))
		end := time.Now()
		if err == nil && n == size {
			// A sender that can half-close gives EOF at once; one that
			// cannot (a proxied connection) gives nothing more.
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if extra, _ := c.Read(make([]byte, 1)); extra > 0 {
				err = errors.New("more bytes than sent")
			}
		}
		results <- transferResult{n: n, sum: h.Sum(nil), err: err, end: end}
	}()

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	c, err := dial(ctx, "tcp6", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	var seed [32]byte
	copy(seed[:], "iphttps end-to-end transfer seed")
	src := io.LimitReader(rand.NewChaCha8(seed), size)
	sent := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(c, sent), src, make([]byte, 256<<10))
	if err != nil {
		t.Fatalf("send to %s: %d of %d bytes sent after %s: %v", addr, n, size, time.Since(start).Round(time.Millisecond), err)
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			t.Fatalf("close write: %v", err)
		}
	}
	var r transferResult
	select {
	case r = <-results:
	case <-time.After(time.Until(deadline) + 5*time.Second):
		t.Fatalf("receiver did not finish within %s", limit)
	}
	elapsed := r.end.Sub(start)
	if r.err != nil {
		t.Fatalf("receive on %s: %d of %d bytes received after %s: %v", addr, r.n, size, elapsed.Round(time.Millisecond), r.err)
	}
	if r.n != size {
		t.Fatalf("received %d of %d bytes", r.n, size)
	}
	if got, want := fmt.Sprintf("%x", r.sum), fmt.Sprintf("%x", sent.Sum(nil)); got != want {
		t.Fatalf("SHA-256 mismatch: sent %s, received %s", want, got)
	}
	t.Logf("%s -> [%s]: %d MiB in %s, %.1f MB/s, SHA-256 match", from, dst, size>>20,
		elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds())
}

// testLog writes the lab's progress lines to t.Log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// exitCode is the exit code carried by err (an *exec.ExitError, possibly
// wrapped), or -1.
func exitCode(err error) int {
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// mustAddr parses an IP address.
func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
