// Package control is the local API between a running iphttps daemon and the
// CLI: HTTP over a Unix socket under /run/iphttps, readable by root and the
// socket's group only.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/status"
)

// DefaultDir is where daemons run by root put their sockets unless told
// otherwise.
const DefaultDir = "/run/iphttps"

// Dir is where this process's daemons put their sockets: DefaultDir for
// root; for other users (the rootless client) $XDG_RUNTIME_DIR/iphttps, or
// a directory of their own under the temporary directory.
func Dir() string {
	if os.Geteuid() == 0 {
		return DefaultDir
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "iphttps")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("iphttps-%d", os.Geteuid()))
}

// Dirs lists the directories where sockets of running daemons may be found,
// this process's own first.
func Dirs() []string {
	if d := Dir(); d != DefaultDir {
		return []string{d, DefaultDir}
	}
	return []string{DefaultDir}
}

// AllSockets lists the sockets in every directory of Dirs.
func AllSockets() ([]string, error) {
	var out []string
	for _, d := range Dirs() {
		found, err := Sockets(d)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// SocketPath is the default socket of a daemon of role on device.
func SocketPath(role, device string) string {
	return filepath.Join(Dir(), role+"-"+device+".sock")
}

// Listen creates the socket at path (mode 0660, directory 0750). A stale
// socket nobody answers on is replaced; a live one is an error, so two
// daemons never share a socket.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s is in use by another iphttps daemon", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket permissions: %w", err)
	}
	return ln, nil
}

// Serve answers GET /v1/status with get() as JSON until ctx ends, then closes
// ln and removes the socket file.
func Serve(ctx context.Context, ln net.Listener, get func() status.Interface) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(get())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	path := ln.Addr().String()
	err := srv.Serve(ln)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Fetch reads the status of the daemon listening on path.
func Fetch(ctx context.Context, path string) (status.Interface, error) {
	var s status.Interface
	// One request per connection: pollers (the lab, scripts) must not leave
	// idle connections open on either side.
	hc := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://iphttps/v1/status", nil)
	if err != nil {
		return s, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("daemon at %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("daemon at %s answered %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("daemon at %s: bad status: %w", path, err)
	}
	return s, nil
}

// Sockets lists the sockets in dir, sorted.
func Sockets(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sock") && e.Type()&os.ModeSocket != 0 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}
