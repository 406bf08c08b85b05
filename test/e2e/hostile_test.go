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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/wire"
)

// hostileTimeout is the server's handshake and head timeout in
// TestHostile: short, so the slow peers are cut off within the test.
const hostileTimeout = 2 * time.Second

// TestHostile attacks the server with a raw IP-HTTPS peer from a third
// client namespace, speaking the real wire over real TLS: bad HTTP heads,
// bytes that cannot be framed, and well-framed packets the router must
// refuse. Each input must get the answer docs/reliability.md ("Hostile
// input") gives it: 400/404/405, the session closed, or the packet dropped
// with the session kept; and must move the server counter of its reason by
// exactly one. Meanwhile two real clients ping the intranet host every
// 50 ms and must lose nothing, never reconnect, and keep their addresses.
func TestHostile(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipho-", Clients: 3, ServerArgs: []string{
		"--handshake-timeout", hostileTimeout.String(), "--head-timeout", hostileTimeout.String(),
	}})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	var honest [2]status.Interface
	for i := 1; i <= 2; i++ {
		if err := l.StartClient(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 2; i++ {
		honest[i-1] = waitActive(t, l, i)
	}
	addr1, _ := lab.LinkAddr(honest[0])
	ll2 := linkLocalOf(t, honest[1])
	attacker := l.ClientNS(3)
	roots := labRoots(t, l)

	pingers := []*pinger{startPinger(l, l.ClientNS(1), lab.IntranetHost), startPinger(l, l.ClientNS(2), lab.IntranetHost)}
	start := time.Now()

	// The slow peers run in the background while the rest goes on.
	var wg sync.WaitGroup
	wg.Add(2)
	slowResults := make(chan string, 2)
	go func() {
		defer wg.Done()
		slowResults <- slowHandshake(l, attacker)
	}()
	go func() {
		defer wg.Done()
		slowResults <- slowloris(l, roots, attacker)
	}()
	handshakeBefore, headBefore := counter(t, l, "handshake_timeouts"), counter(t, l, "head_timeouts")

	// HTTP heads: answered and closed.
	heads := []struct {
		name, send, want, counter string
	}{
		{"wrong method", "GET /IPHTTPS HTTP/1.1\r\nHost: da.example.test\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", "http_405"},
		{"wrong path", "POST /owa HTTP/1.1\r\nHost: da.example.test\r\nContent-Length: 18446744073709551615\r\n\r\n", "HTTP/1.1 404 Not Found", "http_404"},
		{"huge head", "POST /IPHTTPS HTTP/1.1\r\nHost: da.example.test\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 100)+"\r\n", 100) + "\r\n", "HTTP/1.1 400 Bad Request", "http_400"},
		{"endless head line", "POST /IPHTTPS HTTP/1.1\r\nHost: " + strings.Repeat("h", 16<<10), "HTTP/1.1 400 Bad Request", "http_400"},
		{"garbage head", "\x16\x03\x01\x00\x05hello\r\n\r\n", "HTTP/1.1 400 Bad Request", "http_400"},
	}
	for _, h := range heads {
		before := counter(t, l, h.counter)
		conn := dialRawTLS(t, l, roots, attacker, "")
		if _, err := io.WriteString(conn, h.send); err != nil {
			t.Errorf("%s: write: %v", h.name, err)
			continue
		}
		br := bufio.NewReader(conn)
		line, err := br.ReadString('\n')
		_, rest := io.Copy(io.Discard, br)
		switch {
		case err != nil:
			t.Errorf("%s: no status line: %v", h.name, err)
		case strings.TrimSpace(line) != h.want:
			t.Errorf("%s: status line %q, want %q", h.name, strings.TrimSpace(line), h.want)
		case rest != nil:
			t.Errorf("%s: the server did not close the connection after its answer: %v", h.name, rest)
		}
		if after := counterReaches(t, l, h.counter, before+1); after != before+1 {
			t.Errorf("%s: %s went %d -> %d, want +1", h.name, h.counter, before, after)
		}
		t.Logf("%-28s -> %s, %s +1", h.name, strings.TrimSpace(line), h.counter)
	}

	// Bytes that cannot be framed: that session is closed.
	jumbo := ipv6(0, 64, netip.MustParseAddr("2001:db8:1::bad:2"), netip.MustParseAddr(lab.IntranetHost),
		[]byte{17, 0, 0xc2, 4, 0, 1, 0, 0, 0x9c, 0x40, 0, 7, 0, 8, 0, 0})
	jumbo[4], jumbo[5] = 0, 0 // Payload Length 0: the length is in the jumbo option
	ipv4 := []byte{0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 26, 203, 0, 113, 10, 0x9c, 0x40, 0, 7, 0, 8, 0, 0}
	echo := udp6(netip.MustParseAddr("2001:db8:1::bad:2"), netip.MustParseAddr(lab.IntranetHost), 7, []byte("0123456789abcdef"))
	framing := []struct {
		name    string
		send    []byte
		halfEnd bool // end the stream after send (close_notify)
		counter string
	}{
		{"garbage on the stream", []byte("this is not an IPv6 packet at all\r\n"), false, "drop_not_ipv6"},
		{"IPv4 packet", ipv4, false, "drop_not_ipv6"},
		{"jumbogram", jumbo, false, "drop_not_ipv6"},
		{"good packet then IPv4", append(append([]byte(nil), echo...), ipv4...), false, "drop_not_ipv6"},
		{"truncated packet, then end", echo[:len(echo)-10], true, "drop_truncated"},
	}
	for _, f := range framing {
		before := counter(t, l, f.counter)
		p := openRaw(t, l, roots, attacker, "")
		p.send(f.send)
		if f.halfEnd {
			if err := p.conn.CloseWrite(); err != nil {
				t.Errorf("%s: close write: %v", f.name, err)
			}
		}
		if !p.closedByServer(rawDeadline) {
			t.Errorf("%s: the server kept the session open", f.name)
		}
		if after := counterReaches(t, l, f.counter, before+1); after != before+1 {
			t.Errorf("%s: %s went %d -> %d, want +1", f.name, f.counter, before, after)
		}
		t.Logf("%-28s -> session closed, %s +1", f.name, f.counter)
	}

	// Well-framed packets the router refuses: dropped, the session stays.
	p := openRaw(t, l, roots, attacker, "")
	own, ownLL := netip.MustParseAddr("2001:db8:1::bad:1"), netip.MustParseAddr("fe80::bad:1")
	// Claim two addresses as a client does (DAD), and use one.
	learnedBefore := counter(t, l, "packets_to_host")
	p.send(buildND(t, netip.IPv6Unspecified(), packet.SolicitedNode(ownLL), &ndp.NeighborSolicitation{TargetAddress: ownLL}),
		buildND(t, netip.IPv6Unspecified(), packet.SolicitedNode(own), &ndp.NeighborSolicitation{TargetAddress: own}),
		udp6(own, netip.MustParseAddr(lab.IntranetHost), 9, []byte("discard me")))
	if got := counterReaches(t, l, "packets_to_host", learnedBefore+1); got < learnedBefore+1 {
		t.Fatalf("the raw peer's own packet did not reach the host (packets_to_host %d -> %d)", learnedBefore, got)
	}
	intranet := netip.MustParseAddr(lab.IntranetHost)
	raBehindHopByHop := ipv6(0, 255, ownLL, packet.AllNodes(), []byte{58, 0, 1, 4, 0, 0, 0, 0, 134, 0, 0, 0, 64, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0})
	drops := []struct {
		name    string
		pkt     []byte
		counter string
	}{
		{"source of another client", udp6(addr1, intranet, 9, []byte("spoof")), "drop_spoofed_source"},
		{"source off the link", udp6(netip.MustParseAddr("2001:db8:c0::99"), intranet, 9, []byte("spoof")), "drop_spoofed_source"},
		{"link-local to another client", udp6(ownLL, ll2, 9, []byte("hello neighbour")), "drop_link_local"},
		{"multicast all-nodes", udp6(own, packet.AllNodes(), 9, []byte("to all")), "drop_multicast"},
		{"multicast site-local", udp6(own, netip.MustParseAddr("ff05::1:3"), 547, []byte("dhcp")), "drop_multicast"},
		{"RA as the router", buildND(t, ownLL, packet.AllNodes(), &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: 30 * time.Minute,
			Options: []ndp.Option{&ndp.PrefixInformation{PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
				ValidLifetime: time.Hour, PreferredLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:666::")}}}), "drop_router_message"},
		{"RA behind hop-by-hop", raBehindHopByHop, "drop_router_message"},
		{"NA claiming client 1's address", buildND(t, ownLL, packet.AllNodes(), &ndp.NeighborAdvertisement{Override: true, TargetAddress: addr1}), "drop_multicast"},
		{"NA from client 1's address", buildND(t, addr1, packet.AllNodes(), &ndp.NeighborAdvertisement{Override: true, TargetAddress: addr1}), "drop_spoofed_source"},
	}
	for _, d := range drops {
		before := counter(t, l, d.counter)
		p.send(d.pkt)
		if after := counterReaches(t, l, d.counter, before+1); after != before+1 {
			t.Errorf("%s: %s went %d -> %d, want +1", d.name, d.counter, before, after)
		}
		t.Logf("%-32s -> dropped, %s +1", d.name, d.counter)
	}
	if !p.alive() {
		t.Error("the session that sent refused packets was closed; want only the packets dropped")
	}

	// A DAD probe for client 1's address: the server defends it.
	conflicts := counter(t, l, "dad_conflicts")
	p.send(buildND(t, netip.IPv6Unspecified(), packet.SolicitedNode(addr1), &ndp.NeighborSolicitation{TargetAddress: addr1}))
	na := p.expect(rawDeadline, func(b []byte) bool {
		typ, _ := packet.ICMPv6Type(b)
		return typ == packet.TypeNeighborAdvertisement
	})
	if na == nil {
		t.Errorf("no neighbor advertisement defending %s", addr1)
	} else if m, err := packet.ParseND(na); err != nil || m.(*ndp.NeighborAdvertisement).TargetAddress != addr1 {
		t.Errorf("the defending NA is %v, %v; want one for %s", m, err, addr1)
	}
	if after := counterReaches(t, l, "dad_conflicts", conflicts+1); after != conflicts+1 {
		t.Errorf("dad_conflicts went %d -> %d, want +1", conflicts, after)
	}
	t.Logf("%-32s -> defended by the server, dad_conflicts +1", "DAD probe for client 1's address")

	// The slow peers.
	wg.Wait()
	close(slowResults)
	for r := range slowResults {
		if r != "" {
			t.Error(r)
		}
	}
	if after := counterReaches(t, l, "handshake_timeouts", handshakeBefore+1); after != handshakeBefore+1 {
		t.Errorf("silent TCP peer: handshake_timeouts went %d -> %d, want +1", handshakeBefore, after)
	}
	if after := counterReaches(t, l, "head_timeouts", headBefore+1); after != headBefore+1 {
		t.Errorf("slowloris head: head_timeouts went %d -> %d, want +1", headBefore, after)
	}
	p.conn.Close()

	// The honest clients noticed nothing.
	for i, pg := range pingers {
		sent, recv, errs := pg.finish()
		t.Logf("%s pinged %s every 50 ms for %s: %d sent, %d received", lab.ClientName(i+1), lab.IntranetHost,
			time.Since(start).Round(100*time.Millisecond), sent, recv)
		if sent == 0 || recv != sent || len(errs) > 0 {
			t.Errorf("%s lost pings during the attack: %d sent, %d received %v", lab.ClientName(i+1), sent, recv, errs)
		}
	}
	for i := 1; i <= 2; i++ {
		s, err := l.Status(context.Background(), lab.ClientName(i))
		switch {
		case err != nil || !lab.IsActive(s):
			t.Errorf("%s after the attack: %s %v", lab.ClientName(i), s.InterfaceStatus, err)
		case s.Counters["connects"] != 1:
			t.Errorf("%s connected %d times; want 1 (never dropped)", lab.ClientName(i), s.Counters["connects"])
		}
		a, _ := lab.LinkAddr(s)
		if want, _ := lab.LinkAddr(honest[i-1]); a != want {
			t.Errorf("%s's address changed from %s to %s", lab.ClientName(i), want, a)
		}
	}
	srv, err := l.Status(context.Background(), "server")
	if err != nil || !l.Running("server") {
		t.Fatalf("server after the attack: %v", err)
	}
	t.Logf("server counters after the attack: %v", srv.Counters)
}

// slowHandshake connects without ever starting TLS and checks the server
// cuts it off after its handshake timeout; it returns a complaint or "".
func slowHandshake(l *lab.Lab, ns string) string {
	c, err := dialTCP(l, ns, "")
	if err != nil {
		return "silent TCP peer: " + err.Error()
	}
	defer c.Close()
	return closedWithin("silent TCP peer", c, hostileTimeout)
}

// slowloris completes TLS and trickles a valid head a byte every 300 ms,
// never finishing it within the head timeout; the server must close at the
// timeout, however steadily bytes arrive.
func slowloris(l *lab.Lab, roots *x509.CertPool, ns string) string {
	raw, err := dialTCP(l, ns, "")
	if err != nil {
		return "slowloris: " + err.Error()
	}
	conn := tls.Client(raw, &tls.Config{ServerName: lab.ServerName, RootCAs: roots})
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(rawDeadline))
	if err := conn.Handshake(); err != nil {
		return "slowloris handshake: " + err.Error()
	}
	conn.SetDeadline(time.Time{})
	head := wire.AppendRequest(nil, "/IPHTTPS", lab.ServerName)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range head[:len(head)-2] {
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
			if time.Since(start) > 4*hostileTimeout+5*time.Second {
				return
			}
		}
	}()
	r := closedWithin("slowloris head", conn, hostileTimeout)
	conn.Close()
	<-done
	return r
}

// closedWithin reads c until the server closes it and checks that happened
// after about timeout (not before half of it, not after twice it + 2 s).
func closedWithin(what string, c net.Conn, timeout time.Duration) string {
	start := time.Now()
	c.SetReadDeadline(start.Add(2*timeout + 2*time.Second))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return what + ": the server did not close it within " + (2*timeout + 2*time.Second).String()
	case took < timeout/2:
		return what + ": closed after " + took.String() + ", before the timeout " + timeout.String()
	}
	return ""
}

// linkLocalOf is the link-local address in a client's status.
func linkLocalOf(t *testing.T, s status.Interface) netip.Addr {
	t.Helper()
	for _, a := range s.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatalf("no link-local address in %v", s.Addresses)
	return netip.Addr{}
}
