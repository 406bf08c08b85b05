package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/wire"
)

// TestHTTPFront sends what a wrong or hostile peer would send to the server's
// HTTPS port, from the client namespace, and checks the exact answers, the
// counters, and that an established client notices nothing.
func TestHTTPFront(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipth-", Clients: 1, ServerArgs: []string{"--handshake-timeout", "2s"}})
	startLab(t, l)
	cli := l.ClientNS(1)
	pem, err := os.ReadFile(l.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	// dialTLS opens a TLS connection to the server from the client namespace,
	// closed when t ends, with a 5 s deadline.
	dialTLS := func(t *testing.T) *tls.Conn {
		t.Helper()
		var conn *tls.Conn
		if err := l.Do(cli, func() error {
			raw, err := net.DialTimeout("tcp", net.JoinHostPort(lab.ServerIPv4, "443"), 5*time.Second)
			if err == nil {
				conn = tls.Client(raw, &tls.Config{ServerName: lab.ServerName, RootCAs: roots})
			}
			return err
		}); err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		return conn
	}

	// exchange opens a TLS connection from the client namespace, writes
	// send, and returns the status line and whether the server then closed
	// the connection within 5 s.
	exchange := func(t *testing.T, send string) (statusLine string, closed bool) {
		t.Helper()
		conn := dialTLS(t)
		if _, err := io.WriteString(conn, send); err != nil {
			t.Fatalf("write: %v", err)
		}
		br := bufio.NewReader(conn)
		statusLine, err = br.ReadString('\n')
		if err != nil {
			t.Fatalf("no status line: %v", err)
		}
		_, err = io.Copy(io.Discard, br)
		return strings.TrimSpace(statusLine), err == nil
	}

	cases := []struct {
		name, send, want string
		counter          string
	}{
		{"wrong method", "GET /IPHTTPS HTTP/1.1\r\nHost: da.example.test\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", "http_405"},
		{"wrong path", "POST /other HTTP/1.1\r\nHost: da.example.test\r\nContent-Length: 18446744073709551615\r\n\r\n", "HTTP/1.1 404 Not Found", "http_404"},
		{"garbage head", "HELLO THERE\r\n\r\n", "HTTP/1.1 400 Bad Request", "http_400"},
		{"chunked", "POST /IPHTTPS HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 400 Bad Request", "http_400"},
		{"oversized head", "POST /IPHTTPS HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 9000) + "\r\n\r\n", "HTTP/1.1 400 Bad Request", "http_400"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := counter(t, l, c.counter)
			line, closed := exchange(t, c.send)
			if line != c.want {
				t.Errorf("status line %q, want %q", line, c.want)
			}
			if !closed {
				t.Error("the server did not close the connection after the error")
			}
			if after := counterReaches(t, l, c.counter, before+1); after != before+1 {
				t.Errorf("counter %s went %d -> %d, want +1", c.counter, before, after)
			}
		})
	}

	t.Run("path case-insensitive, Windows head", func(t *testing.T) {
		conn := dialTLS(t)
		// The head Windows sends (Content-Length first), with the path in another case.
		conn.Write(wire.AppendRequest(nil, "/iphttps", lab.ServerName))
		r := wire.NewReader(conn, 0)
		resp, err := r.ReadResponse(0)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || resp.Get("Server") != "Microsoft-HTTPAPI/2.0" || resp.Get("Date") == "" ||
			resp.Get("Content-Length") != "" || resp.Get("Transfer-Encoding") != "" {
			t.Errorf("response %+v: want 200 with Server Microsoft-HTTPAPI/2.0, a Date, no length", resp)
		}
		// The server advertises its router at once: the first packet is an RA.
		pkt, err := r.Next()
		if err != nil {
			t.Fatalf("no packet after the head: %v", err)
		}
		if len(pkt) < 41 || pkt[6] != 58 || pkt[40] != 134 {
			t.Errorf("first packet is not a router advertisement: % x", pkt[:min(len(pkt), 48)])
		}
	})

	t.Run("non-IPv6 data closes only that session", func(t *testing.T) {
		before := counter(t, l, "drop_not_ipv6")
		conn := dialTLS(t)
		conn.Write(wire.AppendRequest(nil, "/IPHTTPS", lab.ServerName))
		r := wire.NewReader(conn, 0)
		if _, err := r.ReadResponse(0); err != nil {
			t.Fatal(err)
		}
		// An IPv4 header where an IPv6 packet must be.
		conn.Write([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2})
		for {
			if _, err := r.Next(); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the server kept the session open after non-IPv6 data")
				}
				break
			}
		}
		if after := counterReaches(t, l, "drop_not_ipv6", before+1); after != before+1 {
			t.Errorf("drop_not_ipv6 went %d -> %d, want +1", before, after)
		}
		mustPing(t, l, cli, lab.IntranetHost)
	})

	t.Run("DAD probe for a client's address gets the forged NA", func(t *testing.T) {
		s, err := l.Status(context.Background(), lab.ClientName(1))
		if err != nil {
			t.Fatal(err)
		}
		owned, ok := lab.LinkAddr(s)
		if !ok {
			t.Fatalf("client 1 has no address: %v", s.Addresses)
		}
		conn := dialTLS(t)
		conn.Write(wire.AppendRequest(nil, "/IPHTTPS", lab.ServerName))
		r := wire.NewReader(conn, 0)
		if _, err := r.ReadResponse(0); err != nil {
			t.Fatal(err)
		}
		ns, err := packet.BuildICMPv6(netip.IPv6Unspecified(), packet.SolicitedNode(owned), 255, &ndp.NeighborSolicitation{TargetAddress: owned})
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(ns)
		for {
			pkt, err := r.Next()
			if err != nil {
				t.Fatalf("no neighbor advertisement defending %s: %v", owned, err)
			}
			typ, _ := packet.ICMPv6Type(pkt)
			if typ != packet.TypeNeighborAdvertisement {
				continue // the router advertisement sent on connect
			}
			m, err := packet.ParseND(pkt)
			if err != nil {
				t.Fatalf("bad NA: %v", err)
			}
			na := m.(*ndp.NeighborAdvertisement)
			if na.TargetAddress != owned || na.Router || na.Solicited || len(na.Options) != 0 ||
				packet.Dst(pkt) != netip.MustParseAddr("ff02::1") || packet.HopLimit(pkt) != 255 {
				t.Errorf("NA %+v to %s hop limit %d: want target %s, R=0 S=0, no options, to ff02::1, hop limit 255",
					na, packet.Dst(pkt), packet.HopLimit(pkt), owned)
			}
			break
		}
		// The owner keeps its address.
		mustPing(t, l, cli, lab.IntranetHost)
	})

	t.Run("silent TCP peer hits the handshake deadline", func(t *testing.T) {
		before := counter(t, l, "handshake_failures")
		var raw net.Conn
		if err := l.Do(cli, func() (err error) {
			raw, err = net.DialTimeout("tcp", net.JoinHostPort(lab.ServerIPv4, "443"), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		start := time.Now()
		raw.SetReadDeadline(time.Now().Add(8 * time.Second))
		_, err := raw.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close a connection that never started TLS")
		}
		if d := time.Since(start); d < time.Second || d > 5*time.Second {
			t.Errorf("closed after %v, want about the 2 s handshake timeout", d)
		}
		if after := counterReaches(t, l, "handshake_failures", before+1); after != before+1 {
			t.Errorf("handshake_failures went %d -> %d, want +1", before, after)
		}
	})

	t.Run("nmap ip-https-discover", func(t *testing.T) {
		if _, err := exec.LookPath("nmap"); err != nil {
			t.Fatal("nmap is missing (Debian package nmap): the test command installs it")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := l.ExecContext(ctx, cli, "nmap", "-Pn", "-n", "-p", "443", "--script", "ip-https-discover", lab.ServerIPv4)
		if err != nil {
			t.Fatalf("nmap: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "IP-HTTPS is supported") {
			t.Errorf("nmap's ip-https-discover does not recognise the server:\n%s", out)
		}
	})

	// The established client noticed none of this.
	s, err := l.Status(context.Background(), lab.ClientName(1))
	if err != nil || !lab.IsActive(s) {
		t.Errorf("client 1 after the hostile peers: %+v %v", s, err)
	}
	mustPing(t, l, cli, lab.IntranetHost)
}
