package server

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// pipeConn serves the given bytes and then what follows: the check that the
// header reader leaves what follows the header unread.
func proxyConn(t *testing.T, head []byte) net.Conn {
	t.Helper()
	c, p := net.Pipe()
	go func() {
		p.Write(head)
		p.Write([]byte("CLIENTHELLO"))
		p.Close()
	}()
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func rest(t *testing.T, c net.Conn) string {
	t.Helper()
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestReadProxyHeaderV2(t *testing.T) {
	h := proxyproto.HeaderProxyFromAddrs(2,
		&net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 40000},
		&net.TCPAddr{IP: net.ParseIP("203.0.113.10"), Port: 443})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	c := proxyConn(t, b)
	got, err := readProxyHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("198.51.100.7:40000"); got != want {
		t.Fatalf("source %v, want %v", got, want)
	}
	if r := rest(t, c); r != "CLIENTHELLO" {
		t.Fatalf("after the header: %q, want the ClientHello untouched", r)
	}
}

func TestReadProxyHeaderV2IPv6WithTLV(t *testing.T) {
	h := proxyproto.HeaderProxyFromAddrs(2,
		&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40001},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443})
	if err := h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("da.example.test")}}); err != nil {
		t.Fatal(err)
	}
	b, _ := h.Format()
	c := proxyConn(t, b)
	got, err := readProxyHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("[2001:db8::7]:40001"); got != want {
		t.Fatalf("source %v, want %v", got, want)
	}
	if r := rest(t, c); r != "CLIENTHELLO" {
		t.Fatalf("after the header: %q", r)
	}
}

func TestReadProxyHeaderV1(t *testing.T) {
	c := proxyConn(t, []byte("PROXY TCP4 198.51.100.9 203.0.113.10 41000 443\r\n"))
	got, err := readProxyHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("198.51.100.9:41000"); got != want {
		t.Fatalf("source %v, want %v", got, want)
	}
	if r := rest(t, c); r != "CLIENTHELLO" {
		t.Fatalf("after the header: %q", r)
	}
}

func TestReadProxyHeaderLocal(t *testing.T) {
	h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	b, _ := h.Format()
	c := proxyConn(t, b)
	got, err := readProxyHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	if got != addrPortOf(c.RemoteAddr()) {
		t.Fatalf("LOCAL header: %v, want the peer's own address", got)
	}
}

func TestReadProxyHeaderBad(t *testing.T) {
	long := "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"
	for name, in := range map[string]string{
		"tls":       "\x16\x03\x01\x02\x00\x01",
		"http":      "POST /IPHTTPS HTTP/1.1\r\n",
		"v1 long":   long,
		"v1 bad":    "PROXY TCP4 x y z w\r\n",
		"v2 trunc":  "\r\n\r\n\x00\r\nQU",
		"v2 huge":   "\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",
		"truncated": "PRO",
	} {
		t.Run(name, func(t *testing.T) {
			c, p := net.Pipe()
			go func() { p.Write([]byte(in)); p.Close() }()
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if got, err := readProxyHeader(c); err == nil {
				t.Fatalf("accepted %q as a PROXY header (source %v)", in, got)
			}
		})
	}
}

func TestTrustedProxy(t *testing.T) {
	from := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28"), netip.MustParsePrefix("2001:db8:9::5/128")}
	for a, want := range map[string]bool{"192.0.2.3": true, "192.0.2.17": false, "2001:db8:9::5": true, "2001:db8:9::6": false} {
		if got := trustedProxy(netip.MustParseAddr(a), from); got != want {
			t.Errorf("%s: trusted %v, want %v", a, got, want)
		}
	}
	if !trustedProxy(netip.MustParseAddr("203.0.113.1"), nil) {
		t.Error("an empty list must trust any peer")
	}
}

func TestClosedBeforeData(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		name   string
		client func(net.Conn)
		closed bool
	}{
		{"close", func(c net.Conn) { c.Close() }, true},
		{"reset", func(c net.Conn) { c.(*net.TCPConn).SetLinger(0); c.Close() }, true},
		{"data", func(c net.Conn) { c.Write([]byte("\x16")); time.Sleep(100 * time.Millisecond); c.Close() }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			go c.client(cc)
			if got := closedBeforeData(sc); got != c.closed {
				t.Fatalf("closedBeforeData %v, want %v", got, c.closed)
			}
			if !c.closed {
				b := make([]byte, 1)
				if n, _ := sc.Read(b); n != 1 || b[0] != 0x16 {
					t.Fatal("the peeked byte was consumed")
				}
			}
		})
	}
}
