package iphttps

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/dnsquery"
	"github.com/iphttps/iphttps/internal/netcfg"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/winerr"
)

// The client's TCP socket.
const (
	keepAlive    = 30 * time.Second
	writeTimeout = 30 * time.Second // a server that reads nothing for this long is given up
	// notSentLowat bounds the unsent bytes in the kernel's socket buffer
	// (TCP_NOTSENT_LOWAT), keeping the queue in front of the tunnel shallow.
	notSentLowat = 128 << 10
)

// DialOptions say how Dial reaches the server.
type DialOptions struct {
	Target Target
	Proxy  proxy.Config
	// Dialer opens the TCP connections (to the server, to proxies); nil: a
	// net.Dialer with no settings. Connect gives its sockets the client's
	// settings.
	Dialer *net.Dialer
	// Timeout bounds each route's attempt; 0: ctx alone.
	Timeout time.Duration
	// Log is told when a route fails and the next is tried; nil: nobody.
	Log *slog.Logger
}

// Dial is the first phase: it reaches the server through each route the
// proxy settings give (the proxy that worked last time first), in turn,
// until one works, and returns the connection and the route it took. As on
// Windows, a server name that does not resolve on a direct route is told
// apart: 0x2af9 when the name does not exist, 0x2afc when it has no address.
func Dial(ctx context.Context, o DialOptions, tr *Trace) (net.Conn, proxy.Route, error) {
	target := o.Target.Addr()
	routes, err := o.Proxy.Routes(ctx, target)
	if err != nil {
		return nil, proxy.Route{}, winerr.New(winerr.HostNotFound, err)
	}
	if len(routes) == 0 {
		return nil, proxy.Route{}, winerr.Errorf(winerr.HostNotFound, "the proxy settings give no way to %s", target)
	}
	var rt proxy.Route
	for i := range routes {
		rt = routes[i]
		actx, cancel := within(ctx, o.Timeout)
		var conn net.Conn
		conn, err = Connect(actx, o.Dialer, rt, target, tr)
		cancel()
		if err == nil {
			return conn, rt, nil
		}
		if i < len(routes)-1 && o.Log != nil {
			o.Log.Info("cannot reach the server this way; trying the next", "proxy", rt.Proxy.String(), "source", rt.Source, "err", err)
		}
	}
	return nil, rt, explainDNS(ctx, o.Target.Host, rt, err)
}

// within is ctx bounded by d, if d is set.
func within(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// Connect opens one TCP connection to target (host:port) through rt: a
// proxy's CONNECT tunnel, or directly. The socket is the client's:
// keepalive, TCP_USER_TIMEOUT (a server that acknowledges nothing for 30 s
// is given up), TCP_NOTSENT_LOWAT, no Nagle delay.
func Connect(ctx context.Context, d *net.Dialer, rt proxy.Route, target string, tr *Trace) (net.Conn, error) {
	tr = tr.hooks()
	if h := tr.RouteStart; h != nil {
		h(rt)
	}
	conn, err := proxy.Connect(tr.dialContext(ctx), socket(d), rt.Proxy, target)
	if h := tr.RouteDone; h != nil {
		h(rt, err)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return conn, nil
}

// socket is a copy of d (nil: a plain dialer) that gives its sockets the
// client's settings after d's own Control, if any.
func socket(d *net.Dialer) *net.Dialer {
	var s net.Dialer
	if d != nil {
		s = *d
	}
	if s.KeepAlive == 0 {
		s.KeepAlive = keepAlive
	}
	control, controlCtx := s.Control, s.ControlContext
	s.Control = nil
	s.ControlContext = func(ctx context.Context, network, address string, rc syscall.RawConn) error {
		var err error
		switch {
		case controlCtx != nil:
			err = controlCtx(ctx, network, address, rc)
		case control != nil:
			err = control(network, address, rc)
		}
		if err != nil {
			return err
		}
		if err := netcfg.SetTCPUserTimeout(rc, writeTimeout); err != nil {
			return err
		}
		return netcfg.SetNotSentLowat(rc, notSentLowat)
	}
	return &s
}

// explainDNS tells the two "no such host" answers apart, as Windows does: a
// name that does not exist is 0x2af9, a name with no address record is
// 0x2afc (Go's resolver reports both as not found).
func explainDNS(ctx context.Context, host string, rt proxy.Route, err error) error {
	var dnsErr *net.DNSError
	if rt.Proxy.URL != nil || !errors.As(err, &dnsErr) || !dnsErr.IsNotFound || dnsErr.Name != host {
		return err
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if dnsquery.NoAddress(qctx, dnsErr.Name) {
		return winerr.Errorf(winerr.NoData, "the name %s exists in the DNS but has no address record (A or AAAA): %w", dnsErr.Name, err)
	}
	return winerr.Errorf(winerr.HostNotFound, "the name %s does not exist in the DNS (NXDOMAIN): %w", dnsErr.Name, err)
}
