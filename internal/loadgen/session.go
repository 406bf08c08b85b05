// Package loadgen runs many IP-HTTPS client sessions in one process, without a
// TUN device, opening each with the client's own phases (package iphttps):
// TCP, TLS, the endless POST, the 200 answer, a Router Solicitation answered
// by a Router Advertisement; then an address formed from the advertised
// prefix and registered with the server by duplicate address detection. A session then holds the connection idle or
// sends a steady trickle of ICMPv6 echo requests through the tunnel and
// matches the replies.
//
// It is the client side of the scale benchmark (iphttps-bench scale), which
// runs it as a separate process in its own network namespace.
package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/wire"
)

// Defaults of Config.
const (
	DefaultPath         = "/IPHTTPS"
	DefaultTimeout      = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// Handshake phases, as Error.Phase names them.
const (
	PhaseConnect  = "connect"
	PhaseTLS      = "tls"
	PhaseRequest  = "request"
	PhaseResponse = "response"
	PhaseRA       = "router advertisement"
	PhaseDAD      = "duplicate address detection"
)

// Config says how sessions reach the server.
type Config struct {
	// Server is the server's TCP address.
	Server netip.AddrPort
	// Host is the Host header and the TLS server name; default: the
	// server's IP address.
	Host string
	// Path is the request path; default /IPHTTPS.
	Path string
	// Roots are the CAs the server certificate must chain to, for example
	// a pool holding the server's self-signed certificate. Required.
	Roots *x509.CertPool
	// Sources are local addresses to connect from, used in turn (session i
	// uses Sources[i % len]); none lets the kernel choose.
	Sources []netip.Addr
	// Timeout bounds one session's handshake: TCP connect, TLS, POST, the
	// 200 head, and the Router Solicitation answered. Default 10s.
	Timeout time.Duration
	// WriteTimeout bounds each write after the handshake. Default 10s.
	WriteTimeout time.Duration
	// KeyExchange is the TLS key exchange the sessions offer:
	// KeyExchangeWindows (the default) or KeyExchangeGo.
	KeyExchange string
}

// Key exchanges a load generator can offer in TLS.
const (
	// KeyExchangeWindows offers X25519 and P-256, the groups the IP-HTTPS
	// client of Windows offers (SChannel's defaults).
	KeyExchangeWindows = "windows"
	// KeyExchangeGo offers what Go's crypto/tls offers by default, which
	// puts the post-quantum hybrid X25519MLKEM768 first (a Linux iphttps
	// client).
	KeyExchangeGo = "go"
)

// Dialer opens sessions to one server. It is safe for concurrent use.
type Dialer struct {
	cfg Config
	tls *tls.Config
}

// NewDialer checks cfg and applies its defaults.
func NewDialer(cfg Config) (*Dialer, error) {
	if !cfg.Server.IsValid() {
		return nil, errors.New("loadgen: no server address")
	}
	if cfg.Roots == nil {
		return nil, errors.New("loadgen: no trusted CA for the server certificate")
	}
	if cfg.Host == "" {
		cfg.Host = cfg.Server.Addr().String()
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	for _, s := range cfg.Sources {
		if !s.IsValid() || s.Is4() != cfg.Server.Addr().Is4() {
			return nil, fmt.Errorf("loadgen: source address %v does not match the server's family (%v)", s, cfg.Server.Addr())
		}
	}
	// The client's TLS configuration with the web's name rule (the server
	// is often named by its address here). No session cache: every session
	// makes a full handshake, as a client connecting for the first time
	// does.
	tc := iphttps.TLSConfig(cfg.Host, cfg.Roots, iphttps.NameRuleStandard, nil, nil)
	switch cfg.KeyExchange {
	case "", KeyExchangeWindows:
		tc.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	case KeyExchangeGo:
	default:
		return nil, fmt.Errorf("loadgen: key exchange %q: want %s or %s", cfg.KeyExchange, KeyExchangeWindows, KeyExchangeGo)
	}
	return &Dialer{cfg: cfg, tls: tc}, nil
}

// Error is a failed handshake: the phase it failed in and why.
type Error struct {
	Phase string
	Err   error
}

func (e *Error) Error() string { return "loadgen: " + e.Phase + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Timing says when each handshake step completed, counted from the start of
// the dial (each includes the steps before it).
type Timing struct {
	Connect  time.Duration // TCP connected
	TLS      time.Duration // TLS handshake done
	Response time.Duration // 200 head read
	RA       time.Duration // Router Advertisement answering the solicitation parsed
}

// Session is one client connection that completed the IP-HTTPS handshake.
type Session struct {
	// ID is the number the session was dialled with.
	ID int
	// LinkLocal is the random link-local address the solicitation came from.
	LinkLocal netip.Addr
	// Prefix is the /64 the server advertised.
	Prefix netip.Prefix
	// Addr is the session's address: Prefix plus a random interface
	// identifier, registered with the server by duplicate address detection.
	Addr netip.Addr
	// Timing is when each handshake step completed.
	Timing Timing
	// TLS names the negotiated version and key exchange.
	TLS string
	// UnsolicitedRAs counts advertisements to ff02::1 seen during the
	// handshake (the server advertises on connect).
	UnsolicitedRAs int

	conn         net.Conn
	r            *wire.Reader
	writeTimeout time.Duration
	wmu          sync.Mutex
	closeOnce    sync.Once
}

// Dial opens session id with the client's phases (package iphttps): TCP
// (from the id's source address), TLS, the POST and its 200 answer, a
// Router Solicitation from a random link-local address and the Router
// Advertisement answering it (sent to that address), then an address from
// the advertised prefix and its duplicate address detection probe, with
// which the server registers the address for the session, as with the
// client. The probe's answer is not awaited: the interface identifier is
// random, and packets sent afterwards on the same connection reach the
// server after the probe. Failures are *Error.
func (d *Dialer) Dial(ctx context.Context, id int) (_ *Session, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	s := &Session{ID: id, writeTimeout: d.cfg.WriteTimeout, LinkLocal: iphttps.LinkLocal(iphttps.RandomIID())}
	// The timings come from the trace: each step's end, as it happened.
	tr := &iphttps.Trace{
		ConnectDone: func(_ string, err error) {
			if err == nil {
				s.Timing.Connect = time.Since(start)
			}
		},
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			if err == nil {
				s.Timing.TLS = time.Since(start)
				s.TLS = tls.VersionName(cs.Version) + " " + cs.CurveID.String()
			}
		},
		GotResponse: func(_ *wire.Response, err error) {
			if err == nil {
				s.Timing.Response = time.Since(start)
			}
		},
		GotRouterAdvertisement: func(a iphttps.Advertisement, err error) {
			if err == nil && a.To != s.LinkLocal {
				s.UnsolicitedRAs++ // the server advertises on connect
			}
		},
	}
	nd := net.Dialer{}
	if n := len(d.cfg.Sources); n > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: d.cfg.Sources[id%n].AsSlice()}
	}
	raw, err := iphttps.Connect(ctx, &nd, proxy.Route{}, d.cfg.Server.String(), tr)
	if err != nil {
		return nil, &Error{PhaseConnect, err}
	}
	defer func() {
		if err != nil {
			raw.Close()
		}
	}()
	tc, err := iphttps.Handshake(ctx, raw, d.tls, tr)
	if err != nil {
		return nil, &Error{PhaseTLS, err}
	}
	s.conn = tc
	target := iphttps.Target{Host: d.cfg.Host, HostHeader: d.cfg.Host, Path: d.cfg.Path}
	if s.r, err = iphttps.Open(ctx, tc, target, wire.MaxPacket, tr); err != nil {
		if errors.Is(err, wire.ErrRequest) {
			return nil, &Error{PhaseRequest, err}
		}
		return nil, &Error{PhaseResponse, err}
	}
	a, err := iphttps.Solicit(ctx, tc, s.r, s.LinkLocal, tr)
	if err != nil {
		return nil, &Error{PhaseRA, err}
	}
	s.Timing.RA = time.Since(start)
	s.Prefix = a.Prefix

	s.Addr = iphttps.WithIID(s.Prefix.Addr(), iphttps.RandomIID())
	probe, err := iphttps.DADProbe(s.Addr)
	if err == nil {
		err = s.Send(probe)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, &Error{PhaseDAD, err}
	}
	return s, nil
}

// Send writes one IPv6 packet to the server, bounded by the write timeout.
// It may be called concurrently with reads and other sends.
func (s *Session) Send(pkt []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return err
	}
	_, err := s.conn.Write(pkt)
	return err
}

// Close closes the connection. It may be called more than once.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.conn.Close() })
	return err
}

// readUntil calls fn for every packet the server sends until ctx ends
// (then it returns nil) or the connection fails. The packet is valid only
// during the call. The session's reader is spent afterwards: only Close
// remains.
func (s *Session) readUntil(ctx context.Context, fn func(pkt []byte)) error {
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		pkt, err := s.r.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fn(pkt)
	}
}

// Hold reads and discards what the server sends (periodic advertisements)
// until ctx ends, then returns the number of packets read and nil; or, if
// the connection fails first, the error.
func (s *Session) Hold(ctx context.Context) (packets int, err error) {
	err = s.readUntil(ctx, func([]byte) { packets++ })
	return packets, err
}
