package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/tundev"
)

// The test's addresses: the server, three 6to4 clients, the intranet.
var (
	serverV4 = netip.MustParseAddr("203.0.113.10")
	clientV4 = []netip.Addr{
		netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3"), netip.MustParseAddr("198.51.100.4"),
	}
	intranet = netip.MustParsePrefix("2001:db8:c0::/64")
	host     = netip.MustParseAddr("2001:db8:c0::5")
)

// sixToFour computes a 6to4 address by hand (not with the package under
// test): 2002:WWXX:YYZZ::WWXX:YYZZ.
func sixToFour(v4 netip.Addr) netip.Addr {
	b4 := v4.As4()
	return netip.AddrFrom16([16]byte{0x20, 0x02, b4[0], b4[1], b4[2], b4[3], 10: 0, 12: b4[0], 13: b4[1], 14: b4[2], 15: b4[3]})
}

// ipv6 builds an IPv6 packet (UDP next header) with n payload bytes.
func ipv6(src, dst netip.Addr, n int) []byte {
	b := make([]byte, 40+n)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	b[6], b[7] = 17, 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	for i := 40; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

type fixture struct {
	t       *testing.T
	srv     *Server
	clients []*net.IPConn
	mu      sync.Mutex
	toHost  [][]byte
}

type funcWriter func([]byte)

func (w funcWriter) Add(p []byte) error { w(p); return nil }
func (w funcWriter) Flush() error       { return nil }

// newFixture runs the relay in a namespace of its own, with a raw
// protocol-41 socket for each client address: the clients are the test's
// own code, which the kernel gives the IPv4 header.
func newFixture(t *testing.T, o Options) *fixture {
	ns := netnstest.New(t, "ip6s-", "binds the 6to4 relay's raw socket in a namespace")
	for _, a := range append([]netip.Addr{serverV4}, clientV4...) {
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", a.String()+"/32", "dev", "lo")
	}
	f := &fixture{t: t}
	o.Address, o.Lab, o.Serves = serverV4, true, []netip.Prefix{intranet}
	o.Log = slog.New(slog.DiscardHandler)
	o.NewHostWriter = func() tundev.PacketWriter {
		return funcWriter(func(p []byte) {
			f.mu.Lock()
			f.toHost = append(f.toHost, bytes.Clone(p))
			f.mu.Unlock()
		})
	}
	netnstest.Do(t, ns, func() error {
		var err error
		if f.srv, err = New(o); err != nil {
			return err
		}
		for _, a := range clientV4 {
			c, err := net.ListenIP("ip4:41", &net.IPAddr{IP: a.AsSlice()})
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
			f.clients = append(f.clients, c)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return f
}

// send sends inner in protocol 41 from client i to the server.
func (f *fixture) send(i int, inner []byte) {
	f.t.Helper()
	if _, err := f.clients[i].WriteToIP(inner, &net.IPAddr{IP: serverV4.AsSlice()}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) waitCounter(name string, want uint64) {
	f.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for f.srv.Counters()[name] != want {
		if time.Now().After(deadline) {
			f.t.Fatalf("counter %s = %d, want %d (all: %v)", name, f.srv.Counters()[name], want, f.srv.Counters())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) hostPackets() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.toHost...)
}

// TestInbound: an honest client's packet reaches the host unchanged;
// spoofed, native, misaddressed and malformed ones are counted by reason
// and never reach it.
func TestInbound(t *testing.T) {
	f := newFixture(t, Options{})
	me := sixToFour(clientV4[0])
	good := ipv6(me, host, 100)
	f.send(0, good)
	f.waitCounter("packets_to_host", 1)
	bad := []struct {
		counter string
		pkt     []byte
	}{
		{"drop_source_spoofed", ipv6(sixToFour(clientV4[1]), host, 10)},
		{"drop_source_not_relay", ipv6(netip.MustParseAddr("2001:db8:99::1"), host, 10)},
		{"drop_destination_not_ours", ipv6(me, netip.MustParseAddr("2001:db8:99::1"), 10)},
		{"drop_destination_spoofed", ipv6(me, sixToFour(clientV4[2]), 10)},
		{"drop_source_not_routable", ipv6(netip.MustParseAddr("fe80::1"), host, 10)},
		{"drop_malformed_ipv6", ipv6(me, host, 10)[:45]},
	}
	for _, b := range bad {
		f.send(0, b.pkt)
		f.waitCounter(b.counter, 1)
	}
	f.send(0, good)
	f.waitCounter("packets_to_host", 2)
	got := f.hostPackets()
	if len(got) != 2 || !bytes.Equal(got[0], good) || !bytes.Equal(got[1], good) {
		t.Fatalf("host got %d packets, want the 2 honest ones unchanged", len(got))
	}
	// The server's own 6to4 address is served (the clients' path test).
	f.send(1, ipv6(sixToFour(clientV4[1]), sixToFour(serverV4), 8))
	f.waitCounter("packets_to_host", 3)
	cl := f.srv.Clients()
	if len(cl) != 2 {
		t.Fatalf("clients %+v, want 2", cl)
	}
	for _, c := range cl {
		v4 := netip.MustParseAddr(c.Remote)
		if c.Transport != "6to4" || len(c.Addresses) != 1 || c.Addresses[0] != sixToFour(v4).String() {
			t.Errorf("client %+v", c)
		}
		if v4 == clientV4[0] && c.PktsIn != 2 {
			t.Errorf("client %v: %d packets in, want the 2 accepted", v4, c.PktsIn)
		}
	}
}

// TestFromHost: the host's packets for a 6to4 address leave in protocol 41
// from the server's address to the address they embed; other destinations
// are not the relay's; a private embedded address is refused.
func TestFromHost(t *testing.T) {
	f := newFixture(t, Options{})
	dst := sixToFour(clientV4[2])
	p := ipv6(host, dst, 200)
	if !f.srv.FromHost(p) {
		t.Fatal("FromHost refused a 6to4 destination")
	}
	f.srv.FlushHost()
	buf := make([]byte, 2048)
	f.clients[2].SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := f.clients[2].Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	b := buf[:n]
	hl := int(b[0]&0x0f) * 4
	if b[0]>>4 != 4 || b[9] != 41 || netip.AddrFrom4([4]byte(b[12:16])) != serverV4 || netip.AddrFrom4([4]byte(b[16:20])) != clientV4[2] ||
		!bytes.Equal(b[hl:], p) {
		t.Fatalf("client got %x", b[:min(len(b), 60)])
	}
	if f.srv.FromHost(ipv6(sixToFour(serverV4), host, 8)) {
		t.Fatal("FromHost took a native destination")
	}
	if !f.srv.FromHost(ipv6(host, netip.MustParseAddr("2002:a00:1::a00:1"), 8)) {
		t.Fatal("FromHost did not take a 6to4 destination")
	}
	f.srv.FlushHost()
	f.waitCounter("drop_destination_not_public", 1)
	f.waitCounter("packets_sent", 1)
}

// TestClientTable: the table of clients is bounded; a client past the
// bound is counted, its packets still reach the host.
func TestClientTable(t *testing.T) {
	f := newFixture(t, Options{MaxPeers: 2})
	for i := range clientV4 {
		f.send(i, ipv6(sixToFour(clientV4[i]), host, 8))
	}
	f.waitCounter("packets_to_host", 3)
	f.waitCounter("drop_client_table_full", 1)
	if n := len(f.srv.Clients()); n != 2 {
		t.Fatalf("%d clients listed, want 2", n)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Address: netip.MustParseAddr("10.0.0.1")}, "not a public address"},
		{Options{Address: netip.MustParseAddr("192.0.2.1")}, "documentation"},
		{Options{Address: netip.MustParseAddr("192.0.2.1"), Lab: true}, "not on this host"},
	} {
		var err error
		ns := netnstest.New(t, "ip6n-", "binds a raw socket in a namespace")
		netnstest.Do(t, ns, func() error {
			_, err = New(c.o)
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%v): %v, want an error with %q", c.o.Address, err, c.want)
		}
	}
}
