package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/wire"
)

// A raw IP-HTTPS peer written in the test: real TLS from a client
// namespace, the Windows request head, then IPv6 packets built by hand,
// so that it can send what no honest client would.

// rawDeadline bounds every exchange of a raw peer.
const rawDeadline = 5 * time.Second

// labRoots is the lab CA as a pool.
func labRoots(t testing.TB, l *lab.Lab) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(l.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the lab CA file")
	}
	return roots
}

// dialTCP connects to the server's HTTPS port from namespace ns, from the
// local IPv4 address src (the namespace's own when src is empty).
func dialTCP(l *lab.Lab, ns, src string) (*net.TCPConn, error) {
	var c net.Conn
	err := l.Do(ns, func() error {
		d := net.Dialer{Timeout: rawDeadline}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var err error
		c, err = d.Dial("tcp4", net.JoinHostPort(lab.ServerIPv4, "443"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// dialRawTLS opens a TLS connection to the server from ns (and source src,
// if not empty) and completes the handshake. The connection is closed when
// t ends.
func dialRawTLS(t testing.TB, l *lab.Lab, roots *x509.CertPool, ns, src string) *tls.Conn {
	t.Helper()
	raw, err := dialTCP(l, ns, src)
	if err != nil {
		t.Fatalf("dial from %s %s: %v", ns, src, err)
	}
	conn := tls.Client(raw, &tls.Config{ServerName: lab.ServerName, RootCAs: roots})
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(rawDeadline))
	if err := conn.Handshake(); err != nil {
		t.Fatalf("TLS handshake from %s %s: %v", ns, src, err)
	}
	return conn
}

// rawPeer is an IP-HTTPS session opened by the test.
type rawPeer struct {
	t    testing.TB
	conn *tls.Conn
	r    *wire.Reader
}

// tryOpenRaw sends the IP-HTTPS POST on a new TLS connection from ns
// (source src if not empty) and reads the response head. It returns the
// peer and the response status, or an error when the server closed the
// connection instead of answering.
func tryOpenRaw(t testing.TB, l *lab.Lab, roots *x509.CertPool, ns, src string) (*rawPeer, int, error) {
	t.Helper()
	conn := dialRawTLS(t, l, roots, ns, src)
	if _, err := conn.Write(wire.AppendRequest(nil, "/IPHTTPS", lab.ServerName)); err != nil {
		return nil, 0, fmt.Errorf("write head: %w", err)
	}
	r := wire.NewReader(conn, 0)
	resp, err := r.ReadResponse(0)
	if err != nil {
		return nil, 0, err
	}
	conn.SetDeadline(time.Time{})
	return &rawPeer{t: t, conn: conn, r: r}, resp.Status, nil
}

// openRaw is tryOpenRaw that fails t unless the server answers 200.
func openRaw(t testing.TB, l *lab.Lab, roots *x509.CertPool, ns, src string) *rawPeer {
	t.Helper()
	p, st, err := tryOpenRaw(t, l, roots, ns, src)
	if err != nil || st != 200 {
		t.Fatalf("IP-HTTPS session from %s %s: status %d, %v", ns, src, st, err)
	}
	return p
}

// send writes packets back to back, in one write.
func (p *rawPeer) send(pkts ...[]byte) {
	p.t.Helper()
	var b []byte
	for _, pkt := range pkts {
		b = append(b, pkt...)
	}
	p.conn.SetWriteDeadline(time.Now().Add(rawDeadline))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw peer write: %v", err)
	}
}

// closedByServer reads until the server closes the session and reports
// whether it did so within d (packets the server sends meanwhile, such as
// its router advertisement, are skipped).
func (p *rawPeer) closedByServer(d time.Duration) bool {
	p.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := p.r.Next(); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// alive sends a Router Solicitation and reports whether a Router
// Advertisement comes back within rawDeadline: the session is still open
// and the router still serves it.
func (p *rawPeer) alive() bool {
	p.t.Helper()
	p.send(buildND(p.t, netip.IPv6Unspecified(), packet.AllRouters(), &ndp.RouterSolicitation{}))
	p.conn.SetReadDeadline(time.Now().Add(rawDeadline))
	for {
		pkt, err := p.r.Next()
		if err != nil {
			return false
		}
		if typ, ok := packet.ICMPv6Type(pkt); ok && typ == packet.TypeRouterAdvertisement {
			return true
		}
	}
}

// expect returns the first packet from the server for which match is true,
// within d, skipping others; nil if none came.
func (p *rawPeer) expect(d time.Duration, match func([]byte) bool) []byte {
	p.conn.SetReadDeadline(time.Now().Add(d))
	for {
		pkt, err := p.r.Next()
		if err != nil {
			return nil
		}
		if match(pkt) {
			return append([]byte(nil), pkt...)
		}
	}
}

// buildND builds an ND packet with hop limit 255.
func buildND(t testing.TB, src, dst netip.Addr, m ndp.Message) []byte {
	t.Helper()
	b, err := packet.BuildICMPv6(src, dst, 255, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ipv6 builds an IPv6 packet (Payload Length from payload).
func ipv6(next, hop uint8, src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, packet.HeaderLen+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6], b[7] = next, hop
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[packet.HeaderLen:], payload)
	return b
}

// udp6 builds a UDP packet with a correct checksum.
func udp6(src, dst netip.Addr, dport uint16, data []byte) []byte {
	u := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], data)
	b := ipv6(17, 64, src, dst, u)
	binary.BigEndian.PutUint16(b[packet.HeaderLen+6:], transportSum(b, 17))
	return b
}

// transportSum is the checksum of the upper-layer message directly after
// the fixed header of b, over the RFC 8200 pseudo-header.
func transportSum(b []byte, proto uint8) uint16 {
	var s uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			s += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			s += uint32(p[len(p)-1]) << 8
		}
	}
	add(b[8:40])
	msg := b[packet.HeaderLen:]
	s += uint32(len(msg)) + uint32(proto)
	add(msg)
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	if s == 0xffff {
		return 0xffff
	}
	return ^uint16(s)
}

// pinger keeps a real ping running from a namespace, in rounds of 20
// echo requests 50 ms apart, each round ending normally (every reply
// waited for), until stopped; it totals the rounds.
type pinger struct {
	name       string
	stop       chan struct{}
	done       chan struct{}
	mu         sync.Mutex
	sent, recv int
	rounds     int
	errs       []string
}

func startPinger(l *lab.Lab, ns, dst string) *pinger {
	p := &pinger{name: ns, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := l.ExecContext(ctx, ns, "ping", "-6", "-n", "-q", "-c", "20", "-i", "0.05", "-W", "2", dst)
			cancel()
			m := pingSummary.FindSubmatch(out)
			p.mu.Lock()
			if m == nil {
				p.errs = append(p.errs, fmt.Sprintf("ping: %v: %s", err, out))
			} else {
				s, _ := strconv.Atoi(string(m[1]))
				r, _ := strconv.Atoi(string(m[2]))
				p.sent += s
				p.recv += r
				p.rounds++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// finish stops the pinger after its current round and returns the totals.
func (p *pinger) finish() (sent, recv int, errs []string) {
	close(p.stop)
	<-p.done
	return p.sent, p.recv, p.errs
}
