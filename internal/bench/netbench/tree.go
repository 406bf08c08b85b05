package netbench

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/bench/procstat"
)

// TreeCPU is a reading of the CPU time of a process and all its descendants
// (ocserv forks a security module and a worker per client, for example).
type TreeCPU map[int]time.Duration

// ReadTreeCPU reads the CPU time of root and of every process descending
// from it. Processes that end while being read are left out.
func ReadTreeCPU(root int) (TreeCPU, error) {
	parents, err := allParents()
	if err != nil {
		return nil, err
	}
	t := TreeCPU{}
	for _, pid := range descendants(root, parents) {
		if d, err := procstat.CPUTime(pid); err == nil {
			t[pid] = d
		}
	}
	if _, ok := t[root]; !ok {
		return nil, fmt.Errorf("process %d: not running", root)
	}
	return t, nil
}

// Since is the CPU time the tree used between an earlier reading and t: a
// process seen in both counts its difference, one new in t all its time.
// Processes that ended in between are not counted.
func (t TreeCPU) Since(earlier TreeCPU) time.Duration {
	var sum time.Duration
	for pid, d := range t {
		if e, ok := earlier[pid]; ok && e <= d {
			sum += d - e
		} else if !ok {
			sum += d
		}
	}
	return sum
}

// allParents maps every process ID to its parent's.
func allParents() (map[int]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	parents := make(map[int]int, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := procstat.ParentPID(pid); err == nil { // else ended meanwhile
			parents[pid] = pp
		}
	}
	return parents, nil
}

// descendants returns root and all processes below it in parents.
func descendants(root int, parents map[int]int) []int {
	children := map[int][]int{}
	for pid, pp := range parents {
		children[pp] = append(children[pp], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// StopTree stops p like Stop and then kills (SIGKILL) what is left of the
// processes that descended from it when StopTree was called: a daemon's
// helpers and workers that outlived it.
func (p *Proc) StopTree(grace time.Duration) error {
	var below []int
	if parents, err := allParents(); err == nil && !p.Exited() {
		below = descendants(p.PID(), parents)[1:]
	}
	err := p.Stop(grace)
	for _, pid := range below {
		if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); serr == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return err
}
