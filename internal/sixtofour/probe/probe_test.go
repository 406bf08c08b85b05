package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/sixtofour"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/winerr"
)

var (
	local = netip.MustParseAddr("198.51.100.2")
	relay = netip.MustParseAddr("203.0.113.10")
)

// newNS is a namespace with the host's and the relay's addresses on its
// loopback: the kernel routes between them.
func newNS(t *testing.T) string {
	ns := netnstest.New(t, "ip6p-", "runs the 6to4 tests against a fake relay in a namespace")
	for _, a := range []netip.Addr{local, relay} {
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", a.String()+"/32", "dev", "lo")
	}
	return ns
}

// teredoServer answers router solicitations on the relay's UDP 3544 with
// an advertisement whose origin indication is seen (invalid: the real
// source).
func teredoServer(t *testing.T, ns string, seen netip.AddrPort) {
	var c *net.UDPConn
	netnstest.Do(t, ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay, teredo.Port)))
		return err
	})
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			d, err := teredo.Parse(buf[:n])
			if err != nil || !d.HasAuth {
				continue
			}
			origin := seen
			if !origin.IsValid() {
				origin = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			}
			ra, err := teredo.AppendRA(nil, d.Nonce, origin, packet.Src(d.IPv6), relay)
			if err == nil {
				c.WriteToUDPAddrPort(ra, from)
			}
		}
	}()
}

// echoRelay answers nonce echoes to the relay's 6to4 address over protocol
// 41, as the server's kernel does.
func echoRelay(t *testing.T, ns string) {
	var c *net.IPConn
	netnstest.Do(t, ns, func() error {
		var err error
		c, err = net.ListenIP("ip4:41", &net.IPAddr{IP: relay.AsSlice()})
		return err
	})
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromIP(buf) // without the IPv4 header
			if err != nil {
				return
			}
			p := buf[:n]
			if typ, ok := packet.ICMPv6Type(p); !ok || typ != packet.TypeEchoRequest || packet.Dst(p) != sixtofour.Address(relay) {
				continue
			}
			r := append([]byte(nil), p...)
			copy(r[8:24], p[24:40])
			copy(r[24:40], p[8:24])
			r[packet.HeaderLen] = packet.TypeEchoReply
			packet.SetICMPv6Checksum(r)
			c.WriteToIP(r, from)
		}
	}()
}

// The mapping test: not run without a Teredo server, passed when the
// server sees the local address; the reachability test answered by the
// relay, reading the socket itself (Reach).
func TestMappingAndReach(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	ctx := context.Background()
	netnstest.Do(t, ns, func() error {
		if a, err := Local(relay); err != nil || !a.Is4() {
			t.Errorf("Local: %v, %v", a, err)
		}
		m, err := Mapping(ctx, local, relay)
		if err != nil || m.Ran || !strings.Contains(m.NotRun, "no Teredo server at 203.0.113.10:3544") {
			t.Errorf("no server: %+v, %v", m, err)
		}
		return nil
	})
	teredoServer(t, ns, netip.AddrPort{})
	echoRelay(t, ns)
	netnstest.Do(t, ns, func() error {
		m, err := Mapping(ctx, local, relay)
		if err != nil || !m.Ran || m.Seen.Addr() != local || m.Server != netip.AddrPortFrom(relay, teredo.Port) || m.RTT <= 0 {
			t.Errorf("honest server: %+v, %v", m, err)
		}
		conn, err := Listen(local)
		if err != nil {
			return err
		}
		defer conn.Close()
		r, err := Reach(ctx, conn, local, relay)
		if err != nil || r.From != sixtofour.Address(relay) || r.Try != 1 {
			t.Errorf("Reach: %+v, %v", r, err)
		}
		return nil
	})
}

// A server that sees another address: behind a NAT (0x2743), naming both.
func TestMappingBehindNAT(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	seen := netip.MustParseAddrPort("192.0.2.102:40000")
	teredoServer(t, ns, seen)
	netnstest.Do(t, ns, func() error {
		m, err := Mapping(context.Background(), local, relay)
		if !errors.Is(err, ErrBehindNAT) || winerr.Classify(err) != winerr.NetUnreach || !m.Ran || m.Seen != seen ||
			!strings.Contains(err.Error(), "192.0.2.102") || !strings.Contains(err.Error(), local.String()) {
			t.Errorf("NAT: %+v, %v", m, err)
		}
		return nil
	})
}

// No echo comes back: 0x274c after 3 tries of 2 s.
func TestReachNoEcho(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	netnstest.Do(t, ns, func() error {
		conn, err := Listen(local)
		if err != nil {
			return err
		}
		defer conn.Close()
		start := time.Now()
		_, err = Reach(context.Background(), conn, local, relay)
		if !errors.Is(err, ErrNoEcho) || winerr.Classify(err) != winerr.TimedOut || !strings.Contains(err.Error(), "protocol 41 is blocked") {
			t.Errorf("Reach: %v", err)
		}
		if d := time.Since(start); d < Tries*Timeout || d > Tries*Timeout+time.Second {
			t.Errorf("gave up after %v", d)
		}
		return nil
	})
}
