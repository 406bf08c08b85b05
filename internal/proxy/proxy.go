// Package proxy takes the IP-HTTPS client through HTTP proxies: the CONNECT
// tunnel of [MS-IPHTTPS] 3.1.5.1 (draft-luotonen-web-proxy-tunneling), with
// Basic proxy authentication; the choice of proxy from the configuration or
// the usual HTTPS_PROXY / NO_PROXY environment; and a cache of the proxy that
// last worked, tried first (the Linux form of Windows' ProxyMgr cache).
package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/iphttps/iphttps/internal/winerr"
)

// Direct is the name of "no proxy" in configuration and status.
const Direct = "direct"

// Proxy is one HTTP proxy.
type Proxy struct {
	URL      *url.URL // scheme http, host:port; no credentials
	User     string
	Password string
}

// String is the proxy's URL without credentials.
func (p Proxy) String() string {
	if p.URL == nil {
		return Direct
	}
	return p.URL.Scheme + "://" + p.URL.Host
}

// Parse reads a proxy URL ("http://[user:pass@]host[:port]"; port 80 by
// default, 8080 is not assumed).
func Parse(raw string) (Proxy, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Proxy{}, fmt.Errorf("proxy URL %q cannot be parsed", Redact(raw))
	}
	if u.Scheme != "http" {
		return Proxy{}, fmt.Errorf("proxy %q: only http:// proxies are supported (the tunnel itself is TLS end to end)", u.Redacted())
	}
	if u.Hostname() == "" {
		return Proxy{}, fmt.Errorf("proxy %q has no host", u.Redacted())
	}
	p := Proxy{}
	if u.User != nil {
		p.User = u.User.Username()
		p.Password, _ = u.User.Password()
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	p.URL = &url.URL{Scheme: "http", Host: host}
	return p, nil
}

// Redact hides the password in a proxy URL for logs and output.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			return raw[:i+3] + "***" + raw[at:]
		}
		return "***" + raw[at:]
	}
	return raw
}

// ReadCredentials reads "user:password" from the first line of path.
func ReadCredentials(path string) (user, password string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("proxy credentials: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	user, password, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
	if !ok || user == "" {
		return "", "", fmt.Errorf("proxy credentials %s: want one line user:password", path)
	}
	return user, password, nil
}

// Config says how the client reaches the server.
type Config struct {
	// Explicit is the configured proxy: "" to follow the PAC script or the
	// environment, Direct for none, or a proxy URL.
	Explicit string
	// PAC, when set and Explicit is "", chooses the proxies.
	PAC *PACSource
	// User and Password authenticate to the proxy (they override credentials
	// in the proxy URL).
	User, Password string
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Cache remembers the proxy that last worked; nil for none.
	Cache *Cache
}

// Route is one way to the server, in the order to try them.
type Route struct {
	Proxy  Proxy  // URL nil: direct
	Source string // "configuration", "environment", "cache", or "" for direct
}

// Routes returns the ways to reach target (host:port) in order: the cached
// proxy first when the configuration calls for a proxy, then the proxies
// the configuration, the PAC script or the environment names; or direct.
func (c Config) Routes(ctx context.Context, target string) ([]Route, error) {
	configured, source, err := c.configured(ctx, target)
	if err != nil {
		return nil, err
	}
	var routes []Route
	usesProxy := false
	for _, p := range configured {
		if p.URL != nil {
			usesProxy = true
			if c.User != "" {
				p.User, p.Password = c.User, c.Password
			}
		}
		routes = append(routes, Route{Proxy: p, Source: source})
	}
	if !usesProxy || c.Cache == nil {
		return routes, nil
	}
	cached, ok := c.Cache.Load(target)
	if !ok {
		return routes, nil
	}
	for _, r := range routes {
		if r.Proxy.String() == cached {
			return routes, nil // already among them, in its place
		}
	}
	cp, err := Parse(cached)
	if err != nil {
		return routes, nil
	}
	// Only credentials configured for any proxy go to the cached one; those
	// of another proxy's URL never do.
	cp.User, cp.Password = c.User, c.Password
	return append([]Route{{Proxy: cp, Source: "cache"}}, routes...), nil
}

// configured returns what the configuration names for target, without the cache.
func (c Config) configured(ctx context.Context, target string) ([]Proxy, string, error) {
	switch {
	case c.Explicit == Direct:
		return []Proxy{{}}, "", nil
	case c.Explicit != "":
		p, err := Parse(c.Explicit)
		return []Proxy{p}, "configuration", err
	case c.PAC != nil:
		pac, err := c.PAC.Get(ctx)
		if err != nil {
			return nil, "", err
		}
		host, port, _ := net.SplitHostPort(target)
		u := "https://" + target + "/"
		if port == "443" {
			u = "https://" + host + "/" // as browsers pass it: no default port
		}
		ps, err := pac.FindProxy(ctx, u, host)
		return ps, "pac", err
	}
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	env := httpproxy.Config{
		HTTPSProxy: first(getenv("HTTPS_PROXY"), getenv("https_proxy")),
		NoProxy:    first(getenv("NO_PROXY"), getenv("no_proxy")),
	}
	u, err := env.ProxyFunc()(&url.URL{Scheme: "https", Host: target})
	if err != nil {
		return nil, "", fmt.Errorf("HTTPS_PROXY: %w", err)
	}
	if u == nil {
		return []Proxy{{}}, "", nil
	}
	p, err := Parse(u.String())
	if err != nil {
		return nil, "", fmt.Errorf("HTTPS_PROXY: %w", err)
	}
	return []Proxy{p}, "environment", nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Connect opens a TCP connection to target (host:port) through p, or
// directly when p has no URL. Failures carry the code Windows reports:
// 0x2AF9 when the proxy cannot be reached, 0x2AFC when it refuses the tunnel
// (403, 407 and other answers).
func Connect(ctx context.Context, d *net.Dialer, p Proxy, target string) (net.Conn, error) {
	if p.URL == nil {
		conn, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", target, err)
		}
		return conn, nil
	}
	conn, err := d.DialContext(ctx, "tcp", p.URL.Host)
	if err != nil {
		return nil, winerr.New(winerr.HostNotFound, fmt.Errorf("proxy %s cannot be reached: %w", p, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	// fail closes the connection: after a refusal nothing more is read from
	// it (a 407 page can be long, and NTLM-less keep-alive is useless here).
	fail := func(err error) (net.Conn, error) {
		conn.Close()
		return nil, err
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: http.Header{},
	}
	if p.User != "" {
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(p.User+":"+p.Password)))
	}
	if err := req.Write(conn); err != nil {
		return fail(winerr.New(winerr.HostNotFound, fmt.Errorf("proxy %s: send CONNECT: %w", p, err)))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(winerr.New(winerr.NoData, fmt.Errorf("proxy %s: no answer to CONNECT %s: %w", p, target, err)))
	}
	if resp.StatusCode/100 != 2 {
		return fail(winerr.New(winerr.NoData, refusal(p, target, resp)))
	}
	if !stop() {
		// ctx ended just now: its deadline is already set on conn.
		return fail(fmt.Errorf("proxy %s: CONNECT %s: %w", p, target, ctx.Err()))
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		// The proxy sent bytes after its answer: keep them.
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

func refusal(p Proxy, target string, resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusProxyAuthRequired:
		schemes := strings.Join(resp.Header.Values("Proxy-Authenticate"), ", ")
		if p.User == "" {
			return fmt.Errorf("proxy %s requires authentication (%s; it offers %s): give credentials with --proxy-credentials FILE", p, resp.Status, schemes)
		}
		return fmt.Errorf("proxy %s rejected the credentials of user %q (%s; it offers %s)", p, p.User, resp.Status, schemes)
	case http.StatusForbidden:
		return fmt.Errorf("proxy %s refused CONNECT to %s (%s): its policy forbids tunnels to the IP-HTTPS server; ask for %s to be allowed", p, target, resp.Status, target)
	}
	return fmt.Errorf("proxy %s answered CONNECT %s with %s", p, target, resp.Status)
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
