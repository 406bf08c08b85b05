package dnsquery_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/iphttps/iphttps/internal/dnsquery"
	"github.com/iphttps/iphttps/internal/testenv"
)

// The zone dnsmasq serves: example.test is local to it (a name it has no
// record for is NXDOMAIN), and it has no upstream servers (any other name is
// REFUSED).
var zone = []string{
	"--local=/example.test/",
	"--host-record=two.example.test,192.0.2.10",
	"--host-record=two.example.test,192.0.2.11",
	"--host-record=v6only.example.test,2001:db8::10",
	`--txt-record=noaddr.example.test,"a name without an address record"`,
}

// dnsmasq starts dnsmasq (Debian package dnsmasq-base) on a free UDP port of
// 127.0.0.1 with only the records of args, and returns its address. It is
// stopped (by its PID) when the test ends.
func dnsmasq(t *testing.T, args ...string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "dnsmasq", "dnsmasq-base")
	var errs []error
	for range 3 { // the free port found may be taken before dnsmasq binds it
		server, err := startDnsmasq(t, bin, args)
		if err == nil {
			return server
		}
		errs = append(errs, err)
	}
	t.Fatal(errors.Join(errs...))
	return ""
}

func startDnsmasq(t *testing.T, bin string, args []string) (string, error) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	server := pc.LocalAddr().String()
	pc.Close()
	host, port, _ := net.SplitHostPort(server)
	cmd := exec.Command(bin, append([]string{
		"--keep-in-foreground", "--log-facility=-", "--log-queries",
		"--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
		"--user=nobody", // only used when run as root
		"--listen-address=" + host, "--bind-interfaces", "--port=" + port,
	}, args...)...)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	// Ready when it answers a query.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := dnsquery.Query(ctx, &net.Dialer{}, fixed(server), "two.example.test", dnsmessage.TypeA)
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr
			return "", errors.Join(errors.New("dnsmasq exited: "+log.String()), werr)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return "", errors.Join(errors.New("dnsmasq does not answer: "+log.String()), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("dnsmasq on %s:\n%s", server, log.String())
		}
	})
	return server, nil
}

// syncBuffer is a bytes.Buffer a process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func fixed(servers ...string) func() ([]string, error) {
	return func() ([]string, error) { return servers, nil }
}

// TestQuery asks a real dnsmasq for names that do not exist, that exist
// without the record asked for, and that have it.
func TestQuery(t *testing.T) {
	server := dnsmasq(t, zone...)
	for _, c := range []struct {
		name    string
		typ     dnsmessage.Type
		rcode   dnsmessage.RCode
		answers int
	}{
		{"two.example.test", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 2},
		{"two.example.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 2}, // already fully qualified
		{"two.example.test", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, 0},
		{"v6only.example.test", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, 1},
		{"v6only.example.test", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 0},
		{"noaddr.example.test", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 0},
		{"noaddr.example.test", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, 0},
		{"gone.example.test", dnsmessage.TypeA, dnsmessage.RCodeNameError, 0},
		{"gone.example.test", dnsmessage.TypeAAAA, dnsmessage.RCodeNameError, 0},
		{"elsewhere.test", dnsmessage.TypeA, dnsmessage.RCodeRefused, 0},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a, err := dnsquery.Query(ctx, &net.Dialer{}, fixed(server), c.name, c.typ)
		cancel()
		if err != nil {
			t.Errorf("%s %v: %v", c.name, c.typ, err)
			continue
		}
		if a.RCode != c.rcode || a.Answers != c.answers || a.Server != server {
			t.Errorf("%s %v: %s, %d answers from %s; want %s, %d answers from %s",
				c.name, c.typ, dnsquery.RCodeName(a.RCode), a.Answers, a.Server, dnsquery.RCodeName(c.rcode), c.answers, server)
		}
	}
}

// TestNoAddressAt checks the classification the client reports: a name
// without an A or AAAA record is WSANO_DATA (0x2afc, NoAddressAt true); a
// name that does not exist (NXDOMAIN), a name with an address of either
// family and an answer that tells nothing are WSAHOST_NOT_FOUND (0x2af9,
// false).
func TestNoAddressAt(t *testing.T) {
	server := dnsmasq(t, zone...)
	for name, want := range map[string]bool{
		"noaddr.example.test": true,  // NOERROR, no data: 0x2afc
		"gone.example.test":   false, // NXDOMAIN: 0x2af9
		"two.example.test":    false, // A records
		"v6only.example.test": false, // an AAAA record only
		"elsewhere.test":      false, // REFUSED: the server cannot tell
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got := dnsquery.NoAddressAt(ctx, &net.Dialer{}, fixed(server), name)
		cancel()
		if got != want {
			t.Errorf("NoAddressAt(%s) = %v, want %v", name, got, want)
		}
	}
	// No server answering at all: it cannot tell either.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if dnsquery.NoAddressAt(ctx, &net.Dialer{}, fixed(closedPort(t)), "noaddr.example.test") {
		t.Error("NoAddressAt with no server answering = true")
	}
}

// TestQueryServersInTurn: a server that refuses (ICMP port unreachable) is
// passed over for the next one; when every server fails, every error is
// reported.
func TestQueryServersInTurn(t *testing.T) {
	server := dnsmasq(t, zone...)
	dead := closedPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := dnsquery.Query(ctx, &net.Dialer{}, fixed(dead, server), "gone.example.test", dnsmessage.TypeA)
	if err != nil || a.Server != server || a.RCode != dnsmessage.RCodeNameError {
		t.Errorf("Query(dead, dnsmasq) = %+v, %v; want NXDOMAIN from %s", a, err, server)
	}
	dead2 := closedPort(t)
	_, err = dnsquery.Query(ctx, &net.Dialer{}, fixed(dead, dead2), "gone.example.test", dnsmessage.TypeA)
	if err == nil || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), dead2) {
		t.Errorf("Query(dead, dead) error %v, want both servers named", err)
	}
	want := errors.New("no resolv.conf")
	if _, err := dnsquery.Query(ctx, &net.Dialer{}, func() ([]string, error) { return nil, want }, "x.test", dnsmessage.TypeA); !errors.Is(err, want) {
		t.Errorf("servers failing: error %v, want %v", err, want)
	}
}

// closedPort returns a loopback UDP address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// blackHole is a name server that reads queries and never answers; it
// counts what it read.
func blackHole(t *testing.T) (string, func() int) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestQueryTimeout: a server that never answers costs the caller's deadline
// and no more, and at most 3 s of a longer one before the next server is
// asked.
func TestQueryTimeout(t *testing.T) {
	t.Run("caller's deadline", func(t *testing.T) {
		t.Parallel()
		hole, reads := blackHole(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := dnsquery.Query(ctx, &net.Dialer{}, fixed(hole, hole), "two.example.test", dnsmessage.TypeA)
		took := time.Since(start)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("error %v, want a timeout", err)
		}
		if took < 250*time.Millisecond || took > 2*time.Second {
			t.Errorf("took %v, want about the 300 ms deadline", took)
		}
		if n := reads(); n != 1 {
			t.Errorf("the silent server read %d queries, want 1 (no second server once the deadline passed)", n)
		}
	})
	t.Run("3 s per server", func(t *testing.T) {
		t.Parallel()
		hole, reads := blackHole(t)
		server := dnsmasq(t, zone...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		a, err := dnsquery.Query(ctx, &net.Dialer{}, fixed(hole, server), "two.example.test", dnsmessage.TypeA)
		took := time.Since(start)
		if err != nil || a.Server != server || a.Answers != 2 {
			t.Errorf("Query(silent, dnsmasq) = %+v, %v; want 2 answers from %s", a, err, server)
		}
		if took < 2900*time.Millisecond || took > 6*time.Second {
			t.Errorf("took %v, want the 3 s bound on the silent server", took)
		}
		if n := reads(); n != 1 {
			t.Errorf("the silent server read %d queries, want 1", n)
		}
	})
}

func TestNameservers(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "resolv.conf")
	conf := "# a comment\nsearch example.test\nnameserver 192.0.2.53\nnameserver   2001:db8::53\nnameserver not-an-address\nnameserver\noptions edns0\n"
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := dnsquery.Nameservers(p)
	if want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Nameservers = %q, %v; want %q", got, err, want)
	}
	empty := filepath.Join(d, "empty")
	if err := os.WriteFile(empty, []byte("search example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = dnsquery.Nameservers(empty)
	if want := []string{"127.0.0.1:53", "[::1]:53"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Nameservers(no nameserver line) = %q, %v; want glibc's default %q", got, err, want)
	}
	if _, err := dnsquery.Nameservers(filepath.Join(d, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Nameservers(missing) error %v", err)
	}
}

func TestRCodeName(t *testing.T) {
	for r, want := range map[dnsmessage.RCode]string{
		dnsmessage.RCodeSuccess: "NOERROR", dnsmessage.RCodeNameError: "NXDOMAIN", dnsmessage.RCodeServerFailure: "SERVFAIL",
		dnsmessage.RCodeRefused: "REFUSED", dnsmessage.RCodeFormatError: "FORMERR", dnsmessage.RCodeNotImplemented: "NOTIMP", 9: "RCODE " + strconv.Itoa(9),
	} {
		if got := dnsquery.RCodeName(r); got != want {
			t.Errorf("RCodeName(%d) = %q, want %q", r, got, want)
		}
	}
}
