package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/wire"
)

// fakeServer is an in-process IP-HTTPS server for the tests: TLS on
// loopback, the wire package for the heads and framing, and the real router
// for Neighbor Discovery, address ownership and delivery. Instead of a TUN
// device it answers the echo requests the router hands to the host when
// they are addressed to target.
type fakeServer struct {
	t      *testing.T
	ln     net.Listener
	rt     *router.Router
	roots  *x509.CertPool
	target netip.Addr

	status    int   // answer with this error status instead of 200
	silent    bool  // neither advertise nor answer anything
	dropEvery int64 // drop every n-th echo request (0: none)

	echoes atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

var (
	testPrefix = netip.MustParsePrefix("2001:db8:6::/64")
	testHost   = netip.MustParseAddr("2001:db8:6::1")
	testTarget = netip.MustParseAddr("2001:db8:7::2")
)

func newFakeServer(t *testing.T, setup func(*fakeServer)) *fakeServer {
	t.Helper()
	cert, err := pki.Server(nil, pki.Options{CommonName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(router.Config{Prefix: testPrefix, HostAddrs: []netip.Addr{testHost}})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, rt: rt, roots: x509.NewCertPool(), target: testTarget, conns: map[net.Conn]struct{}{}}
	s.roots.AddCert(cert.Cert)
	if setup != nil {
		setup(s)
	}
	s.ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert.TLS()}})
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Go(s.accept)
	t.Cleanup(func() {
		s.ln.Close()
		s.closeConns()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() netip.AddrPort {
	return netip.MustParseAddrPort(s.ln.Addr().String())
}

func (s *fakeServer) dialer(t *testing.T, timeout time.Duration) *Dialer {
	t.Helper()
	d, err := NewDialer(Config{Server: s.addr(), Roots: s.roots, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (s *fakeServer) accept() {
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

// closeConns closes every connection the server holds.
func (s *fakeServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// port is the router's view of a connection.
type port struct{ ob *wire.Outbox }

func (p port) Send(pkt []byte) bool { return p.ob.Append(pkt) == nil }

func (s *fakeServer) serve(c net.Conn) {
	r := wire.NewReader(c, 0)
	req, err := r.ReadRequest(0)
	if err != nil {
		return
	}
	if s.status != 0 || req.Method != http.MethodPost || req.Path != DefaultPath {
		c.Write(wire.AppendError(nil, max(s.status, http.StatusNotFound), "fake", time.Now()))
		return
	}
	if _, err := c.Write(wire.AppendResponse(nil, "fake", time.Now())); err != nil {
		return
	}
	ob := wire.NewOutbox(0)
	cl := s.rt.Attach(port{ob})
	defer s.rt.Detach(cl)
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
	if !s.silent {
		s.rt.Advertise(cl)
	}
	for {
		pkt, err := r.Next()
		if err != nil {
			return
		}
		if s.silent {
			continue
		}
		if s.rt.FromClient(cl, pkt) == router.ToHost {
			if reply := s.answer(pkt); reply != nil {
				s.rt.FromHost(reply)
			}
		}
	}
}

// answer turns an echo request to the target into its reply, as the
// target's kernel would; nil for anything else and for dropped requests.
func (s *fakeServer) answer(pkt []byte) []byte {
	if typ, ok := packet.ICMPv6Type(pkt); !ok || typ != packet.TypeEchoRequest || packet.Dst(pkt) != s.target {
		return nil
	}
	if n := s.echoes.Add(1); s.dropEvery > 0 && n%s.dropEvery == 0 {
		return nil
	}
	reply := append([]byte(nil), pkt...)
	copy(reply[8:24], pkt[24:40])
	copy(reply[24:40], pkt[8:24])
	reply[packet.HeaderLen] = packet.TypeEchoReply
	packet.SetICMPv6Checksum(reply)
	return reply
}

// waitOwner waits until the router has registered a for some client.
func (s *fakeServer) waitOwner(t *testing.T, a netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := s.rt.Owner(a); ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the router never registered %v", a)
}
