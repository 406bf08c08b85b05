package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// StartClientAs starts client i (1-based) as an unprivileged user: setpriv
// gives it uid and gid, no supplementary groups and no capabilities at all,
// and execs it in place (the PID is the daemon's). The user cannot read the
// lab directory's files, so the client gets a directory of its own inside
// it (owned by the user) with a copy of the binary and of the CA
// certificate; its control socket and proxy cache live there too, and
// Status and the other socket users find it. extra is appended to the
// command line (for example "--userspace"). It returns that directory.
func (l *Lab) StartClientAs(i, uid, gid int, extra ...string) (string, error) {
	if i < 1 || i > l.opts.Clients {
		return "", fmt.Errorf("lab: no client %d (the lab has %d)", i, l.opts.Clients)
	}
	if l.opts.Binary == "" {
		return "", errors.New("lab: no iphttps binary configured (Options.Binary)")
	}
	if uid == 0 {
		return "", errors.New("lab: StartClientAs is for unprivileged users (uid 0 given)")
	}
	setpriv, err := lookTool("setpriv")
	if err != nil {
		return "", fmt.Errorf("lab: %w (package util-linux)", err)
	}
	name := ClientName(i)
	// The lab directory becomes traversable (not listable) so the user can
	// reach its own directory; the lab's keys stay mode 0600.
	if err := os.Chmod(l.dir, 0o711); err != nil {
		return "", fmt.Errorf("lab directory: %w", err)
	}
	home := filepath.Join(l.dir, name+"-user")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	bin := filepath.Join(home, "iphttps")
	if err := copyFile(l.opts.Binary, bin, 0o755); err != nil {
		return "", fmt.Errorf("lab: copy the binary for %s: %w", name, err)
	}
	ca := filepath.Join(home, "ca.pem")
	if err := copyFile(l.CAFile(), ca, 0o644); err != nil {
		return "", fmt.Errorf("lab: copy the CA for %s: %w", name, err)
	}
	for _, p := range []string{home, bin, ca} {
		if err := os.Chown(p, uid, gid); err != nil {
			return "", fmt.Errorf("lab: %w", err)
		}
	}
	sock := filepath.Join(home, "control.sock")
	argv := []string{setpriv, "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", "--",
		bin, "client", ServerURL,
		"--ca", ca,
		"--control-socket", sock,
		"--proxy-cache", filepath.Join(home, "proxy-cache.json"),
		"--log-level", l.opts.LogLevel,
	}
	argv = append(argv, l.opts.ClientArgs...)
	argv = append(argv, extra...)
	l.mu.Lock()
	if l.sockets == nil {
		l.sockets = map[string]string{}
	}
	l.sockets[name] = sock
	l.mu.Unlock()
	if err := l.startProc(name, l.ClientNS(i), argv...); err != nil {
		return "", err
	}
	l.log.Info("client started as an unprivileged user", "client", name, "uid", uid, "pid", l.PID(name))
	return home, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
