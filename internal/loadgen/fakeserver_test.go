package loadgen

import (
	"crypto/x509"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/iphttps/iphttpstest"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/router"
)

// fakeServer is an in-process IP-HTTPS server for the tests
// (iphttpstest: TLS on loopback, the real router for Neighbor Discovery,
// address ownership and delivery). Instead of a TUN device it answers the
// echo requests the router hands to the host when they are addressed to
// target.
type fakeServer struct {
	*iphttpstest.Server
	roots  *x509.CertPool
	target netip.Addr

	status    int   // answer with this error status instead of 200
	silent    bool  // neither advertise nor answer anything
	dropEvery int64 // drop every n-th echo request (0: none)

	echoes atomic.Int64
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
	s := &fakeServer{roots: x509.NewCertPool(), target: testTarget}
	s.roots.AddCert(cert.Cert)
	if setup != nil {
		setup(s)
	}
	tc := cert.TLS()
	o := iphttpstest.Options{
		Cert:      &tc,
		Status:    s.status,
		Router:    router.Config{Prefix: testPrefix, HostAddrs: []netip.Addr{testHost}},
		Advertise: !s.silent,
		Host:      s.answer,
	}
	if s.silent {
		o.Script = func() [][]byte { return nil }
	}
	s.Server = iphttpstest.New(t, o)
	return s
}

func (s *fakeServer) dialer(t *testing.T, timeout time.Duration) *Dialer {
	t.Helper()
	d, err := NewDialer(Config{Server: s.Addr(), Roots: s.roots, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return d
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
		if _, ok := s.Router.Owner(a); ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the router never registered %v", a)
}
