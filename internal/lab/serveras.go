package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/status"
)

// ServerCaps are the only capabilities the server needs, as the systemd
// unit in contrib/systemd gives them: the TUN device, addresses, routes and
// the forwarding sysctl (CAP_NET_ADMIN), and port 443 (CAP_NET_BIND_SERVICE).
var ServerCaps = []string{"net_admin", "net_bind_service"}

// StartServerAs starts the server as an unprivileged user holding only the
// capabilities caps (ambient, so the daemon keeps them across exec, as
// systemd's AmbientCapabilities= does; the bounding set holds nothing else).
// The user gets a directory of its own in the lab directory with a copy of
// the binary, the server certificate and key and the client CA; its control
// socket lives there, and Status finds it. It waits for the control socket
// like StartServer and returns the directory.
func (l *Lab) StartServerAs(uid, gid int, caps []string, extra ...string) (string, error) {
	if uid == 0 {
		return "", errors.New("lab: StartServerAs is for unprivileged users (uid 0 given)")
	}
	setpriv, err := lookTool("setpriv")
	if err != nil {
		return "", fmt.Errorf("lab: %w (package util-linux)", err)
	}
	if err := os.Chmod(l.dir, 0o711); err != nil {
		return "", fmt.Errorf("lab directory: %w", err)
	}
	home := filepath.Join(l.dir, "server-user")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	files := map[string]os.FileMode{l.opts.Binary: 0o755, filepath.Join(l.dir, "server.pem"): 0o644,
		filepath.Join(l.dir, "server.key"): 0o600, l.CAFile(): 0o644}
	copies := map[string]string{}
	for src, mode := range files {
		dst := filepath.Join(home, filepath.Base(src))
		if err := copyFile(src, dst, mode); err != nil {
			return "", fmt.Errorf("lab: copy %s for the server user: %w", src, err)
		}
		copies[src] = dst
	}
	for _, p := range append([]string{home}, mapValues(copies)...) {
		if err := os.Chown(p, uid, gid); err != nil {
			return "", fmt.Errorf("lab: %w", err)
		}
	}
	capList := ""
	for i, c := range caps {
		if i > 0 {
			capList += ","
		}
		capList += "+" + c
	}
	sock := filepath.Join(home, "control.sock")
	argv := []string{setpriv, "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups",
		"--inh-caps=-all," + capList, "--ambient-caps=-all," + capList, "--bounding-set=-all," + capList, "--"}
	// The usual command line, with the user's copies and socket.
	for _, a := range l.ServerArgs() {
		if c, ok := copies[a]; ok {
			a = c
		} else if a == l.SocketFile("server") {
			a = sock
		}
		argv = append(argv, a)
	}
	argv = append(argv, extra...)
	l.mu.Lock()
	if l.sockets == nil {
		l.sockets = map[string]string{}
	}
	l.sockets["server"] = sock
	l.mu.Unlock()
	if err := l.startProc("server", l.NS(RoleEdge), argv...); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := l.WaitStatus(ctx, "server", func(status.Interface) bool { return true }); err != nil {
		return "", fmt.Errorf("server (uid %d, caps %v) did not come up: %w", uid, caps, err)
	}
	l.log.Info("server started as an unprivileged user", "uid", uid, "caps", caps, "pid", l.PID("server"))
	return home, nil
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// IssueClientCert writes a client certificate described by o, signed by ca
// (the lab CA when nil), as base.pem and base.key in the lab directory, for
// scenarios with a faulty client certificate.
func (l *Lab) IssueClientCert(base string, o pki.Options, ca *pki.Cert) (certFile, keyFile string, err error) {
	if ca == nil {
		ca = l.ca
	}
	c, err := pki.Client(ca, o)
	if err != nil {
		return "", "", fmt.Errorf("lab: client certificate %s: %w", base, err)
	}
	return c.WriteFiles(l.dir, base)
}

// CA is the lab's certificate authority (to issue CRLs in tests).
func (l *Lab) CA() *pki.Cert { return l.ca }
