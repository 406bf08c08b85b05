package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procLab is what the labs that run their own set of processes (the Teredo
// and 6to4 labs) share: the namespaces they made, the processes they
// started, the intranet web server, the lab directory, and their
// tear-down. Its methods are safe for concurrent use.
type procLab struct {
	what    string // "teredo lab", "6to4 lab": starts messages and errors
	prefix  string
	log     *slog.Logger
	dir     string
	tempDir bool

	mu         sync.Mutex
	procs      map[string]*proc
	order      []string // process names, in start order
	namespaces []string // created, in creation order
	web        *http.Server
	webDone    chan struct{}
	down       bool
}

// procStopTimeout is how long Stop and Down wait after SIGTERM before
// killing a process group.
const procStopTimeout = 5 * time.Second

// newProcLab makes the shared part of a lab called what (in messages),
// with the lab directory dir (see workDir; pattern names a temporary one).
func newProcLab(what, prefix, dir, pattern string, log io.Writer) (*procLab, error) {
	p := &procLab{what: what, prefix: prefix, log: newLogger(log), procs: map[string]*proc{}}
	var err error
	if p.dir, p.tempDir, err = workDir(dir, pattern); err != nil {
		return nil, fmt.Errorf("%s directory: %w", what, err)
	}
	return p, nil
}

// removeStaleNamespaces deletes every namespace for which isLab(prefix,
// name) holds (killing its processes first).
func removeStaleNamespaces(ctx context.Context, prefix string, isLab func(prefix, name string) bool) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	names, err := ListNetns(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if isLab(prefix, n) {
			if err := DeleteNetns(ctx, n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// NS is the namespace of role: the lab's prefix followed by role.
func (l *procLab) NS(role string) string { return l.prefix + role }

// Namespaces lists the lab's namespaces in creation order.
func (l *procLab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.namespaces)
}

// Dir is the lab directory (configuration files, PID files, logs).
func (l *procLab) Dir() string { return l.dir }

// LogFile is the log of process name.
func (l *procLab) LogFile(name string) string { return filepath.Join(l.dir, name+".log") }

// SocketFile is the control socket of iphttps process name.
func (l *procLab) SocketFile(name string) string { return filepath.Join(l.dir, name+".sock") }

// addNetns creates namespace ns, records it for Down, and turns duplicate
// address detection off in it before any link exists there (disableDAD).
func (l *procLab) addNetns(ctx context.Context, ns string) error {
	if err := AddNetns(ctx, ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	return disableDAD(ns)
}

// disableDAD turns IPv6 duplicate address detection off in ns for the
// interfaces created there from now on (the veths): their link-local
// addresses are usable at once instead of tentative for up to 2 s (a
// random delay of up to a second, then a second for the one probe). It
// matters to a namespace that forwards IPv6: Linux solicits the neighbour
// a forwarded packet goes to from the outgoing interface's link-local
// address (the packet's source is not its own), and while that address is
// tentative it sends no solicitation at all, so the forwarded packets wait
// in the neighbour's queue of unresolved packets (net.ipv6.neigh.*.
// unres_qlen_bytes, a few of the server's offloaded super-packets) until a
// retransmission after detection ends, and whatever overflows it is lost
// (/proc/net/stat/ndisc_cache: unresolved_discards). A lab link has no
// duplicate to detect; AddAddr already gives the lab's own addresses
// nodad. Both "all" and "default" must be 0 for the kernel to skip it.
func disableDAD(ns string) error {
	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := SetSysctl(ns, k, "0"); err != nil {
			return err
		}
	}
	return nil
}

// linksReadyTimeout bounds waitLinksReady.
const linksReadyTimeout = 10 * time.Second

// waitLinksReady waits (up to timeout, and ctx) until the links of the
// lab's namespaces are ready to carry traffic (linksNotReady). Links come
// up asynchronously: a veth's carrier and its link-local address appear
// some time after `ip link set up` returned.
func (l *procLab) waitLinksReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	namespaces := l.Namespaces()
	var note string
	for {
		note = ""
		for _, ns := range namespaces {
			out, err := run(ctx, "ip", "-n", ns, "-j", "addr", "show")
			if err == nil {
				note, err = linksNotReady(out)
			}
			if err != nil {
				note = err.Error()
			}
			if note != "" {
				note = "namespace " + ns + ": " + note
				break
			}
		}
		if note == "" {
			l.log.Debug(l.what+" links ready", "after", time.Since(start).Round(time.Millisecond))
			return nil
		}
		tm := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			tm.Stop()
			return fmt.Errorf("%s: links not ready after %s: %w (last: %s)", l.what,
				time.Since(start).Round(time.Millisecond), ctx.Err(), note)
		case <-tm.C:
		}
	}
}

// ipAddrShow is an interface in `ip -j addr show`'s output.
type ipAddrShow struct {
	IfName    string   `json:"ifname"`
	Flags     []string `json:"flags"`
	OperState string   `json:"operstate"`
	LinkType  string   `json:"link_type"`
	AddrInfo  []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		Scope     string `json:"scope"`
		Tentative bool   `json:"tentative"`
		DADFailed bool   `json:"dadfailed"`
	} `json:"addr_info"`
}

// linksNotReady says why the interfaces of `ip -j addr show`'s output js
// are not ready yet, or "" if they are: every interface that is up (but
// the loopback) must have its carrier, an Ethernet one (a veth) an IPv6
// link-local address, and no IPv6 address may be tentative or have failed
// duplicate address detection.
func linksNotReady(js []byte) (string, error) {
	var ifs []ipAddrShow
	if err := json.Unmarshal(js, &ifs); err != nil {
		return "", fmt.Errorf("ip -j addr show: %w", err)
	}
	for _, i := range ifs {
		if !slices.Contains(i.Flags, "UP") || slices.Contains(i.Flags, "LOOPBACK") {
			continue
		}
		if slices.Contains(i.Flags, "NO-CARRIER") || i.OperState == "DOWN" || i.OperState == "LOWERLAYERDOWN" {
			return fmt.Sprintf("%s has no carrier (%s)", i.IfName, i.OperState), nil
		}
		linkLocal := false
		for _, a := range i.AddrInfo {
			if a.Family != "inet6" {
				continue
			}
			switch {
			case a.DADFailed:
				return fmt.Sprintf("%s: %s failed duplicate address detection", i.IfName, a.Local), nil
			case a.Tentative:
				return fmt.Sprintf("%s: %s is tentative", i.IfName, a.Local), nil
			case a.Scope == "link":
				linkLocal = true
			}
		}
		if i.LinkType == "ether" && !linkLocal {
			return fmt.Sprintf("%s has no IPv6 link-local address yet", i.IfName), nil
		}
	}
	return "", nil
}

// loadRuleset loads an nftables ruleset into ns, kept as <ns>.nft in the
// lab directory (to repeat by hand).
func (l *procLab) loadRuleset(ctx context.Context, ns, ruleset string) error {
	f := filepath.Join(l.dir, ns+".nft")
	if err := os.WriteFile(f, []byte(ruleset), 0o644); err != nil {
		return err
	}
	if out, err := l.ExecContext(ctx, ns, "nft", "-f", f); err != nil {
		return fmt.Errorf("namespace %s: nft -f %s: %w: %s", ns, f, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startWeb serves the intranet page on [host]:80 in ns (see
// serveIntranetPage); Down stops it.
func (l *procLab) startWeb(ns, host, via string) error {
	srv, done, err := serveIntranetPage(ns, host, via, l.log)
	if err != nil {
		return fmt.Errorf("%s web server: %w", l.what, err)
	}
	l.mu.Lock()
	l.web, l.webDone = srv, done
	l.mu.Unlock()
	return nil
}

// Exec runs args in namespace ns (`ip netns exec`), bounded to 60 s, and
// returns combined stdout and stderr.
func (l *procLab) Exec(ns string, args ...string) ([]byte, error) {
	return l.ExecContext(context.Background(), ns, args...)
}

// ExecContext is Exec bounded by ctx as well.
func (l *procLab) ExecContext(ctx context.Context, ns string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return execIn(ctx, ns, args...)
}

// Start starts argv in namespace ns as process name, its output in
// LogFile(name). A running process of that name is an error. Down stops it.
func (l *procLab) Start(name, ns string, argv ...string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return fmt.Errorf("%s: already torn down", l.what)
	}
	if old := l.procs[name]; old != nil && !old.exited() {
		return fmt.Errorf("%s: %s is already running (pid %d)", l.what, name, old.pid)
	}
	p, err := startProc(name, ns, l.LogFile(name), argv...)
	if err != nil {
		return err
	}
	l.procs[name] = p
	l.order = append(l.order, name)
	l.log.Info("started", "name", name, "namespace", ns, "pid", p.pid)
	return nil
}

// Stop stops process name: SIGTERM to its top-level PID (which stops its
// own children: Miredo stops its privileged helper), SIGKILL to its process
// group after 5 s. It returns nil only for exit status 0.
func (l *procLab) Stop(name string) error {
	p := l.proc(name)
	if p == nil {
		return fmt.Errorf("%s: %s not started", l.what, name)
	}
	return p.stop(syscall.SIGTERM, procStopTimeout)
}

// PID is the process ID of name, or 0.
func (l *procLab) PID(name string) int {
	if p := l.proc(name); p != nil {
		return p.pid
	}
	return 0
}

// Running reports whether name was started and has not exited.
func (l *procLab) Running(name string) bool {
	p := l.proc(name)
	return p != nil && !p.exited()
}

func (l *procLab) proc(name string) *proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.procs[name]
}

// poll calls check every 50 ms until it returns true, for at most timeout
// (and ctx). It fails early if process name has exited. The error carries
// check's last note and the tail of name's log.
func (l *procLab) poll(ctx context.Context, name string, timeout time.Duration, check func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var note string
	for {
		if p := l.proc(name); p != nil && p.exited() {
			return fmt.Errorf("%s: %s %s after %s (last: %s)\n%s", l.what, name, p.exitString(),
				time.Since(start).Round(time.Millisecond), note, LogTail(l.LogFile(name), 30))
		}
		var ok bool
		ok, note = check()
		if ok {
			return nil
		}
		tm := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			tm.Stop()
			return fmt.Errorf("%s: %s: not ready after %s: %w (last: %s)\n%s", l.what, name,
				time.Since(start).Round(time.Millisecond), ctx.Err(), note, LogTail(l.LogFile(name), 30))
		case <-tm.C:
		}
	}
}

// Down stops every process the lab started (the latest first; SIGTERM to
// the top-level PID, SIGKILL to its group after 5 s), closes the web
// server, deletes the namespaces (killing anything left in them) and the
// lab directory if it was temporary. It returns clean-up failures and the
// processes that had exited on their own (not stopped by Stop) with a
// failure status. Down is idempotent and bounded (about 2 minutes at
// worst).
func (l *procLab) Down() error {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return nil
	}
	l.down = true
	order := slices.Clone(l.order)
	procs := make(map[string]*proc, len(l.procs))
	for n, p := range l.procs {
		procs[n] = p
	}
	web, webDone := l.web, l.webDone
	namespaces := slices.Clone(l.namespaces)
	l.mu.Unlock()

	var errs []error
	for _, n := range slices.Backward(order) {
		p := procs[n]
		if p == nil {
			continue
		}
		delete(procs, n) // a name restarted appears twice in order
		wasStopped, exited := p.stopped.Load(), p.exited()
		err := p.stop(syscall.SIGTERM, procStopTimeout)
		switch {
		case wasStopped:
		case exited && err != nil:
			errs = append(errs, fmt.Errorf("%s had exited before Down: %w\n%s", n, err, LogTail(p.logPath, 20)))
		case err != nil:
			errs = append(errs, fmt.Errorf("stop %s: %w\n%s", n, err, LogTail(p.logPath, 20)))
		}
	}
	stopWeb(web, webDone)
	errs = append(errs, deleteNetnsAll(namespaces)...)
	if l.tempDir {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s directory: %w", l.what, err))
		}
	}
	l.log.Info(l.what+" is down", "prefix", l.prefix)
	return errors.Join(errs...)
}

// stopWeb stops a lab's intranet web server (nil: none) and waits for it.
func stopWeb(web *http.Server, done <-chan struct{}) {
	if web == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = web.Shutdown(ctx)
	cancel()
	_ = web.Close()
	<-done
}

// deleteNetnsAll deletes a lab's namespaces, the last made first.
func deleteNetnsAll(namespaces []string) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, ns := range slices.Backward(namespaces) {
		if err := DeleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
