package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/status"
)

// Options configure a lab.
type Options struct {
	// Prefix starts every namespace name (DefaultPrefix if empty). Tests use
	// their own short prefix so they never clash with a running lab.
	Prefix string
	// Clients is the number of client namespaces (default 2, at most 30).
	Clients int
	// Dir holds the PKI, the logs, the control sockets and the state file.
	// Empty: a new temporary directory, removed by Down. A given directory
	// is created if needed and kept (with its logs) by Down.
	Dir string
	// Binary is the iphttps executable the daemons run.
	Binary string
	// AuthMode is the server's --auth-mode ("none" if empty). With
	// "certificates" the server also gets --client-ca.
	AuthMode string
	// LogLevel is the daemons' --log-level ("debug" if empty).
	LogLevel string
	// ServerArgs and ClientArgs are appended to every server and client
	// command line.
	ServerArgs []string
	// ServerConfig, when set, is a TOML file the server reads with
	// --config; the authentication settings are then left to it (no
	// --auth-mode or --client-ca flags, which would win over the file and
	// a reload).
	ServerConfig string
	ClientArgs   []string
	// DNSRecords are extra dnsmasq --host-record values ("name,addr[,addr]").
	DNSRecords []string
	// DNSArgs are extra dnsmasq arguments.
	DNSArgs []string
	// Log receives the lab's own progress messages (not the daemons' logs,
	// which go to files in Dir). Nil discards them.
	Log io.Writer
}

// Lab is a running topology. Its methods are safe for concurrent use.
type Lab struct {
	opts    Options
	log     *slog.Logger
	dir     string
	tempDir bool
	ca      *pki.Cert

	mu         sync.Mutex
	procs      map[string]*proc
	namespaces []string // created, in creation order
	etcDirs    []string
	web        *http.Server
	webDone    chan struct{}
	down       bool
	sockets    map[string]string // control sockets outside the usual place (StartClientAs)
}

// newLogger logs to w (nil: nowhere), every level.
func newLogger(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// workDir returns dir, made absolute and created, or when dir is "" a new
// temporary directory named after pattern (temp true: Down removes it).
func workDir(dir, pattern string) (path string, temp bool, err error) {
	if dir == "" {
		d, err := os.MkdirTemp("", pattern)
		return d, err == nil, err
	}
	if path, err = filepath.Abs(dir); err != nil {
		return "", false, err
	}
	return path, false, os.MkdirAll(path, 0o700)
}

// Up builds the topology: namespaces, links, addresses and routes, the PKI
// (a CA and a server certificate for ServerName), dnsmasq in the Internet
// router and the intranet web server. It does not start the IP-HTTPS
// daemons (see StartServer and StartClient). Namespaces left over from an
// earlier lab with the same prefix are removed first. On error everything
// already created is removed again.
func Up(ctx context.Context, o Options) (*Lab, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := validPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.Clients == 0 {
		o.Clients = 2
	}
	if o.Clients < 1 || o.Clients > maxClients {
		return nil, fmt.Errorf("lab: %d clients: want 1 to %d", o.Clients, maxClients)
	}
	if o.AuthMode == "" {
		o.AuthMode = "none"
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if err := CheckRoot(); err != nil {
		return nil, err
	}
	if err := CheckTools(); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	l := &Lab{opts: o, log: newLogger(o.Log), procs: map[string]*proc{}}
	var err error
	if l.dir, l.tempDir, err = workDir(o.Dir, "iphttps-lab-"); err != nil {
		return nil, fmt.Errorf("lab directory: %w", err)
	}
	if err := l.build(ctx); err != nil {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean-up after failed start: %w", derr))
		}
		return nil, err
	}
	return l, nil
}

// build does the work of Up.
func (l *Lab) build(ctx context.Context) error {
	if err := RemoveStale(ctx, l.opts.Prefix, l.log); err != nil {
		return fmt.Errorf("lab: remove stale namespaces: %w", err)
	}
	if err := l.saveState(); err != nil {
		return err
	}
	if err := l.makePKI(); err != nil {
		return err
	}
	if err := l.makeTopology(ctx); err != nil {
		return err
	}
	if err := l.startDNS(ctx); err != nil {
		return err
	}
	if err := l.startWeb(); err != nil {
		return err
	}
	l.log.Info("lab is up", "prefix", l.opts.Prefix, "dir", l.dir, "clients", l.opts.Clients)
	return nil
}

// makePKI writes ca.pem/ca.key and server.pem/server.key.
func (l *Lab) makePKI() error {
	ca, err := pki.NewCA("iphttps lab CA")
	if err != nil {
		return fmt.Errorf("lab PKI: %w", err)
	}
	if _, _, err := ca.WriteFiles(l.dir, "ca"); err != nil {
		return fmt.Errorf("lab PKI: %w", err)
	}
	srv, err := pki.Server(ca, pki.Options{CommonName: ServerName})
	if err != nil {
		return fmt.Errorf("lab PKI: %w", err)
	}
	if _, _, err := srv.WriteFiles(l.dir, "server"); err != nil {
		return fmt.Errorf("lab PKI: %w", err)
	}
	l.ca = ca
	return nil
}

// makeTopology creates the namespaces, links, addresses, routes and sysctls.
// addNetns creates namespace ns and records it (in memory and in the state
// file) at once, so Down and `lab down` remove it even if a later step fails.
func (l *Lab) addNetns(ctx context.Context, ns string) error {
	if err := AddNetns(ctx, ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	return l.saveState()
}

func (l *Lab) makeTopology(ctx context.Context) error {
	inet, edge, corp := l.NS(RoleInet), l.NS(RoleEdge), l.NS(RoleCorp)
	names := []string{inet, edge, corp}
	for i := 1; i <= l.opts.Clients; i++ {
		names = append(names, l.ClientNS(i))
	}
	for _, ns := range names {
		if err := l.addNetns(ctx, ns); err != nil {
			return err
		}
	}
	steps := []func() error{
		func() error { return AddVeth(ctx, inet, vethToEdge, edge, vethToInet) },
		func() error { return AddVeth(ctx, edge, vethToCorp, corp, vethToEdge) },
		func() error { return AddAddr(ctx, inet, "lo", DNSAddr+"/32") },
		func() error { return AddAddr(ctx, inet, vethToEdge, InetEdgeIPv4+"/24") },
		func() error { return AddAddr(ctx, edge, vethToInet, ServerIPv4+"/24") },
		func() error { return AddAddr(ctx, edge, vethToCorp, IntranetRouter+"/64") },
		func() error { return AddAddr(ctx, corp, vethToEdge, IntranetHost+"/64") },
		func() error { return AddRoute(ctx, edge, "default", InetEdgeIPv4) },
		func() error { return AddRoute(ctx, corp, "default", IntranetRouter) },
		func() error { return SetSysctl(inet, "net.ipv4.ip_forward", "1") },
	}
	for i := 1; i <= l.opts.Clients; i++ {
		cli, toCli := l.ClientNS(i), "to-"+ClientName(i)
		steps = append(steps,
			func() error { return AddVeth(ctx, inet, toCli, cli, vethToInet) },
			func() error { return AddAddr(ctx, inet, toCli, clientInetIPv4(i)+"/29") },
			func() error { return AddAddr(ctx, cli, vethToInet, ClientIPv4(i)+"/29") },
			func() error { return AddRoute(ctx, cli, "default", clientInetIPv4(i)) },
			func() error { return l.writeResolvConf(cli) },
		)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("lab topology: %w", err)
		}
	}
	return nil
}

// writeResolvConf points ns at the lab DNS server: ip-netns(8) bind-mounts
// /etc/netns/NS/resolv.conf over /etc/resolv.conf for `ip netns exec NS`.
func (l *Lab) writeResolvConf(ns string) error {
	d := etcNetnsPath(ns)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	l.mu.Lock()
	l.etcDirs = append(l.etcDirs, d)
	l.mu.Unlock()
	if err := l.saveState(); err != nil {
		return err
	}
	conf := "# iphttps lab: the lab's DNS server in " + l.NS(RoleInet) + "\nnameserver " + DNSAddr + "\n"
	if err := os.WriteFile(filepath.Join(d, "resolv.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("namespace %s: resolv.conf: %w", ns, err)
	}
	return nil
}

// startDNS runs dnsmasq in the Internet router and waits until client 1
// resolves ServerName through it.
func (l *Lab) startDNS(ctx context.Context) error {
	dnsmasq, err := lookTool("dnsmasq")
	if err != nil {
		return fmt.Errorf("lab DNS: %w", err)
	}
	argv := []string{dnsmasq,
		"--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--conf-file=/dev/null", "--user=root", "--log-facility=-", "--log-queries",
		"--listen-address=" + DNSAddr,
		// Authoritative for the lab's domain: an unknown name is NXDOMAIN
		// (not REFUSED), as a real zone answers.
		"--local=/example.test/",
		"--host-record=" + ServerName + "," + ServerIPv4,
		"--pid-file=" + filepath.Join(l.dir, "dnsmasq.pid"),
	}
	for _, r := range l.opts.DNSRecords {
		argv = append(argv, "--host-record="+r)
	}
	argv = append(argv, l.opts.DNSArgs...)
	if err := l.startProc("dnsmasq", l.NS(RoleInet), argv...); err != nil {
		return fmt.Errorf("lab DNS: %w", err)
	}
	// Resolve the way the client daemons will: through the namespace's
	// resolv.conf, from a client namespace, across the Internet router.
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p := l.proc("dnsmasq"); p != nil && p.exited() {
			return fmt.Errorf("lab DNS: dnsmasq %s:\n%s", p.exitString(), LogTail(p.logPath, 20))
		}
		out, err := l.ExecContext(ctx, l.ClientNS(1), "getent", "ahostsv4", ServerName)
		if err == nil && strings.Contains(string(out), ServerIPv4) {
			l.log.Info("DNS answers", "name", ServerName, "addr", ServerIPv4)
			return nil
		}
		last = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		if err == nil {
			last = fmt.Errorf("unexpected answer: %q", strings.TrimSpace(string(out)))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("lab DNS: %s does not resolve %s from %s after 10s: %v\n%s",
		DNSAddr, ServerName, l.ClientNS(1), last, LogTail(l.LogFile("dnsmasq"), 20))
}

// startWeb serves the intranet page on [IntranetHost]:80 in corp.
func (l *Lab) startWeb() error {
	srv, done, err := serveIntranetPage(l.NS(RoleCorp), IntranetHost, ", through the IP-HTTPS tunnel", l.log)
	if err != nil {
		return fmt.Errorf("lab web server: %w", err)
	}
	l.mu.Lock()
	l.web, l.webDone = srv, done
	l.mu.Unlock()
	l.log.Info("intranet web server up", "url", "http://["+IntranetHost+"]/")
	return nil
}

// serveIntranetPage serves a small page on [host]:80 in namespace ns, the
// intranet web server of both labs; done closes when the server has
// stopped.
func serveIntranetPage(ns, host, via string, log *slog.Logger) (srv *http.Server, done chan struct{}, err error) {
	ln, err := Listen(ns, "tcp", net.JoinHostPort(host, "80"))
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello from the intranet host %s (namespace %s).\nYou came from %s%s.\n", host, ns, r.RemoteAddr, via)
	})
	srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done = make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("intranet web server", "err", err)
		}
	}()
	return srv, done, nil
}

// NS is the namespace name of role (RoleInet, RoleEdge, RoleCorp or a
// client name such as "cli1").
func (l *Lab) NS(role string) string { return l.opts.Prefix + role }

// ClientNS is the namespace of client i (1-based).
func (l *Lab) ClientNS(i int) string { return l.NS(ClientName(i)) }

// Namespaces lists the lab's namespaces.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.namespaces)
}

// Prefix is the namespace name prefix.
func (l *Lab) Prefix() string { return l.opts.Prefix }

// Clients is the number of client namespaces.
func (l *Lab) Clients() int { return l.opts.Clients }

// Dir is the lab directory.
func (l *Lab) Dir() string { return l.dir }

// CAFile is the CA certificate the clients trust (and, in certificates
// mode, the server checks client certificates against).
func (l *Lab) CAFile() string { return filepath.Join(l.dir, "ca.pem") }

// LogFile is the log of daemon name ("server", "cli1", "dnsmasq", ...).
func (l *Lab) LogFile(name string) string { return filepath.Join(l.dir, name+".log") }

// SocketFile is the control socket of daemon name ("server", "cli1", ...).
func (l *Lab) SocketFile(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.socketFileLocked(name)
}

func (l *Lab) socketFileLocked(name string) string {
	if p, ok := l.sockets[name]; ok {
		return p
	}
	return filepath.Join(l.dir, name+".sock")
}

// ClientCert issues a client certificate for client i from the lab CA and
// writes it as cliN-cert.pem / cliN-cert.key; it returns their paths.
func (l *Lab) ClientCert(i int) (certFile, keyFile string, err error) {
	name := ClientName(i)
	c, err := pki.Client(l.ca, pki.Options{CommonName: name + ".example.test"})
	if err != nil {
		return "", "", fmt.Errorf("%s certificate: %w", name, err)
	}
	return c.WriteFiles(l.dir, name+"-cert")
}

// ServerArgs is the server command line StartServer runs (without extra).
func (l *Lab) ServerArgs() []string {
	args := []string{l.opts.Binary, "server",
		"--listen", net.JoinHostPort(ServerIPv4, "443"),
		"--cert", filepath.Join(l.dir, "server.pem"),
		"--key", filepath.Join(l.dir, "server.key"),
		"--prefix", LinkPrefix,
		"--route", IntranetPrefix,
		"--control-socket", l.SocketFile("server"),
		"--log-level", l.opts.LogLevel,
	}
	if l.opts.ServerConfig != "" {
		return append(append(args, "--config", l.opts.ServerConfig), l.opts.ServerArgs...)
	}
	args = append(args, "--auth-mode", l.opts.AuthMode)
	if l.opts.AuthMode == "certificates" {
		args = append(args, "--client-ca", l.CAFile())
	}
	return append(args, l.opts.ServerArgs...)
}

// ClientArgs is the command line StartClient runs for client i (without
// extra).
func (l *Lab) ClientArgs(i int) []string {
	args := []string{l.opts.Binary, "client", ServerURL,
		"--ca", l.CAFile(),
		"--control-socket", l.SocketFile(ClientName(i)),
		"--log-level", l.opts.LogLevel,
	}
	return append(args, l.opts.ClientArgs...)
}

// StartServer starts the IP-HTTPS server in the edge namespace and waits
// (up to 15 s) until its control socket answers. extra is appended to the
// command line.
func (l *Lab) StartServer(extra ...string) error {
	if l.opts.Binary == "" {
		return errors.New("lab: no iphttps binary configured (Options.Binary)")
	}
	argv := append(l.ServerArgs(), extra...)
	start := time.Now()
	if err := l.startProc("server", l.NS(RoleEdge), argv...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := l.WaitStatus(ctx, "server", func(status.Interface) bool { return true })
	if err != nil {
		return fmt.Errorf("server did not come up: %w", err)
	}
	took := time.Since(start)
	l.log.Info("server up", "pid", l.PID("server"), "after", took.Round(time.Millisecond))
	if took > 3*time.Second {
		l.log.Warn("the server was slow to answer on its control socket", "log_tail", LogTail(l.LogFile("server"), 20))
	}
	return nil
}

// StopServer stops the server with SIGTERM and waits for it (killing it
// after 10 s). It returns an error unless the server exited with status 0.
func (l *Lab) StopServer() error { return l.stopProc("server", syscall.SIGTERM, 10*time.Second) }

// KillServer kills the server with SIGKILL and waits for it.
func (l *Lab) KillServer() error {
	p := l.proc("server")
	if p == nil {
		return errors.New("lab: server not started")
	}
	return p.kill()
}

// KillClient kills client i with SIGKILL (it cannot clean up) and waits
// for it.
func (l *Lab) KillClient(i int) error {
	p := l.proc(ClientName(i))
	if p == nil {
		return fmt.Errorf("lab: %s not started", ClientName(i))
	}
	return p.kill()
}

// StartClient starts client i (1-based) in its namespace; extra is appended
// to the command line. It does not wait for the tunnel (see
// WaitClientActive).
func (l *Lab) StartClient(i int, extra ...string) error {
	return l.StartClientURL(i, ServerURL, extra...)
}

// StopClient stops client i with SIGTERM and waits up to 5 s. It returns an
// error unless the client exited with status 0 within that time.
func (l *Lab) StopClient(i int) error {
	return l.stopProc(ClientName(i), syscall.SIGTERM, 5*time.Second)
}

// PID is the process ID of daemon name ("server", "cli1", "dnsmasq"), or 0.
func (l *Lab) PID(name string) int {
	if p := l.proc(name); p != nil {
		return p.pid
	}
	return 0
}

// Running reports whether daemon name has been started and has not exited.
func (l *Lab) Running(name string) bool {
	p := l.proc(name)
	return p != nil && !p.exited()
}

// PIDs returns the process IDs of every process the lab started, including
// ones that have exited since, keyed by name.
func (l *Lab) PIDs() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int, len(l.procs))
	for n, p := range l.procs {
		m[n] = p.pid
	}
	return m
}

// proc returns the latest process of name, or nil.
func (l *Lab) proc(name string) *proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.procs[name]
}

// startProc starts a named child; a still running process of that name is
// an error.
func (l *Lab) startProc(name, ns string, argv ...string) error {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return errors.New("lab: already torn down")
	}
	if old := l.procs[name]; old != nil && !old.exited() {
		l.mu.Unlock()
		return fmt.Errorf("lab: %s is already running (pid %d)", name, old.pid)
	}
	p, err := startProc(name, ns, l.LogFile(name), argv...)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	l.procs[name] = p
	l.mu.Unlock()
	return l.saveState()
}

// stopProc stops a named child with sig, waiting up to grace.
func (l *Lab) stopProc(name string, sig syscall.Signal, grace time.Duration) error {
	p := l.proc(name)
	if p == nil {
		return fmt.Errorf("lab: %s not started", name)
	}
	return p.stop(sig, grace)
}

// Status fetches the status of daemon name ("server", "cli1", ...) from its
// control socket.
func (l *Lab) Status(ctx context.Context, name string) (status.Interface, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return control.Fetch(ctx, l.SocketFile(name))
}

// IsActive reports whether a client status shows a working tunnel: state
// LinkUp, InterfaceStatus StatusActive, error code 0 and a global address
// from LinkPrefix.
func IsActive(s status.Interface) bool {
	if s.State != "LinkUp" || s.InterfaceStatus != StatusActive || s.LastErrorCode != 0 {
		return false
	}
	_, ok := LinkAddr(s)
	return ok
}

// LinkAddr returns the first address of s (entries like "2001:db8:1::5/64")
// inside LinkPrefix.
func LinkAddr(s status.Interface) (netip.Addr, bool) {
	pfx := LinkPrefixValue()
	for _, a := range s.Addresses {
		var addr netip.Addr
		if p, err := netip.ParsePrefix(a); err == nil {
			addr = p.Addr()
		} else if x, err := netip.ParseAddr(a); err == nil {
			addr = x
		} else {
			continue
		}
		if pfx.Contains(addr) {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// WaitClientActive polls client i's control socket until IsActive, for at
// most timeout. On failure the error holds the last status seen and the
// tail of the client's log.
func (l *Lab) WaitClientActive(ctx context.Context, i int, timeout time.Duration) (status.Interface, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return l.WaitStatus(ctx, ClientName(i), IsActive)
}

// WaitStatus polls the status of daemon name every 200 ms until ok returns
// true or ctx ends. It fails early if the daemon exits. Errors carry the
// last status seen and the tail of the daemon's log.
func (l *Lab) WaitStatus(ctx context.Context, name string, ok func(status.Interface) bool) (status.Interface, error) {
	start := time.Now()
	var last status.Interface
	var seen bool
	var lastErr error
	for {
		p := l.proc(name)
		if p == nil {
			return last, fmt.Errorf("%s was never started", name)
		}
		if p.exited() {
			if !p.stopped.Load() {
				p.reported.Store(true)
			}
			return last, fmt.Errorf("%s %s after %s\n%s", name, p.exitString(), time.Since(start).Round(time.Millisecond), l.describe(name, last, seen, nil))
		}
		s, err := l.Status(ctx, name)
		if err == nil {
			last, seen, lastErr = s, true, nil
			if ok(s) {
				return s, nil
			}
		} else {
			lastErr = err
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, fmt.Errorf("%s: condition not met after %s: %w\n%s", name, time.Since(start).Round(time.Millisecond), ctx.Err(), l.describe(name, last, seen, lastErr))
		case <-t.C:
		}
	}
}

// describe renders the last status of a daemon and its log tail for an
// error message.
func (l *Lab) describe(name string, s status.Interface, seen bool, fetchErr error) string {
	var b strings.Builder
	if seen {
		fmt.Fprintf(&b, "last status of %s: state=%q interface_status=%q last_error_code=0x%X last_error=%q addresses=%v\n",
			name, s.State, s.InterfaceStatus, s.LastErrorCode, s.LastError, s.Addresses)
	} else {
		fmt.Fprintf(&b, "no status was ever read from %s\n", l.SocketFile(name))
	}
	if fetchErr != nil {
		fmt.Fprintf(&b, "last status fetch error: %v\n", fetchErr)
	}
	fmt.Fprintf(&b, "--- last lines of %s:\n%s", l.LogFile(name), LogTail(l.LogFile(name), 40))
	return b.String()
}

// ClientAddr returns client i's tunnel address from LinkPrefix, read from
// its status.
func (l *Lab) ClientAddr(ctx context.Context, i int) (netip.Addr, error) {
	s, err := l.Status(ctx, ClientName(i))
	if err != nil {
		return netip.Addr{}, err
	}
	a, ok := LinkAddr(s)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%s has no address in %s (addresses %v)", ClientName(i), LinkPrefix, s.Addresses)
	}
	return a, nil
}

// Exec runs args in namespace ns via `ip netns exec` (so the namespace's
// /etc/netns files apply) and returns combined stdout and stderr. It is
// bounded to 60 s.
func (l *Lab) Exec(ns string, args ...string) ([]byte, error) {
	return l.ExecContext(context.Background(), ns, args...)
}

// ExecContext is Exec bounded by ctx as well.
func (l *Lab) ExecContext(ctx context.Context, ns string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return execIn(ctx, ns, args...)
}

// Do runs fn inside namespace ns (see the package function Do).
func (l *Lab) Do(ns string, fn func() error) error { return Do(ns, fn) }

// HTTPGet is the package function HTTPGet.
func (l *Lab) HTTPGet(ctx context.Context, ns, url string) (string, []byte, error) {
	return HTTPGet(ctx, ns, url)
}

// HTTPGet fetches url from namespace ns with the in-process HTTP client
// (bounded to 15 s). The URL's host must be an IP literal. It returns the
// status line ("HTTP/1.1 200 OK") and the body (at most 1 MiB).
func HTTPGet(ctx context.Context, ns, url string) (string, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: Dialer(ns), DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("GET %s from %s: %w", url, ns, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, fmt.Errorf("GET %s from %s: body: %w", url, ns, err)
	}
	return resp.Proto + " " + resp.Status, body, nil
}

// State returns what the lab records in its state file.
func (l *Lab) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked()
}

func (l *Lab) stateLocked() State {
	s := State{
		Prefix:     l.opts.Prefix,
		Dir:        l.dir,
		TempDir:    l.tempDir,
		LabPID:     os.Getpid(),
		Namespaces: slices.Clone(l.namespaces),
		EtcNetns:   slices.Clone(l.etcDirs),
	}
	s.LabStart, _ = procStart(s.LabPID)
	names := make([]string, 0, len(l.procs))
	for n := range l.procs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s.Procs = append(s.Procs, l.procs[n].record())
		if n != "dnsmasq" {
			s.Sockets = append(s.Sockets, l.socketFileLocked(n))
		}
	}
	return s
}

// saveState rewrites the state file.
func (l *Lab) saveState() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil
	}
	return writeState(l.dir, l.stateLocked())
}

// Down tears the lab down: it stops the clients, the server and dnsmasq
// (SIGTERM, then SIGKILL), closes the web server, deletes the namespaces
// and /etc/netns directories, removes the control sockets and state file,
// and the lab directory if it was temporary. It returns the clean-up
// failures and the daemons that did not exit cleanly (status 0 after
// SIGTERM, or exited on their own before Down). Down is idempotent.
func (l *Lab) Down() error {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return nil
	}
	l.down = true
	procs := make(map[string]*proc, len(l.procs))
	for n, p := range l.procs {
		procs[n] = p
	}
	web, webDone := l.web, l.webDone
	namespaces := slices.Clone(l.namespaces)
	etcDirs := slices.Clone(l.etcDirs)
	l.mu.Unlock()

	var errs []error
	// Clients first, then the server, then the DNS server.
	order := make([]string, 0, len(procs))
	for i := 1; i <= l.opts.Clients; i++ {
		order = append(order, ClientName(i))
	}
	order = append(order, "server", "dnsmasq")
	for _, n := range order {
		p := procs[n]
		if p == nil {
			continue
		}
		wasStopped, exited := p.stopped.Load(), p.exited()
		grace := 5 * time.Second
		if n == "server" {
			grace = 10 * time.Second
		}
		err := p.stop(syscall.SIGTERM, grace)
		switch {
		case wasStopped || p.reported.Load():
			// Stopped or killed on purpose earlier, or its exit was already
			// reported by WaitStatus.
		case exited && err != nil:
			errs = append(errs, fmt.Errorf("%s had exited before Down: %w\n%s", n, err, LogTail(p.logPath, 20)))
		case n == "dnsmasq":
			// dnsmasq exits with status 0 on SIGTERM; anything else is noted
			// but does not matter to the lab.
			if err != nil {
				l.log.Warn("dnsmasq stop", "err", err)
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("stop %s: %w\n%s", n, err, LogTail(p.logPath, 20)))
		}
	}
	// The HTTP proxies (squid) and the BlockDirect table: see proxy.go.
	errs = append(errs, l.downProxies(procs)...)
	stopWeb(web, webDone)
	errs = append(errs, deleteNetnsAll(namespaces)...)
	for _, d := range etcDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	for n := range procs {
		if n != "dnsmasq" {
			if err := os.Remove(l.SocketFile(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove control socket: %w", err))
			}
		}
	}
	for _, f := range []string{StateFile, StateFile + ".tmp", "dnsmasq.pid"} {
		_ = os.Remove(filepath.Join(l.dir, f))
	}
	if l.tempDir {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab directory: %w", err))
		}
	}
	l.log.Info("lab is down", "prefix", l.opts.Prefix)
	return errors.Join(errs...)
}

// execIn runs args in namespace ns with `ip netns exec`.
func execIn(ctx context.Context, ns string, args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, errors.New("exec: no command")
	}
	out, err := Command(ctx, ns, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip netns exec %s %s: %w", ns, strings.Join(args, " "), err)
	}
	return out, nil
}

// Command is args run in namespace ns with `ip netns exec` (which execs
// them in place: the process's PID is the command's), killed when ctx
// ends: for a caller that reads the output as it comes.
func Command(ctx context.Context, ns string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	// A grandchild holding the output pipe must not make us wait forever.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}
