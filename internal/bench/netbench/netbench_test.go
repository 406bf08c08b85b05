package netbench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStatPPID(t *testing.T) {
	pp, err := parseStatPPID("42 (a (b) c) S 7 42 42 0 -1\n")
	if err != nil || pp != 7 {
		t.Fatalf("ppid %d, %v", pp, err)
	}
	if _, err := parseStatPPID("42 (x"); err == nil {
		t.Fatal("malformed line accepted")
	}
}

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
