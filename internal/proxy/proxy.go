// Package proxy takes the IP-HTTPS client through HTTP proxies: the CONNECT
// tunnel of [MS-IPHTTPS] 3.1.5.1 (draft-luotonen-web-proxy-tunneling), with
// Basic and Negotiate (Kerberos) proxy authentication; the choice of proxy
// from the configuration or the usual HTTPS_PROXY / NO_PROXY environment;
// and a cache of the proxy that last worked, tried first (the Linux form of
// Windows' ProxyMgr cache).
package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
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
	// Auth is how to answer the proxy's challenge: AuthAuto ("" too),
	// AuthBasic or AuthNegotiate.
	Auth string
	// Kerberos, when set, lets the client answer Negotiate.
	Kerberos *Kerberos
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
	// Auth and Kerberos go to every proxy (see Proxy).
	Auth     string
	Kerberos *Kerberos
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
			p.Auth, p.Kerberos = c.Auth, c.Kerberos
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
	cp.Auth, cp.Kerberos = c.Auth, c.Kerberos
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
// directly when p has no URL. Authentication follows the proxy's challenge:
// the first CONNECT carries no credentials; on a 407 the client answers
// Negotiate or Basic as p.Auth allows and its credentials permit (on the
// same connection when the proxy keeps it). Failures carry the code Windows
// reports: 0x2AF9 when the proxy cannot be reached,
// 0x2AFC when it refuses the tunnel (403, 407 and other answers).
func Connect(ctx context.Context, d *net.Dialer, p Proxy, target string) (net.Conn, error) {
	if p.URL == nil {
		conn, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", target, err)
		}
		return conn, nil
	}
	t := &tunnel{p: p, target: target, d: d, stopDeadline: func() bool { return true }}
	defer func() { t.stopDeadline() }()
	if err := t.dial(ctx); err != nil {
		return nil, err
	}
	resp, err := t.connect("")
	if err == nil && resp.StatusCode == http.StatusProxyAuthRequired {
		resp, err = t.authenticate(ctx, resp)
	}
	if err != nil {
		t.conn.Close()
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		t.conn.Close()
		return nil, winerr.New(winerr.NoData, t.refusal(resp))
	}
	if !t.stopDeadline() {
		// ctx ended just now: its deadline is already set on the connection.
		t.conn.Close()
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %w", p, target, ctx.Err())
	}
	t.conn.SetDeadline(time.Time{})
	if t.br.Buffered() > 0 {
		// The proxy sent bytes after its answer: keep them.
		return &bufferedConn{Conn: t.conn, r: t.br}, nil
	}
	return t.conn, nil
}

// tunnel is one CONNECT exchange, possibly over several requests (and, when
// the proxy closes after a 407, several connections).
type tunnel struct {
	p            Proxy
	target       string
	d            *net.Dialer
	conn         net.Conn
	br           *bufio.Reader
	stopDeadline func() bool
	// sent describes the credentials sent ("" for none), why what kept the
	// client from answering a challenge.
	sent, why string
}

func (t *tunnel) dial(ctx context.Context) error {
	if t.conn != nil {
		t.conn.Close()
		t.stopDeadline()
	}
	conn, err := t.d.DialContext(ctx, "tcp", t.p.URL.Host)
	if err != nil {
		t.stopDeadline = func() bool { return true }
		return winerr.New(winerr.HostNotFound, fmt.Errorf("proxy %s cannot be reached: %w", t.p, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	t.stopDeadline = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	t.conn, t.br = conn, bufio.NewReader(conn)
	return nil
}

// connect sends CONNECT with the given Proxy-Authorization (none if empty)
// and reads the answer's head.
func (t *tunnel) connect(auth string) (*http.Response, error) {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: t.target},
		Host:   t.target,
		Header: http.Header{},
	}
	if auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	if err := req.Write(t.conn); err != nil {
		return nil, winerr.New(winerr.HostNotFound, fmt.Errorf("proxy %s: send CONNECT: %w", t.p, err))
	}
	resp, err := http.ReadResponse(t.br, req)
	if err != nil {
		return nil, winerr.New(winerr.NoData, fmt.Errorf("proxy %s: no answer to CONNECT %s: %w", t.p, t.target, err))
	}
	return resp, nil
}

// maxChallengeBody bounds what is read of a 407 page to keep the connection.
const maxChallengeBody = 64 << 10

// again prepares to send the next request after resp: on the same
// connection when the proxy keeps it and its body was read, else on a new one.
func (t *tunnel) again(ctx context.Context, resp *http.Response) error {
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxChallengeBody+1))
	resp.Body.Close()
	if err == nil && n <= maxChallengeBody && !resp.Close {
		return nil
	}
	return t.dial(ctx)
}

// refusal describes the proxy's final answer resp to CONNECT.
func (t *tunnel) refusal(resp *http.Response) error {
	p, target := t.p, t.target
	switch resp.StatusCode {
	case http.StatusProxyAuthRequired:
		schemes := strings.Join(resp.Header.Values("Proxy-Authenticate"), ", ")
		if t.sent == "" {
			return fmt.Errorf("proxy %s requires authentication (%s; it offers %s): %s", p, resp.Status, schemes, t.why)
		}
		return fmt.Errorf("proxy %s rejected %s (%s; it offers %s)", p, t.sent, resp.Status, schemes)
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
