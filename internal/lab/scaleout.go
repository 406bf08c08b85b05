package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/status"
)

// Scale-out in the lab: N IP-HTTPS servers, each in its own namespace with
// its own /64 link prefix, behind a real HAProxy in TCP mode in the edge
// namespace, listening on the public address ServerIPv4:443 that
// ServerName resolves to. The clients do not change: they connect to
// ServerURL as ever and land on whichever server HAProxy picks.
//
//	cliN --- inet --- edge (HAProxy on 203.0.113.10:443) --+-- srv1 --+-- corp (intranet host)
//	                                                       +-- srv2 --+
//
// Server i listens on ScaleServerIPv4(i):443 on a /30 of its own with the
// edge, advertises ScalePrefix(i) and the intranet route, and reaches the
// intranet host over a link of its own to corp; corp routes each server's
// prefix back to that server. The inet router routes the backend addresses
// to the edge, so a client can also try a server directly (bypassing
// HAProxy), as a misrouted or hostile peer would.
const (
	// HAProxyName is the lab process name of HAProxy: its output goes to
	// LogFile(HAProxyName), its admin socket is SocketFile(HAProxyName)
	// and its configuration is HAProxyConfig().
	HAProxyName = "haproxy"
	// HAProxyBackend is the backend name in the generated haproxy.cfg.
	HAProxyBackend = "iphttps"
	// scaleBackendNet holds the edge-to-server links (one /30 each).
	scaleBackendNet = "192.0.2.128/25"
	// maxScaleServers keeps the /30s inside scaleBackendNet (the last one
	// is 192.0.2.252/30).
	maxScaleServers = 32
)

// ScaleOutOptions configure StartScaleOut.
type ScaleOutOptions struct {
	// Servers is the number of IP-HTTPS servers (default 2).
	Servers int
	// ProxyProtocol makes HAProxy open every backend connection (and
	// health check) with a PROXY protocol v2 header (send-proxy-v2). The
	// servers must then run with --proxy-protocol (put it in ServerArgs).
	ProxyProtocol bool
	// Balance is HAProxy's balance algorithm (default "leastconn").
	Balance string
	// ServerArgs are appended to every server's command line.
	ServerArgs []string
}

// ScaleServerName is the daemon name and namespace role of server i
// (1-based): "srv1", "srv2", ...
func ScaleServerName(i int) string { return "srv" + strconv.Itoa(i) }

// ScaleServerIPv4 is server i's address on its link with the edge, where it
// listens on port 443.
func ScaleServerIPv4(i int) string { return fmt.Sprintf("192.0.2.%d", 128+4*(i-1)+2) }

// ScaleEdgeIPv4 is the edge's (HAProxy's) address on its link with server
// i: the source address of HAProxy's connections to that server.
func ScaleEdgeIPv4(i int) string { return fmt.Sprintf("192.0.2.%d", 128+4*(i-1)+1) }

// ScalePrefix is the link prefix server i advertises: 2001:db8:1::/64,
// 2001:db8:2::/64, ... (server 1's is LinkPrefix).
func ScalePrefix(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/64", i))
}

// scaleCorpNet is the /64 of the link between server i and corp: the server
// is ::1 on it, corp ::2.
func scaleCorpNet(i int) string { return fmt.Sprintf("2001:db8:cc:%x::", i) }

// ScaleServerNS is the namespace of server i.
func (l *Lab) ScaleServerNS(i int) string { return l.NS(ScaleServerName(i)) }

// HAProxyConfig is the path of the generated haproxy.cfg.
func (l *Lab) HAProxyConfig() string { return filepath.Join(l.dir, "haproxy.cfg") }

// ScaleServerArgs is the command line of server i (without ServerArgs).
func (l *Lab) ScaleServerArgs(i int) []string {
	name := ScaleServerName(i)
	args := []string{l.opts.Binary, "server",
		"--listen", net.JoinHostPort(ScaleServerIPv4(i), "443"),
		"--cert", filepath.Join(l.dir, "server.pem"),
		"--key", filepath.Join(l.dir, "server.key"),
		"--prefix", ScalePrefix(i).String(),
		"--route", IntranetPrefix,
		"--auth-mode", l.opts.AuthMode,
		"--control-socket", l.SocketFile(name),
		"--log-level", l.opts.LogLevel,
	}
	if l.opts.AuthMode == "certificates" {
		args = append(args, "--client-ca", l.CAFile())
	}
	return append(args, l.opts.ServerArgs...)
}

// HAProxyTools is what StartScaleOut runs besides the lab's own tools.
func HAProxyTools() []Tool { return []Tool{{Name: "haproxy", Package: "haproxy"}} }

// CheckHAProxy reports a missing haproxy, naming its Debian package.
func CheckHAProxy() error { return checkTools(HAProxyTools()) }

// StartScaleOut adds o.Servers server namespaces to a lab made with Up,
// links them to the edge and to corp, starts an IP-HTTPS server in each
// and HAProxy in the edge, and waits (up to 20 s) until HAProxy's health
// checks see every server up. It does not start the lab's own "server"
// (StartServer): HAProxy takes its address. The namespaces join the lab's,
// so Down removes them; StopScaleOut stops the daemons first and reports
// how they exited.
func (l *Lab) StartScaleOut(ctx context.Context, o ScaleOutOptions) error {
	if o.Servers == 0 {
		o.Servers = 2
	}
	if o.Servers < 1 || o.Servers > maxScaleServers {
		return fmt.Errorf("lab scale-out: %d servers: want 1 to %d", o.Servers, maxScaleServers)
	}
	if o.Balance == "" {
		o.Balance = "leastconn"
	}
	if l.opts.Binary == "" {
		return errors.New("lab scale-out: no iphttps binary configured (Options.Binary)")
	}
	if err := CheckHAProxy(); err != nil {
		return fmt.Errorf("lab scale-out: %w", err)
	}
	haproxy, err := lookTool("haproxy")
	if err != nil {
		return fmt.Errorf("lab scale-out: %w", err)
	}
	if err := l.makeScaleTopology(ctx, o.Servers); err != nil {
		return fmt.Errorf("lab scale-out: %w", err)
	}
	for i := 1; i <= o.Servers; i++ {
		if err := l.StartScaleServer(i, o.ServerArgs...); err != nil {
			return err
		}
	}
	conf := HAProxyConf(l.SocketFile(HAProxyName), ServerIPv4, o)
	if err := os.WriteFile(l.HAProxyConfig(), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("lab scale-out: %w", err)
	}
	// Check the configuration first: a mistake shows as a clear message
	// rather than as an exited process.
	if out, err := l.ExecContext(ctx, l.NS(RoleEdge), haproxy, "-c", "-f", l.HAProxyConfig()); err != nil {
		return fmt.Errorf("lab scale-out: haproxy -c: %w\n%s", err, out)
	}
	_ = os.Remove(l.SocketFile(HAProxyName))
	if err := l.startProc(HAProxyName, l.NS(RoleEdge), haproxy, "-db", "-f", l.HAProxyConfig()); err != nil {
		return fmt.Errorf("lab scale-out: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	var last string
	for {
		if p := l.proc(HAProxyName); p != nil && p.exited() {
			p.reported.Store(true)
			return fmt.Errorf("lab scale-out: haproxy %s:\n%s", p.exitString(), LogTail(p.logPath, 20))
		}
		st, err := l.HAProxyServers(wctx)
		if err == nil {
			up := 0
			for _, s := range st {
				if s == "UP" {
					up++
				}
			}
			if up == o.Servers {
				break
			}
			last = fmt.Sprint(st)
		} else {
			last = err.Error()
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-wctx.Done():
			t.Stop()
			return fmt.Errorf("lab scale-out: HAProxy does not see %d servers up after %s (last: %s)\n%s",
				o.Servers, time.Since(start).Round(time.Millisecond), last, LogTail(l.LogFile(HAProxyName), 20))
		case <-t.C:
		}
	}
	l.log.Info("scale-out up", "servers", o.Servers, "haproxy_pid", l.PID(HAProxyName),
		"proxy_protocol", o.ProxyProtocol, "balance", o.Balance, "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// makeScaleTopology creates the server namespaces, their links to the edge
// and to corp, and the routes.
func (l *Lab) makeScaleTopology(ctx context.Context, n int) error {
	edge, corp, inet := l.NS(RoleEdge), l.NS(RoleCorp), l.NS(RoleInet)
	for i := 1; i <= n; i++ {
		ns := l.ScaleServerNS(i)
		// Left over from an earlier run that could not clean up: these
		// names are not lab roles, so RemoveStale does not know them.
		if err := DeleteNetns(ctx, ns); err != nil {
			return err
		}
		if err := l.addNetns(ctx, ns); err != nil {
			return err
		}
	}
	steps := []func() error{
		func() error { return SetSysctl(edge, "net.ipv4.ip_forward", "1") },
		func() error { return AddRoute(ctx, inet, scaleBackendNet, ServerIPv4) },
	}
	for i := 1; i <= n; i++ {
		ns, name := l.ScaleServerNS(i), ScaleServerName(i)
		toSrv := "to-" + name
		cn := scaleCorpNet(i)
		steps = append(steps,
			func() error { return AddVeth(ctx, edge, toSrv, ns, vethToEdge) },
			func() error { return AddAddr(ctx, edge, toSrv, ScaleEdgeIPv4(i)+"/30") },
			func() error { return AddAddr(ctx, ns, vethToEdge, ScaleServerIPv4(i)+"/30") },
			func() error { return AddRoute(ctx, ns, "default", ScaleEdgeIPv4(i)) },
			func() error { return AddVeth(ctx, ns, vethToCorp, corp, toSrv) },
			func() error { return AddAddr(ctx, ns, vethToCorp, cn+"1/64") },
			func() error { return AddAddr(ctx, corp, toSrv, cn+"2/64") },
			func() error { return AddRoute(ctx, ns, IntranetPrefix, cn+"2") },
			func() error { return AddRoute(ctx, corp, ScalePrefix(i).String(), cn+"1") },
		)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// StartScaleServer starts server i in its namespace (again, after it was
// stopped or killed) and waits up to 15 s for its control socket.
func (l *Lab) StartScaleServer(i int, extra ...string) error {
	name := ScaleServerName(i)
	argv := append(l.ScaleServerArgs(i), extra...)
	if err := l.startProc(name, l.ScaleServerNS(i), argv...); err != nil {
		return fmt.Errorf("lab scale-out: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := l.WaitStatus(ctx, name, func(status.Interface) bool { return true }); err != nil {
		return fmt.Errorf("lab scale-out: %s did not come up: %w", name, err)
	}
	return nil
}

// KillScaleServer kills server i with SIGKILL (no clean-up, no goodbye to
// its clients: their connections end when the kernel closes its sockets)
// and waits for it.
func (l *Lab) KillScaleServer(i int) error {
	p := l.proc(ScaleServerName(i))
	if p == nil {
		return fmt.Errorf("lab: %s not started", ScaleServerName(i))
	}
	return p.kill()
}

// StopScaleOut stops HAProxy and the scale-out servers (SIGTERM; a
// server's grace is 10 s) and returns how those that had not been stopped
// or killed on purpose ended: an error unless status 0. Down would kill
// them with their namespaces anyway, without a report.
func (l *Lab) StopScaleOut() error {
	var errs []error
	names := []string{HAProxyName}
	for i := 1; i <= maxScaleServers; i++ {
		names = append(names, ScaleServerName(i))
	}
	for _, n := range names {
		p := l.proc(n)
		if p == nil {
			continue
		}
		wasStopped, exited := p.stopped.Load(), p.exited()
		err := p.stop(syscall.SIGTERM, 10*time.Second)
		if n == HAProxyName && err != nil && terminatedBy(p, syscall.SIGTERM) {
			// HAProxy's hard stop: it dies of the signal.
			err = nil
		}
		switch {
		case wasStopped || p.reported.Load():
		case exited && err != nil:
			errs = append(errs, fmt.Errorf("%s had exited before it was stopped: %w\n%s", n, err, LogTail(p.logPath, 20)))
		case err != nil:
			errs = append(errs, fmt.Errorf("stop %s: %w\n%s", n, err, LogTail(p.logPath, 20)))
		}
	}
	return errors.Join(errs...)
}

// terminatedBy reports whether the exited process p was ended by sig.
func terminatedBy(p *proc, sig syscall.Signal) bool {
	if p.state == nil {
		return false
	}
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// HAProxyServers asks HAProxy's admin socket ("show stat") for the health
// of the backend's servers: "srv1" -> "UP", "DOWN", "MAINT", ...
func (l *Lab) HAProxyServers(ctx context.Context) (map[string]string, error) {
	out, err := l.HAProxyCommand(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	return parseHAProxyStat(out, HAProxyBackend)
}

// HAProxyCommand sends one command to HAProxy's admin socket and returns
// the answer.
func (l *Lab) HAProxyCommand(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", l.SocketFile(HAProxyName))
	if err != nil {
		return "", fmt.Errorf("haproxy admin socket: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", fmt.Errorf("haproxy admin socket: %w", err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return b.String(), fmt.Errorf("haproxy admin socket: %w", err)
	}
	return b.String(), nil
}

// parseHAProxyStat picks the status column of backend's servers out of
// HAProxy's "show stat" CSV ("# pxname,svname,...,status,...").
func parseHAProxyStat(csv, backend string) (map[string]string, error) {
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# ") {
		return nil, fmt.Errorf("haproxy show stat: no header in %q", csv)
	}
	head := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	if _, ok := col["status"]; !ok {
		return nil, errors.New("haproxy show stat: no status column")
	}
	m := map[string]string{}
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if len(f) <= st || len(f) <= sv || len(f) <= px {
			continue
		}
		if f[px] != backend || f[sv] == "BACKEND" || f[sv] == "FRONTEND" {
			continue
		}
		// "UP 1/2" while rising, "DOWN 1/2" while falling: the first word.
		m[f[sv]] = strings.Fields(f[st] + " ")[0]
	}
	return m, nil
}

// HAProxyConf is the lab's haproxy.cfg: a TCP-mode frontend on
// public:443 and a backend of o.Servers IP-HTTPS servers with health
// checks. docs/deployment.md shows this file (with ProxyProtocol, two
// servers and the admin socket /run/haproxy/admin.sock) and a test keeps
// the two equal.
func HAProxyConf(adminSocket, public string, o ScaleOutOptions) string {
	balance := o.Balance
	if balance == "" {
		balance = "leastconn"
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# N iphttps servers behind HAProxy in TCP mode: TLS passes through to")
	w("# the servers, each connection opens with a PROXY v2 header.")
	w("global")
	w("    log stdout format raw local0 info")
	w("    # Two file descriptors per tunnel (client side, server side).")
	w("    maxconn 4000")
	w("    stats socket %s mode 600 level admin", adminSocket)
	w("")
	w("defaults")
	w("    mode tcp")
	w("    log global")
	w("    option tcplog")
	w("    option dontlognull")
	w("    timeout connect 3s")
	w("    # A tunnel is one endless POST that can be idle for minutes: the")
	w("    # server sends a router advertisement every ra_interval (200 s).")
	w("    timeout client 1h")
	w("    timeout server 1h")
	w("    timeout check 2s")
	w("    # A server that refuses the connection (dead, not yet marked down):")
	w("    # the retry goes to another server.")
	w("    retries 2")
	w("    option redispatch 1")
	w("")
	w("frontend iphttps_in")
	w("    bind %s", net.JoinHostPort(public, "443"))
	w("    default_backend %s", HAProxyBackend)
	w("")
	w("backend %s", HAProxyBackend)
	w("    # Tunnels are long-lived: new ones go to the server with fewest.")
	w("    balance %s", balance)
	if o.ProxyProtocol {
		w("    # Health check: TCP connect every second, down after 2 failures,")
		w("    # up after 2 successes. send-proxy-v2 applies to checks too.")
		w("    default-server check inter 1s fall 2 rise 2 send-proxy-v2")
	} else {
		w("    # Health check: TCP connect every second, down after 2 failures,")
		w("    # up after 2 successes.")
		w("    default-server check inter 1s fall 2 rise 2")
	}
	for i := 1; i <= max(o.Servers, 1); i++ {
		w("    server %s %s", ScaleServerName(i), net.JoinHostPort(ScaleServerIPv4(i), "443"))
	}
	return b.String()
}
