// Package cleanup finds and removes what iphttps left behind on this
// machine: devices it created whose process is gone, control sockets nobody
// answers on, the certificate of a --self-signed server that no longer runs,
// and the client's proxy cache. It is the Linux form of the knowledge base's
// clean-up (the ghost IP-HTTPS adapter in Device Manager, the IP Helper
// registry keys and the ProxyMgr cache). It never touches what iphttps did
// not create: a device without iphttps' mark is reported, not removed.
package cleanup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/netcfg"
)

// Actions taken on a finding.
const (
	Removed     = "removed"
	WouldRemove = "would remove" // dry run
	Kept        = "kept"
	Failed      = "failed"
)

// Kinds of findings.
const (
	KindDevice      = "device"
	KindSocket      = "control socket"
	KindCertificate = "certificate"
	KindProxyCache  = "proxy cache"
)

// Finding is one thing looked at, what was done with it and why.
type Finding struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Action string `json:"action"`
	Reason string `json:"reason"`
}

// Options says where to look.
type Options struct {
	DryRun bool
	// Devices are names to report on when they exist without iphttps' mark
	// (the default interface names, and --interface).
	Devices []string
	// SocketDirs hold control sockets (and a --self-signed server's
	// certificate).
	SocketDirs []string
	// ProxyCache is the client's proxy cache file; empty: left alone.
	ProxyCache string
	// Alive reports whether process pid is a running iphttps; nil: a check
	// of /proc.
	Alive func(pid int) bool
}

// Run looks and, unless DryRun, removes. Every finding is returned,
// including the ones kept; the error joins the removals that failed.
func Run(ctx context.Context, o Options) ([]Finding, error) {
	if o.Alive == nil {
		o.Alive = IphttpsRunning
	}
	var (
		out  []Finding
		errs []error
	)
	remove := func(kind, name, why string, do func() error) {
		f := Finding{Kind: kind, Name: name, Action: WouldRemove, Reason: why}
		if !o.DryRun {
			if err := do(); err != nil {
				f.Action, f.Reason = Failed, fmt.Sprintf("%s; removing it failed: %v", why, err)
				errs = append(errs, err)
			} else {
				f.Action = Removed
			}
		}
		out = append(out, f)
	}
	keep := func(kind, name, why string) {
		out = append(out, Finding{Kind: kind, Name: name, Action: Kept, Reason: why})
	}

	// Devices.
	marked, err := netcfg.MarkedLinks()
	if err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for _, m := range marked {
		seen[m.Name] = true
		if o.Alive(m.PID) {
			keep(KindDevice, m.Name, fmt.Sprintf("in use by the running iphttps process %d (stop it first)", m.PID))
			continue
		}
		remove(KindDevice, m.Name, fmt.Sprintf("created by iphttps process %d, which is gone", m.PID), func() error { return netcfg.DeleteLink(m.Name) })
	}
	for _, name := range o.Devices {
		if seen[name] {
			continue
		}
		seen[name] = true
		if ok, alias := netcfg.LinkExists(name); ok {
			why := "exists but was not created by iphttps (no iphttps mark"
			if alias != "" {
				why += fmt.Sprintf("; alias %q", alias)
			}
			keep(KindDevice, name, why+"): if it is stale, remove it with `ip link del "+name+"`, or give the client another --interface")
		}
	}

	// Control sockets, and the certificate of a --self-signed server.
	serverRunning := map[string]bool{}
	var certs []string
	for _, dir := range o.SocketDirs {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".sock") && e.Type()&os.ModeSocket != 0:
				if answers(ctx, p) {
					keep(KindSocket, p, "its daemon is running")
					if strings.HasPrefix(e.Name(), "server-") {
						serverRunning[dir] = true
					}
					continue
				}
				remove(KindSocket, p, "no daemon answers on it (left by a daemon that was killed)", func() error { return os.Remove(p) })
			case strings.HasPrefix(e.Name(), "self-signed-") && strings.HasSuffix(e.Name(), ".pem"):
				certs = append(certs, p)
			}
		}
	}
	for _, p := range certs {
		if serverRunning[filepath.Dir(p)] {
			keep(KindCertificate, p, "an iphttps server is running and may be using it")
			continue
		}
		remove(KindCertificate, p, "made by a --self-signed server that no longer runs (a new one is made at the next start)", func() error { return os.Remove(p) })
	}

	// The proxy cache.
	if o.ProxyCache != "" {
		if _, err := os.Stat(o.ProxyCache); err == nil {
			remove(KindProxyCache, o.ProxyCache, "the proxy the client last used (tried first at its next start; the counterpart of the ProxyMgr cache)", func() error { return os.Remove(o.ProxyCache) })
		}
	}
	return out, errors.Join(errs...)
}

// answers reports whether something accepts connections on the socket.
func answers(ctx context.Context, path string) bool {
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// IphttpsRunning reports whether pid is a live process running an iphttps
// binary (so a reused PID of another program does not count).
func IphttpsRunning(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		// Not ours to read (another user's process): assume it is alive.
		return errors.Is(err, os.ErrPermission)
	}
	return strings.HasPrefix(filepath.Base(strings.TrimSuffix(exe, " (deleted)")), "iphttps")
}
