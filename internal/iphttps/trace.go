package iphttps

import (
	"context"
	"crypto/tls"
	"net/http/httptrace"
	"net/netip"

	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/wire"
)

// Trace holds hooks the phases of an IP-HTTPS connection call as they go,
// in the style of net/http/httptrace. `iphttps diagnose` and the load
// generator run the client's own phases and learn through these what
// happened inside them (each attempt, the raw errors, each answer, the
// timings) instead of running a copy of the handshake. The phases' return
// values are the client's verdict, with the code Windows would report; the
// hooks see the events as they came.
//
// Any hook may be nil, and so may the *Trace. Hooks run on the goroutine
// running the phase, except ConnectStart, ConnectDone and DNSDone, which
// net.Dialer may call from goroutines of its own while it races IPv6 and
// IPv4 addresses.
type Trace struct {
	// RouteStart is called before each attempt to reach the server through
	// a route of the proxy settings (a proxy, or direct); RouteDone after
	// it, with its error.
	RouteStart func(rt proxy.Route)
	RouteDone  func(rt proxy.Route, err error)
	// DNSDone is called when the name being dialed (the server's on a
	// direct route, the proxy's otherwise) has resolved, or failed to.
	DNSDone func(addrs []netip.Addr, err error)
	// ConnectStart and ConnectDone bracket each TCP connection attempt to
	// addr (host:port, the server or the proxy); err is the net package's.
	ConnectStart func(addr string)
	ConnectDone  func(addr string, err error)

	// CertificateRequested is called when the server asks for a client
	// certificate during the TLS handshake.
	CertificateRequested func()
	// TLSHandshakeDone is called after the TLS handshake with the
	// connection's state and crypto/tls's error.
	TLSHandshakeDone func(cs tls.ConnectionState, err error)

	// WroteRequest is called once the IP-HTTPS request is written, with the
	// error (wrapping wire.ErrRequest) when that failed.
	WroteRequest func(err error)
	// GotResponse is called with the head of the server's answer, or the
	// error (wrapping wire.ErrResponse) that kept it from being read.
	GotResponse func(resp *wire.Response, err error)

	// WroteRouterSolicitation is called once the router solicitation is
	// written, with the write's error.
	WroteRouterSolicitation func(err error)
	// GotPacket is called for every packet read while a router
	// advertisement is awaited.
	GotPacket func(pkt []byte)
	// GotRouterAdvertisement is called for every router advertisement read
	// while one is awaited, before it is judged; err tells that it could not
	// be parsed (a.RA is then nil).
	GotRouterAdvertisement func(a Advertisement, err error)
}

// hooks returns t, or hooks that are all nil: phases then test and call a
// hook in one step.
func (t *Trace) hooks() *Trace {
	if t == nil {
		return &Trace{}
	}
	return t
}

// dialContext hands the connection hooks to net.Dialer, which reports
// resolution and each connection attempt to an httptrace in its context.
func (t *Trace) dialContext(ctx context.Context) context.Context {
	if t.DNSDone == nil && t.ConnectStart == nil && t.ConnectDone == nil {
		return ctx
	}
	ct := &httptrace.ClientTrace{}
	if h := t.DNSDone; h != nil {
		ct.DNSDone = func(info httptrace.DNSDoneInfo) {
			addrs := make([]netip.Addr, 0, len(info.Addrs))
			for _, a := range info.Addrs {
				if ip, ok := netip.AddrFromSlice(a.IP); ok {
					addrs = append(addrs, ip.Unmap())
				}
			}
			h(addrs, info.Err)
		}
	}
	if h := t.ConnectStart; h != nil {
		ct.ConnectStart = func(_, addr string) { h(addr) }
	}
	if h := t.ConnectDone; h != nil {
		ct.ConnectDone = func(_, addr string, err error) { h(addr, err) }
	}
	return httptrace.WithClientTrace(ctx, ct)
}
