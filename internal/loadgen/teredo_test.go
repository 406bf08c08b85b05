package loadgen

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/teredo"
	teredosrv "github.com/iphttps/iphttps/internal/teredo/server"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
)

var teredoServerAddr = netip.MustParseAddr("203.0.113.10")

// teredoNS makes a namespace with the Teredo server's two addresses and
// 198.51.100.0/24 local as a whole (clients may bind any address in it);
// it returns the namespace and a Listen that opens sockets there.
func teredoNS(t *testing.T) (string, func(netip.AddrPort) (*net.UDPConn, error)) {
	ns := netnstest.New(t, "iptl-", "runs Teredo clients and a Teredo server in a namespace")
	for _, a := range []string{"203.0.113.10/32", "203.0.113.11/32"} {
		netnstest.IP(t, ns, "addr", "add", a, "dev", "lo")
	}
	netnstest.IP(t, ns, "route", "add", "local", "198.51.100.0/24", "dev", "lo")
	listen := func(laddr netip.AddrPort) (c *net.UDPConn, err error) {
		err = lab.Do(ns, func() error {
			c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(laddr))
			return err
		})
		return c, err
	}
	return ns, listen
}

// locals returns n client addresses, 198.51.100.1 and on.
func locals(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)})
	}
	return out
}

// TestTeredoQualifyLoad: 1,000 Teredo clients, each on a socket of its own
// spread over 100 addresses, qualify against iphttps's Teredo server (the
// package the server runs with --teredo) with no solicitation lost and
// every advertisement carrying the client's own mapping.
func TestTeredoQualifyLoad(t *testing.T) {
	ns, listen := teredoNS(t)
	var srv *teredosrv.Server
	netnstest.Do(t, ns, func() error {
		var err error
		srv, err = teredosrv.New(teredosrv.Options{Primary: teredoServerAddr, Lab: true, Log: slog.New(slog.DiscardHandler)})
		return err
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	const clients = 1000
	var mu sync.Mutex
	mappings := map[netip.AddrPort]bool{}
	rep, err := RunTeredo(t.Context(), TeredoOptions{
		Server: teredoServerAddr, Locals: locals(100), Clients: clients, Concurrency: 64,
		NoNAT: true, Lab: true,
		Listen: func(laddr netip.AddrPort) (*net.UDPConn, error) {
			c, err := listen(laddr)
			if err == nil {
				mu.Lock()
				mappings[c.LocalAddr().(*net.UDPAddr).AddrPort()] = true
				mu.Unlock()
			}
			return c, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d clients, concurrency %d: %d qualified, %d failed, %d solicitations, %d lost, in %.3f s (%.0f/s); time p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms",
		rep.Clients, rep.Concurrency, rep.Qualified, rep.Failed, rep.Solicitations, rep.Lost, rep.Seconds, rep.PerSecond,
		rep.Time.P50, rep.Time.P90, rep.Time.P99, rep.Time.Max)
	if rep.Qualified != clients || rep.Failed != 0 || rep.Lost != 0 || rep.BadAnswers != 0 || rep.Solicitations != clients || len(rep.Errors) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Time.N != clients || rep.Time.P50 <= 0 || rep.Time.P99 < rep.Time.P50 {
		t.Errorf("time distribution %+v", rep.Time)
	}
	c := srv.Counters()
	if c["solicitations"] != clients || c["datagrams_sent"] != clients {
		t.Errorf("server counters %v: want %d solicitations answered", c, clients)
	}
	// show clients lists each mapping once (a closed client's port may be
	// taken again by a later one on the same address).
	if n := len(srv.Clients()); n != len(mappings) {
		t.Errorf("the server lists %d clients, want the %d mappings used", n, len(mappings))
	}
}

// TestTeredoQualifyFailures: a server that never answers costs every
// attempt of every client, counted as lost; one that answers with the
// wrong mapping fails each client at once as a bad answer.
func TestTeredoQualifyFailures(t *testing.T) {
	_, listen := teredoNS(t)
	// A fake server on the primary address: it answers each solicitation
	// with an advertisement that names the wrong mapping.
	fake, err := listen(netip.AddrPortFrom(teredoServerAddr, teredo.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := fake.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			d, err := teredo.Parse(buf[:n])
			if err != nil {
				continue
			}
			wrong := netip.AddrPortFrom(from.Addr().Unmap(), from.Port()+1)
			ra, err := teredo.AppendRA(nil, d.Nonce, wrong, teredo.RSSourceNonCone, teredoServerAddr)
			if err == nil {
				fake.WriteToUDPAddrPort(ra, from)
			}
		}
	}()
	rep, err := RunTeredo(t.Context(), TeredoOptions{
		Server: teredoServerAddr, Locals: locals(4), Clients: 20, Concurrency: 5, NoNAT: true, Lab: true, Listen: listen,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Qualified != 0 || rep.Failed != 20 || rep.BadAnswers != 20 || rep.Lost != 0 || rep.Solicitations != 20 ||
		len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0], "mapping") {
		t.Errorf("wrong mapping: report %+v", rep)
	}

	// Nothing listens on the secondary address: every attempt is lost.
	silent := netip.MustParseAddr("203.0.113.11")
	rep, err = RunTeredo(t.Context(), TeredoOptions{
		Server: silent, Locals: locals(2), Clients: 6, Concurrency: 6, Timeout: 100 * time.Millisecond, Attempts: 2,
		NoNAT: true, Lab: true, Listen: listen,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Qualified != 0 || rep.Failed != 6 || rep.Solicitations != 12 || rep.Lost != 12 || rep.Time.N != 0 {
		t.Errorf("silent server: report %+v", rep)
	}
}

func TestTeredoOptions(t *testing.T) {
	for _, o := range []TeredoOptions{
		{Clients: 1, Concurrency: 1},
		{Server: netip.MustParseAddr("2001:db8::1"), Clients: 1, Concurrency: 1},
		{Server: teredoServerAddr, Clients: 0, Concurrency: 1},
		{Server: teredoServerAddr, Clients: 1, Concurrency: 0},
		{Server: teredoServerAddr, Clients: 1, Concurrency: 1, Locals: []netip.Addr{netip.MustParseAddr("2001:db8::2")}},
		{Server: teredoServerAddr, Clients: 1, Concurrency: 1, NoNAT: true},
	} {
		if _, err := RunTeredo(context.Background(), o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	o, err := TeredoOptions{Server: teredoServerAddr, Clients: 1, Concurrency: 1}.check()
	if err != nil || o.Timeout != DefaultTeredoTimeout || o.Attempts != DefaultTeredoAttempts || o.Listen == nil {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// A failure error names the client and wraps ErrTeredoQualify.
func TestTeredoQualifyError(t *testing.T) {
	_, listen := teredoNS(t)
	o, err := TeredoOptions{Server: teredoServerAddr, Clients: 1, Concurrency: 1, Timeout: 50 * time.Millisecond, Attempts: 1,
		Locals: locals(1), Listen: listen}.check()
	if err != nil {
		t.Fatal(err)
	}
	r := qualifyOne(t.Context(), o, 7, make([]byte, 2048))
	if !errors.Is(r.err, ErrTeredoQualify) || !strings.Contains(r.err.Error(), "client 7") || r.lost != 1 {
		t.Errorf("result %+v", r)
	}
}
