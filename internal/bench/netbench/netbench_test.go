package netbench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDescendantsAndSince(t *testing.T) {
	parents := map[int]int{10: 1, 11: 10, 12: 11, 13: 10, 20: 1}
	got := descendants(10, parents)
	if len(got) != 4 || got[0] != 10 {
		t.Fatalf("descendants %v", got)
	}
	a := TreeCPU{10: 100, 11: 50}
	b := TreeCPU{10: 150, 11: 60, 12: 5}
	if d := b.Since(a); d != 65 {
		t.Fatalf("Since = %d, want 65", d)
	}
	self, err := ReadTreeCPU(os.Getpid())
	if err != nil || len(self) == 0 {
		t.Fatalf("own tree: %v %v", self, err)
	}
}

func TestParseDevStats(t *testing.T) {
	link := `[{"ifname":"t0","stats64":{"rx":{"bytes":1,"packets":1,"errors":2,"dropped":3},"tx":{"bytes":1,"packets":1,"errors":4,"dropped":5}}}]`
	qdisc := `[{"kind":"pfifo_fast","drops":6},{"kind":"x","drops":1}]`
	s, err := parseDevStats([]byte(link), []byte(qdisc))
	if err != nil {
		t.Fatal(err)
	}
	if s != (DevStats{RxDropped: 3, TxDropped: 5, RxErrors: 2, TxErrors: 4, QdiscDrops: 7}) {
		t.Fatalf("stats %+v", s)
	}
	if _, err := parseDevStats([]byte(`[]`), []byte(qdisc)); err == nil {
		t.Fatal("no device accepted")
	}
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.lock")
	release, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description: a second open in
	// the same process conflicts too.
	if _, err := Lock(path); err == nil || !strings.Contains(err.Error(), "another run") {
		t.Fatalf("second lock: %v", err)
	}
	release()
	r2, err := Lock(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	r2()
}

func TestStartPipesEnvKill(t *testing.T) {
	log := filepath.Join(t.TempDir(), "p.log")
	p, err := Start(context.Background(), "echo", Spec{
		Argv: []string{"sh", "-c", `echo "$NETBENCH_TEST"; read line; echo "$line" >&2`}, Lifetime: 10 * time.Second,
		Env: []string{"NETBENCH_TEST=from env"}, Log: log, Pipes: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(p.Stdout()).ReadString('\n')
	if err != nil || line != "from env\n" {
		t.Fatalf("stdout %q, %v", line, err)
	}
	if p.ExitStatus() != "" {
		t.Fatalf("exit status %q while running", p.ExitStatus())
	}
	fmt.Fprintln(p.Stdin(), "to stderr")
	p.Stdin().Close()
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Stdout().Close()
	if p.ExitStatus() != "exit status 0" {
		t.Fatalf("exit status %q", p.ExitStatus())
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "\nto stderr\n") {
		t.Fatalf("log:\n%s", b)
	}

	p, err = Start(context.Background(), "sleep", Spec{Argv: []string{"sleep", "60"}, Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || p.ExitStatus() != "signal: killed" || p.Wait(context.Background()) == nil {
		t.Fatalf("after Kill: exited %v, %q", p.Exited(), p.ExitStatus())
	}
}
