package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/status"
)

// The 6to4 lab as a whole DirectAccess deployment: the server with its
// three methods (StartDAServer) and clients configured with all three
// (StartDAClient), each choosing one as a DirectAccess client does.

// SixToFourServerIPv4Secondary is the server's second address, which its
// Teredo server needs (RFC 4380: the secondary address of the
// qualification's cone test).
const SixToFourServerIPv4Secondary = "203.0.113.11"

// StartDAServer starts the server as StartServer does, with its Teredo
// server as well (on SixToFourServerIPv4 and the secondary address, which
// it adds to da first): IP-HTTPS, 6to4 and Teredo, as a DirectAccess server
// runs them.
func (l *SixToFourLab) StartDAServer(ctx context.Context, extra ...string) error {
	if out, err := l.ExecContext(ctx, l.NS(SixToFourRoleServer), "ip", "addr", "replace",
		SixToFourServerIPv4Secondary+"/24", "dev", vethToInet); err != nil {
		return fmt.Errorf("6to4 lab: second server address: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return l.StartServer(ctx, append([]string{"--teredo", SixToFourServerIPv4, "--teredo-lab"}, extra...)...)
}

// DAClientName is the lab process name of client i's iphttps client with
// all three methods (StartDAClient).
func DAClientName(i int) string { return "iphttps-da-" + SixToFourClientRole(i) }

// DAClientSocket is the control socket of client i's iphttps client
// (StartDAClient).
func (l *SixToFourLab) DAClientSocket(i int) string { return l.SocketFile(DAClientName(i)) }

// StartDAClient starts `iphttps client https://HOST/IPHTTPS --teredo-server
// --6to4-relay` in client i's namespace as DAClientName(i): the lab
// server's three methods, its self-signed certificate trusted, the
// intranet route, and extra. The namespace's hosts file (SetHosts) gives
// host the server's address; host is ServerName when empty (another name
// makes IP-HTTPS fail the certificate check).
func (l *SixToFourLab) StartDAClient(i int, host string, extra ...string) error {
	if l.opts.Binary == "" {
		return errors.New("6to4 lab: no iphttps binary configured (SixToFourOptions.Binary)")
	}
	if i < 1 || i > l.Clients() {
		return fmt.Errorf("6to4 lab: no client %d (the lab has %d)", i, l.Clients())
	}
	if host == "" {
		host = ServerName
	}
	ns := l.ClientNS(i)
	if err := l.SetHosts(ns, SixToFourServerIPv4+" "+host); err != nil {
		return err
	}
	argv := append([]string{l.opts.Binary, "client", "https://" + host + "/IPHTTPS",
		"--ca", filepath.Join(l.Dir(), "self-signed-"+ServerName+".pem"),
		"--teredo-server", SixToFourServerIPv4, "--teredo-lab",
		"--6to4-relay", SixToFourServerIPv4, "--6to4-lab",
		"--route", SixToFourIntranetPrefix,
		"--control-socket", l.DAClientSocket(i), "--log-level", "debug"}, extra...)
	return l.Start(DAClientName(i), ns, argv...)
}

// DAClientPaths fetches client i's paths (StartDAClient) from its control
// socket, bounded to 2 s.
func (l *SixToFourLab) DAClientPaths(ctx context.Context, i int) ([]status.Path, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := control.Fetch(ctx, l.DAClientSocket(i))
	return st.Paths, err
}

// ActivePath is the method of the path in ps that carries the traffic, or
// "".
func ActivePath(ps []status.Path) string {
	for _, p := range ps {
		if p.Active {
			return p.Method
		}
	}
	return ""
}

// WaitDAClientMethod waits (up to timeout, and ctx) until method ("6to4",
// "Teredo", "IP-HTTPS") carries client i's traffic and returns the paths
// then. On timeout the error says which method, if any, carries it.
func (l *SixToFourLab) WaitDAClientMethod(ctx context.Context, i int, method string, timeout time.Duration) ([]status.Path, error) {
	var ps []status.Path
	err := l.poll(ctx, DAClientName(i), timeout, func() (bool, string) {
		var err error
		if ps, err = l.DAClientPaths(ctx, i); err != nil {
			return false, err.Error()
		}
		active := ActivePath(ps)
		if active == method {
			return true, ""
		}
		if active == "" {
			active = "nothing"
		}
		return false, active + " carries the traffic"
	})
	return ps, err
}

// SetHosts writes lines as namespace ns's hosts file, which `ip netns
// exec` bind-mounts over /etc/hosts: /etc/netns/NS/hosts. Down removes
// the directory.
func (l *SixToFourLab) SetHosts(ns string, lines ...string) error {
	d := etcNetnsPath(ns)
	l.mu.Lock()
	if !slices.Contains(l.etcDirs, d) {
		l.etcDirs = append(l.etcDirs, d)
	}
	l.mu.Unlock()
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("6to4 lab: namespace %s: %w", ns, err)
	}
	if err := os.WriteFile(filepath.Join(d, "hosts"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("6to4 lab: namespace %s: hosts: %w", ns, err)
	}
	return nil
}

// SaveState writes the lab's state file (StateFile in the lab directory):
// its namespaces, /etc/netns directories and processes, for `iphttps lab
// down` (Destroy) from another process. Down removes it.
func (l *SixToFourLab) SaveState() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil
	}
	s := State{
		Prefix:     l.prefix,
		Dir:        l.dir,
		TempDir:    l.tempDir,
		LabPID:     os.Getpid(),
		Namespaces: slices.Clone(l.namespaces),
		EtcNetns:   slices.Clone(l.etcDirs),
	}
	s.LabStart, _ = procStart(s.LabPID)
	for _, n := range l.order {
		if p := l.procs[n]; p != nil && !slices.ContainsFunc(s.Procs, func(r ProcRecord) bool { return r.Name == n }) {
			s.Procs = append(s.Procs, p.record())
			s.Sockets = append(s.Sockets, l.SocketFile(n))
		}
	}
	l.savedState = true
	return writeState(l.dir, s)
}

// Down tears the lab down (procLab's Down: processes, web server,
// namespaces, a temporary directory), then removes the /etc/netns
// directories SetHosts made and the state file SaveState wrote.
func (l *SixToFourLab) Down() error {
	err := l.procLab.Down()
	l.mu.Lock()
	dirs, saved := l.etcDirs, l.savedState
	l.etcDirs, l.savedState = nil, false
	l.mu.Unlock()
	var errs []error
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("6to4 lab: remove %s: %w", d, err))
		}
	}
	if saved {
		if err := os.Remove(filepath.Join(l.dir, StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("6to4 lab: remove state: %w", err))
		}
	}
	return errors.Join(append([]error{err}, errs...)...)
}
