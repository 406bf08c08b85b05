package lab

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/testenv"
)

func TestParseNetnsList(t *testing.T) {
	got := parseNetnsList("iphttps-cli1 (id: 4)\niphttps-inet\n\n")
	want := []string{"iphttps-cli1", "iphttps-inet"}
	if !slices.Equal(got, want) {
		t.Fatalf("parseNetnsList = %q, want %q", got, want)
	}
}

func TestParseStatStart(t *testing.T) {
	line := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	got, err := parseStatStart(line)
	if err != nil || got != 987654 {
		t.Fatalf("parseStatStart = %d, %v; want 987654", got, err)
	}
	if st, err := parseStatState(line); err != nil || st != 'S' {
		t.Fatalf("parseStatState = %q, %v; want 'S'", st, err)
	}
	if _, err := parseStatStart("1 (x) S 1"); err == nil {
		t.Fatal("short line: want an error")
	}
	self, err := procStart(os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("procStart(self) = %d, %v", self, err)
	}
	if !sameProcess(os.Getpid(), self) || sameProcess(os.Getpid(), self+1) {
		t.Fatal("sameProcess does not tell this process apart")
	}
}

func TestIsLabNamespace(t *testing.T) {
	for _, c := range []struct {
		prefix, name string
		want         bool
	}{
		{"iphttps-", "iphttps-inet", true},
		{"iphttps-", "iphttps-cli12", true},
		{"iphttps-", "iphttps-clix", false},
		{"iphttps-", "iphttps-inet2", false},
		{"ipt1-", "ipt10-edge", false},
		{"ipt1-", "ipt1-corp", true},
		{"", "inet", false},
	} {
		if got := IsLabNamespace(c.prefix, c.name); got != c.want {
			t.Errorf("IsLabNamespace(%q, %q) = %v, want %v", c.prefix, c.name, got, c.want)
		}
	}
	if validPrefix("a b") == nil || validPrefix("../x") == nil || validPrefix("ok-1_") != nil {
		t.Error("validPrefix accepts or rejects the wrong names")
	}
}

func TestLinkAddr(t *testing.T) {
	s := status.Interface{State: "LinkUp", InterfaceStatus: StatusActive,
		Addresses: []string{"fe80::5/64", "2001:db8:1::abcd/64"}}
	a, ok := LinkAddr(s)
	if !ok || a.String() != "2001:db8:1::abcd" {
		t.Fatalf("LinkAddr = %v, %v", a, ok)
	}
	if !IsActive(s) {
		t.Fatal("IsActive = false for an active status")
	}
	s.LastErrorCode = 0x90320
	if IsActive(s) {
		t.Fatal("IsActive = true with an error code")
	}
}

func TestLogTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := LogTail(p, 2); got != "c\nd" {
		t.Fatalf("LogTail = %q", got)
	}
	if got := LogTail(filepath.Join(t.TempDir(), "none"), 2); !strings.Contains(got, "no log") {
		t.Fatalf("LogTail(missing) = %q", got)
	}
}

// TestUpDown builds the topology without daemons (root only) and checks
// DNS, the intranet web server (from the server namespace) and that Down
// leaves nothing behind.
func TestUpDown(t *testing.T) {
	testenv.RequireRoot(t, "creates network namespaces")
	testenv.Require(t, CheckTools())
	ctx := context.Background()
	l, err := Up(ctx, Options{Prefix: "iplu-", Clients: 1, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })

	line, body, err := l.HTTPGet(ctx, l.NS(RoleEdge), "http://["+IntranetHost+"]/")
	if err != nil {
		t.Fatal(err)
	}
	if line != "HTTP/1.1 200 OK" || !strings.Contains(string(body), IntranetHost) {
		t.Fatalf("GET: %q %q", line, body)
	}
	if v, err := GetSysctl(l.NS(RoleInet), "net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Fatalf("inet ip_forward = %q, %v", v, err)
	}
	if v, err := GetSysctl(l.NS(RoleCorp), "net.ipv4.ip_forward"); err != nil || v != "0" {
		t.Fatalf("corp ip_forward = %q, %v (sysctl leaked across namespaces?)", v, err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), StateFile)); err != nil {
		t.Fatal(err)
	}
	dir := l.Dir()
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	left, err := LabNamespaces(ctx, "iplu-")
	if err != nil || len(left) != 0 {
		t.Fatalf("namespaces left: %v %v", left, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary lab directory left: %v", err)
	}
	if _, err := os.Stat(etcNetnsPath("iplu-cli1")); !os.IsNotExist(err) {
		t.Fatalf("/etc/netns dir left: %v", err)
	}
}

// testWriter sends the lab's log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestParseLinkNames(t *testing.T) {
	got := parseLinkNames("1: lo: <LOOPBACK,UP> mtu 65536\n7: to-inet@if6: <BROADCAST> mtu 1500\n")
	if !slices.Equal(got, []string{"lo", "to-inet"}) {
		t.Fatalf("parseLinkNames = %q", got)
	}
}
