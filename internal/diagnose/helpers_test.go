package diagnose

import (
	"bufio"
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/iphttps/iphttps/internal/iphttps/iphttpstest"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/router"
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

// newResponder is an IP-HTTPS server on loopback (iphttpstest) whose router
// answers solicitations with the prefix 2001:db8:1::/64 and the route
// 2001:db8:c0::/48; it does not advertise unasked.
func newResponder(t *testing.T, o iphttpstest.Options) *iphttpstest.Server {
	t.Helper()
	o.Router = router.Config{
		Prefix: netip.MustParsePrefix("2001:db8:1::/64"),
		Routes: []netip.Prefix{netip.MustParsePrefix("2001:db8:c0::/48")},
	}
	return iphttpstest.New(t, o)
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
