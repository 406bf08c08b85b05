package userspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"time"

	"tailscale.com/net/proxymux"
	"tailscale.com/net/socks5"
)

// Proxies are the local listeners through which applications reach the
// tunnel: SOCKS5 (RFC 1928, CONNECT and UDP ASSOCIATE, no authentication) and
// optionally an HTTP proxy (CONNECT, and plain http:// requests). Both only
// listen on loopback addresses: anyone who can reach them can reach the
// network behind the server.
type Proxies struct {
	socks, http net.Listener
	dial        func(ctx context.Context, network, address string) (net.Conn, error)
	log         *slog.Logger
}

// Listen opens the listeners: socksAddr and httpAddr are host:port on a
// loopback address; either may be empty (not both); the same address for
// both serves both protocols on one port.
func Listen(socksAddr, httpAddr string, d *Dialer, log *slog.Logger) (*Proxies, error) {
	if socksAddr == "" && httpAddr == "" {
		return nil, errors.New("userspace mode needs a SOCKS5 or an HTTP proxy listener (--socks, --http-proxy)")
	}
	for _, a := range []string{socksAddr, httpAddr} {
		if a == "" {
			continue
		}
		if err := checkLoopback(a); err != nil {
			return nil, err
		}
	}
	p := &Proxies{dial: d.DialContext, log: log}
	if socksAddr == httpAddr {
		ln, err := net.Listen("tcp", socksAddr)
		if err != nil {
			return nil, fmt.Errorf("SOCKS5 and HTTP proxy listener: %w", err)
		}
		p.socks, p.http = proxymux.SplitSOCKSAndHTTP(ln)
		return p, nil
	}
	var err error
	if socksAddr != "" {
		if p.socks, err = net.Listen("tcp", socksAddr); err != nil {
			return nil, fmt.Errorf("SOCKS5 listener: %w", err)
		}
	}
	if httpAddr != "" {
		if p.http, err = net.Listen("tcp", httpAddr); err != nil {
			if p.socks != nil {
				p.socks.Close()
			}
			return nil, fmt.Errorf("HTTP proxy listener: %w", err)
		}
	}
	return p, nil
}

// checkLoopback refuses a listener address that is not on loopback.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("listener address %q: %w", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("listener address %q: only loopback addresses (127.0.0.1, ::1, localhost) are allowed: the listener carries connections into the network behind the server", hostport)
	}
	return nil
}

// Addrs lists the listening addresses, for status and logs.
func (p *Proxies) Addrs() []string {
	var out []string
	if p.socks != nil {
		out = append(out, "socks5://"+p.socks.Addr().String())
	}
	if p.http != nil {
		out = append(out, "http://"+p.http.Addr().String())
	}
	return out
}

// Serve answers on the listeners until ctx ends, then closes them.
func (p *Proxies) Serve(ctx context.Context) {
	var wg sync.WaitGroup
	if p.socks != nil {
		srv := &socks5.Server{
			Logf:   func(format string, args ...any) { p.log.Debug("socks5: " + fmt.Sprintf(format, args...)) },
			Dialer: p.dial,
		}
		wg.Go(func() { srv.Serve(p.socks) })
	}
	var hs *http.Server
	if p.http != nil {
		hs = &http.Server{
			Handler:           p.httpProxy(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		}
		wg.Go(func() { hs.Serve(p.http) })
	}
	<-ctx.Done()
	if p.socks != nil {
		p.socks.Close()
	}
	if hs != nil {
		hs.Close()
	}
	wg.Wait()
}

// httpProxy is an HTTP proxy: CONNECT host:port makes a tunnel; a request
// for an absolute http:// URL is forwarded.
func (p *Proxies) httpProxy() http.Handler {
	forward := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.Out.URL = r.In.URL },
		Transport: &http.Transport{
			DialContext:           p.dial,
			ResponseHeaderTimeout: time.Minute,
			IdleConnTimeout:       30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Debug("http proxy: forward failed", "url", r.URL.String(), "err", err)
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodConnect:
			p.connect(w, r)
		case r.URL.IsAbs() && r.URL.Scheme == "http":
			forward.ServeHTTP(w, r)
		default:
			http.Error(w, "this is an HTTP proxy: send CONNECT host:port or an absolute http:// URL", http.StatusBadRequest)
		}
	})
}

// connect answers CONNECT: 200 and then bytes both ways, or 502 with the
// reason the destination could not be reached.
func (p *Proxies) connect(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	dst, err := p.dial(ctx, "tcp", r.Host)
	cancel()
	if err != nil {
		p.log.Debug("http proxy: CONNECT failed", "to", r.Host, "err", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer dst.Close()
	src, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Debug("http proxy: hijack failed", "err", err)
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	defer src.Close()
	if _, err := src.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		// Bytes the client sent after its request head come first.
		if n := buf.Reader.Buffered(); n > 0 {
			b, _ := buf.Reader.Peek(n)
			dst.Write(b)
		}
		io.Copy(dst, src)
		closeWrite(dst)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(src, dst)
		closeWrite(src)
		done <- struct{}{}
	}()
	<-done
	<-done
}

// closeWrite half-closes c when it can, so the far side sees the end of the
// stream while answers still flow back.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
