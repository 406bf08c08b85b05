// Package iphttpstest is an IP-HTTPS server on loopback for the tests of
// what opens IP-HTTPS connections (the client's phases, diagnose, the load
// generator): the heads by package wire, the link by package router
// (router solicitations answered, addresses registered by duplicate address
// detection, packets between clients), optionally a host behind it.
package iphttpstest

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/wire"
)

// Path is the IP-HTTPS path the server serves; other paths get 404.
const Path = "/IPHTTPS"

// ServerName is the Server header of its answers, Windows'.
const ServerName = "Microsoft-HTTPAPI/2.0"

// Options say how the server answers.
type Options struct {
	// Cert is the server's certificate; nil: plain TCP (an http URL).
	Cert *tls.Certificate
	// ClientCAs, when set, make the server require a client certificate
	// issued by one of them.
	ClientCAs *x509.CertPool
	// MaxTLS caps the TLS version (0: crypto/tls's default).
	MaxTLS uint16
	// Status, when set and not 200, answers every request.
	Status int
	// Router configures the link; it needs a Prefix.
	Router router.Config
	// Advertise sends a router advertisement to every new connection, as
	// iphttps server does.
	Advertise bool
	// Script, when set, replaces the router: once the client's first packet
	// arrives, the server sends these packets (none: it stays silent) and
	// ignores everything else.
	Script func() [][]byte
	// Host answers the packets the router hands to the host; the reply goes
	// to the router as from the host. nil: they are dropped.
	Host func(pkt []byte) (reply []byte)
}

// Server is a running server.
type Server struct {
	// Router is the link's router.
	Router *router.Router

	o     Options
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	once  sync.Once
}

// New starts a server on 127.0.0.1; it stops when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	rt, err := router.New(o.Router)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.Cert != nil {
		cfg := &tls.Config{Certificates: []tls.Certificate{*o.Cert}, MaxVersion: o.MaxTLS}
		if o.ClientCAs != nil {
			cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, o.ClientCAs
		}
		ln = tls.NewListener(ln, cfg)
	}
	s := &Server{Router: rt, o: o, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's TCP address.
func (s *Server) Addr() netip.AddrPort { return netip.MustParseAddrPort(s.ln.Addr().String()) }

// Port is the server's TCP port, for a URL.
func (s *Server) Port() string {
	_, p, _ := net.SplitHostPort(s.ln.Addr().String())
	return p
}

// URL is the server's IP-HTTPS URL with host as its name (https when the
// server has a certificate).
func (s *Server) URL(host string) string {
	scheme := "http"
	if s.o.Cert != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, s.Port()) + Path
}

// Certificate is a server certificate for name from a new CA (package
// pki), and the pool of that CA for the client to trust.
func Certificate(t testing.TB, name string) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca, err := pki.NewCA("iphttpstest CA")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Server(ca, pki.Options{CommonName: name})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cert := c.TLS()
	return &cert, roots
}

// Close stops the server: no more connections, and the open ones closed.
func (s *Server) Close() {
	s.once.Do(func() {
		s.ln.Close()
		s.CloseConns()
		s.wg.Wait()
	})
}

// CloseConns closes every connection the server holds.
func (s *Server) CloseConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serve(c)
		})
	}
}

// port is the router's view of a connection.
type port struct{ ob *wire.Outbox }

func (p port) Send(pkt []byte) bool { return p.ob.Append(pkt) == nil }

func (s *Server) serve(c net.Conn) {
	r := wire.NewReader(c, 0)
	req, err := r.ReadRequest(0)
	if err != nil {
		return
	}
	refuse := s.o.Status
	if refuse == http.StatusOK {
		refuse = 0
	}
	if refuse != 0 || req.Method != http.MethodPost || !strings.EqualFold(req.Path, Path) {
		c.Write(wire.AppendError(nil, cmp.Or(refuse, http.StatusNotFound), ServerName, time.Now()))
		return
	}
	if _, err := c.Write(wire.AppendResponse(nil, ServerName, time.Now())); err != nil {
		return
	}
	if s.o.Script != nil {
		if _, err := r.Next(); err != nil {
			return
		}
		for _, p := range s.o.Script() {
			c.Write(p)
		}
		for {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	}
	ob := wire.NewOutbox(0)
	cl := s.Router.Attach(port{ob})
	defer s.Router.Detach(cl)
	done := make(chan struct{})
	ob.Go(c, func(error) {
		c.Close()
		close(done)
	})
	defer func() {
		ob.Close()
		c.Close()
		<-done
	}()
	if s.o.Advertise {
		s.Router.Advertise(cl)
	}
	for {
		pkt, err := r.Next()
		if err != nil {
			return
		}
		if s.Router.FromClient(cl, pkt) == router.ToHost && s.o.Host != nil {
			if reply := s.o.Host(pkt); reply != nil {
				s.Router.FromHost(reply)
			}
		}
	}
}
