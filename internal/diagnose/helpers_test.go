package diagnose

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/wire"
)

// wantCheck fails t unless c has status st and code (code < 0: no code).
func wantCheck(t *testing.T, c Check, st Status, code int64) {
	t.Helper()
	got := int64(-1)
	if c.Code != nil {
		got = int64(*c.Code)
	}
	if c.Status != st || got != code {
		t.Fatalf("check %s: got %s %#x, want %s %#x\ncause: %s\nfix: %s\nsaw: %v\nreason: %s",
			c.Name, c.Status, got, st, code, c.Cause, c.Fix, c.Saw, c.Reason)
	}
}

// wantSaw fails t unless c saw key with a value containing sub.
func wantSaw(t *testing.T, c Check, key, sub string) {
	t.Helper()
	v, ok := c.Saw.Get(key)
	if !ok || !strings.Contains(v, sub) {
		t.Fatalf("check %s: saw[%q] = %q (present %v), want it to contain %q; saw: %v", c.Name, key, v, ok, sub, c.Saw)
	}
}

// fakeDNS is a name server on 127.0.0.1 (UDP) answering from its tables:
// A records, names that exist without addresses, names that SERVFAIL, and
// NXDOMAIN for the rest.
type fakeDNS struct {
	pc net.PacketConn
	zone
}

// zone is what a fakeDNS knows; names end with a dot.
type zone struct {
	a        map[string][]netip.Addr
	nodata   map[string]bool
	servfail map[string]bool
}

func newFakeDNS(t *testing.T, z zone) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{pc: pc, zone: z}
	t.Cleanup(func() { pc.Close() })
	go d.serve()
	return d
}

func (d *fakeDNS) addr() string { return d.pc.LocalAddr().String() }

func (d *fakeDNS) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var q dnsmessage.Message
		if err := q.Unpack(buf[:n]); err != nil || len(q.Questions) == 0 {
			continue
		}
		qq := q.Questions[0]
		name := strings.ToLower(qq.Name.String())
		resp := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: q.ID, Response: true, RecursionDesired: q.RecursionDesired, RecursionAvailable: true, Authoritative: true},
			Questions: q.Questions,
		}
		switch {
		case d.servfail[name]:
			resp.RCode = dnsmessage.RCodeServerFailure
		case d.nodata[name]:
		case d.a[name] != nil:
			for _, a := range d.a[name] {
				if qq.Type == dnsmessage.TypeA && a.Is4() {
					resp.Answers = append(resp.Answers, dnsmessage.Resource{
						Header: dnsmessage.ResourceHeader{Name: qq.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
						Body:   &dnsmessage.AResource{A: a.As4()},
					})
				}
			}
		default:
			resp.RCode = dnsmessage.RCodeNameError
		}
		b, err := resp.Pack()
		if err != nil {
			continue
		}
		d.pc.WriteTo(b, from)
	}
}

// resolver is a Go resolver that asks only d.
func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", d.addr())
	}}
}

func (d *fakeDNS) query() rawQuery {
	return newRawQuery(&net.Dialer{}, func() ([]string, error) { return []string{d.addr()}, nil })
}

// fakeProxy answers every CONNECT with status (and, for 407, a Basic
// challenge); with 200 it keeps the connection open.
func fakeProxy(t *testing.T, status int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				req.Body.Close()
				resp := &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}}
				if status == http.StatusProxyAuthRequired {
					resp.Header.Set("Proxy-Authenticate", `Basic realm="test"`)
				}
				if status != http.StatusOK {
					resp.Close = true
				}
				resp.Write(c)
				if status == http.StatusOK {
					io.Copy(io.Discard, br)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// testPKI is a CA and a server certificate for da.example.test.
type testPKI struct {
	ca     *pki.Cert
	server *pki.Cert
	roots  *x509.CertPool
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	ca, err := pki.NewCA("diagnose test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.Server(ca, pki.Options{CommonName: "da.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return testPKI{ca: ca, server: srv, roots: roots}
}

// responder is an in-process IP-HTTPS server on loopback: the request head
// read with internal/wire, the 200 answer, then the link's router
// (internal/router) answering the client's packets.
type responder struct {
	ln net.Listener
	// status, when not 200, is the answer to every request.
	status int
	// ra, when set, replaces the router: what to send after the 200
	// (nil packets: nothing at all).
	ra     func() [][]byte
	router *router.Router
	wg     sync.WaitGroup
}

type responderOptions struct {
	status int
	ra     func() [][]byte
	cert   *tls.Certificate // nil: plain TCP
	// clientCAs, when set, makes the server require a client certificate
	// from them.
	clientCAs *x509.CertPool
	maxTLS    uint16
}

func newResponder(t *testing.T, o responderOptions) *responder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.cert != nil {
		cfg := &tls.Config{Certificates: []tls.Certificate{*o.cert}, MaxVersion: o.maxTLS}
		if o.clientCAs != nil {
			cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, o.clientCAs
		}
		ln = tls.NewListener(ln, cfg)
	}
	rt, err := router.New(router.Config{
		Prefix: netip.MustParsePrefix("2001:db8:1::/64"),
		Routes: []netip.Prefix{netip.MustParsePrefix("2001:db8:c0::/48")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.status == 0 {
		o.status = http.StatusOK
	}
	r := &responder{ln: ln, status: o.status, ra: o.ra, router: rt}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *responder) port() string {
	_, p, _ := net.SplitHostPort(r.ln.Addr().String())
	return p
}

func (r *responder) serve() {
	defer r.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		open[c] = true
		mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer c.Close()
			r.session(c)
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		}()
	}
}

// connPort is a router.Port writing to the connection.
type connPort struct {
	mu sync.Mutex
	c  net.Conn
}

func (p *connPort) Send(pkt []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.c.Write(pkt)
	return err == nil
}

func (r *responder) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rd := wire.NewReader(c, 0)
	req, err := rd.ReadRequest(0)
	if err != nil {
		return
	}
	now := time.Now()
	if r.status != http.StatusOK || !strings.EqualFold(req.Path, "/IPHTTPS") {
		st := r.status
		if st == http.StatusOK {
			st = http.StatusNotFound
		}
		c.Write(wire.AppendError(nil, st, "Microsoft-HTTPAPI/2.0", now))
		return
	}
	if _, err := c.Write(wire.AppendResponse(nil, "Microsoft-HTTPAPI/2.0", now)); err != nil {
		return
	}
	if r.ra != nil {
		// Wait for the solicitation, then send the scripted packets.
		if _, err := rd.Next(); err != nil {
			return
		}
		for _, p := range r.ra() {
			c.Write(p)
		}
		for {
			if _, err := rd.Next(); err != nil {
				return
			}
		}
	}
	port := &connPort{c: c}
	cl := r.router.Attach(port)
	defer r.router.Detach(cl)
	for {
		pkt, err := rd.Next()
		if err != nil {
			return
		}
		r.router.FromClient(cl, pkt)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
