package scale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The kernel's drop and error counters in the benchmark's namespaces, read
// before and after each phase so that lost packets can be placed: device
// and qdisc counters (ip -s link, tc -s qdisc), the namespace's SNMP
// counters (nstat), and the machine-wide softnet backlog drops.

// kernelSnapshot is a set of named counters.
type kernelSnapshot map[string]uint64

// snapshotKernel reads the counters of every benchmark namespace. Counters
// that cannot be read are left out.
func snapshotKernel(ctx context.Context) kernelSnapshot {
	s := kernelSnapshot{}
	for _, ns := range namespaces() {
		readLinks(ctx, ns, s)
		readQdiscs(ctx, ns, s)
		readNstat(ctx, ns, s)
	}
	if d, err := softnetDrops(); err == nil {
		s["machine softnet backlog drops"] = d
	}
	return s
}

// moved returns the counters that grew from a to b.
func moved(a, b kernelSnapshot) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range b {
		if v > a[k] {
			out[k] = v - a[k]
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func runJSON(ctx context.Context, v any, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return err
	}
	return json.Unmarshal(out.Bytes(), v)
}

// readLinks adds "NS DEV rx_dropped" and the like.
func readLinks(ctx context.Context, ns string, s kernelSnapshot) {
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			RX map[string]uint64 `json:"rx"`
			TX map[string]uint64 `json:"tx"`
		} `json:"stats64"`
	}
	if runJSON(ctx, &links, "ip", "-n", ns, "-j", "-s", "link", "show") != nil {
		return
	}
	for _, l := range links {
		for _, k := range []string{"dropped", "errors", "over_errors"} {
			if v, ok := l.Stats.RX[k]; ok {
				s[fmt.Sprintf("%s %s rx_%s", ns, l.Name, k)] = v
			}
		}
		for _, k := range []string{"dropped", "errors", "carrier_errors"} {
			if v, ok := l.Stats.TX[k]; ok {
				s[fmt.Sprintf("%s %s tx_%s", ns, l.Name, k)] = v
			}
		}
	}
}

// readQdiscs adds "NS DEV qdisc KIND drops" and overlimits.
func readQdiscs(ctx context.Context, ns string, s kernelSnapshot) {
	var qs []struct {
		Kind       string `json:"kind"`
		Dev        string `json:"dev"`
		Drops      uint64 `json:"drops"`
		Overlimits uint64 `json:"overlimits"`
	}
	if runJSON(ctx, &qs, "tc", "-n", ns, "-s", "-j", "qdisc", "show") != nil {
		return
	}
	for _, q := range qs {
		s[fmt.Sprintf("%s %s qdisc %s drops", ns, q.Dev, q.Kind)] += q.Drops
		s[fmt.Sprintf("%s %s qdisc %s overlimits", ns, q.Dev, q.Kind)] += q.Overlimits
	}
}

// readNstat adds the namespace's SNMP counters that count trouble.
func readNstat(ctx context.Context, ns string, s kernelSnapshot) {
	var out struct {
		Kernel map[string]uint64 `json:"kernel"`
	}
	if runJSON(ctx, &out, "ip", "netns", "exec", ns, "nstat", "-a", "-s", "-z", "-j") != nil {
		return
	}
	for k, v := range out.Kernel {
		if troubleCounter(k) {
			s[ns+" "+k] = v
		}
	}
}

// troubleCounter reports whether an SNMP counter counts drops, errors,
// overflows, retransmissions, loss probes or the like.
func troubleCounter(name string) bool {
	for _, w := range []string{"Drop", "Discard", "Err", "Overflow", "NoRoute", "Retrans", "Fail", "Prune", "Timeout", "Truncated", "Loss"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// softnetDrops sums the second column (packets dropped because the input
// backlog was full) of /proc/net/softnet_stat over all CPUs. It is
// machine-wide: other users' traffic counts too.
func softnetDrops() (uint64, error) {
	f, err := os.Open("/proc/net/softnet_stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 2 {
			continue
		}
		v, err := strconv.ParseUint(fl[1], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("softnet_stat: %w", err)
		}
		total += v
	}
	return total, sc.Err()
}

// linkInfo describes a device's queueing, e.g. "qdisc noqueue, txqueuelen 500".
func linkInfo(ctx context.Context, ns, dev string) string {
	var links []struct {
		Qdisc string `json:"qdisc"`
		TxQ   int    `json:"txqlen"`
		MTU   int    `json:"mtu"`
	}
	if err := runJSON(ctx, &links, "ip", "-n", ns, "-j", "link", "show", "dev", dev); err != nil || len(links) != 1 {
		return "unknown"
	}
	l := links[0]
	return fmt.Sprintf("mtu %d, qdisc %s, txqueuelen %d", l.MTU, l.Qdisc, l.TxQ)
}

// runDelay is the time the threads of process pid have spent runnable but
// waiting for a CPU (second field of /proc/PID/task/TID/schedstat, summed
// over the threads alive now); 0 if it cannot be read.
func runDelay(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var total uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				total += v
			}
		}
	}
	return time.Duration(total)
}
