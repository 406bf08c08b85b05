package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestDialRegistersAndTrickles(t *testing.T) {
	srv := newFakeServer(t, nil)
	d := srv.dialer(t, 5*time.Second)
	ctx := t.Context()
	s, err := d.Dial(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Prefix != testPrefix || !testPrefix.Contains(s.Addr) || s.Addr == testHost {
		t.Fatalf("prefix %v, address %v", s.Prefix, s.Addr)
	}
	if !s.LinkLocal.IsLinkLocalUnicast() {
		t.Fatalf("link-local %v", s.LinkLocal)
	}
	tm := s.Timing
	if tm.Connect <= 0 || tm.TLS < tm.Connect || tm.Response < tm.TLS || tm.RA < tm.Response {
		t.Fatalf("timings not increasing: %+v", tm)
	}
	if s.TLS == "" {
		t.Error("no TLS version recorded")
	}
	// The server registers the address from the DAD probe.
	srv.waitOwner(t, s.Addr)

	res := s.Trickle(ctx, EchoOptions{Target: testTarget, Interval: 5 * time.Millisecond, Count: 40}, time.Now())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Sent != 40 || res.Received != 40 || res.Lost() != 0 || len(res.RTTs) != 40 || res.Duplicates != 0 || res.Unmatched != 0 {
		t.Fatalf("echo result %+v", res)
	}
	for _, rtt := range res.RTTs {
		if rtt <= 0 || rtt > 5*time.Second {
			t.Fatalf("implausible RTT %v", rtt)
		}
	}
}

func TestTrickleCountsLoss(t *testing.T) {
	srv := newFakeServer(t, func(s *fakeServer) { s.dropEvery = 4 })
	d := srv.dialer(t, 5*time.Second)
	s, err := d.Dial(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	res := s.Trickle(t.Context(), EchoOptions{Target: testTarget, Interval: time.Millisecond, Count: 20, Grace: 300 * time.Millisecond}, start)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Sent != 20 || res.Lost() != 5 || res.Received != 15 {
		t.Fatalf("got %+v, want 5 of 20 lost", res)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("trickle with loss took %v; the grace is 300ms", time.Since(start))
	}
}

func TestDialFailures(t *testing.T) {
	ctx := t.Context()
	phase := func(err error) string {
		var le *Error
		if !errors.As(err, &le) {
			t.Fatalf("error %v is not a *loadgen.Error", err)
		}
		return le.Phase
	}

	srv := newFakeServer(t, func(s *fakeServer) { s.status = 503 })
	_, err := srv.dialer(t, 5*time.Second).Dial(ctx, 0)
	if phase(err) != PhaseResponse {
		t.Errorf("503: %v", err)
	}

	silent := newFakeServer(t, func(s *fakeServer) { s.silent = true })
	start := time.Now()
	_, err = silent.dialer(t, 300*time.Millisecond).Dial(ctx, 0)
	if phase(err) != PhaseRA || !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Errorf("silent server: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("the handshake timeout of 300ms took %v", time.Since(start))
	}

	other := newFakeServer(t, nil)
	d, err := NewDialer(Config{Server: srv.Addr(), Roots: other.roots})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dial(ctx, 0); phase(err) != PhaseTLS {
		t.Errorf("untrusted certificate: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	d, err = NewDialer(Config{Server: closed, Roots: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dial(ctx, 0); phase(err) != PhaseConnect {
		t.Errorf("closed port: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestNewDialerChecks(t *testing.T) {
	pool := x509.NewCertPool()
	v4 := netip.MustParseAddrPort("192.0.2.1:443")
	for _, c := range []Config{
		{Roots: pool},
		{Server: v4},
		{Server: v4, Roots: pool, Sources: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
	} {
		if _, err := NewDialer(c); err == nil {
			t.Errorf("NewDialer(%+v) accepted", c)
		}
	}
	d, err := NewDialer(Config{Server: v4, Roots: pool, Sources: []netip.Addr{netip.MustParseAddr("192.0.2.2")}})
	if err != nil {
		t.Fatal(err)
	}
	if d.cfg.Host != "192.0.2.1" || d.cfg.Path != DefaultPath || d.cfg.Timeout != DefaultTimeout {
		t.Errorf("defaults not applied: %+v", d.cfg)
	}
}

// collect returns an emit function recording events, and a way to read them.
func collect() (func(Event), func() []Event) {
	ch := make(chan Event, 1000)
	return func(e Event) { ch <- e }, func() []Event {
		var out []Event
		for {
			select {
			case e := <-ch:
				out = append(out, e)
			default:
				return out
			}
		}
	}
}

func TestRunIdle(t *testing.T) {
	srv := newFakeServer(t, nil)
	d := srv.dialer(t, 5*time.Second)
	stop := make(chan struct{})
	events := make(chan Event, 1000)
	emit := func(e Event) {
		events <- e
		if e.Event == "up" {
			close(stop)
		}
	}
	rep, err := Run(t.Context(), d, RunOptions{Mode: ModeIdle, Sessions: 25, Concurrency: 4, Hold: time.Minute, Stop: stop, Progress: time.Millisecond}, emit)
	if err != nil {
		t.Fatal(err)
	}
	hs := rep.Handshake
	if hs.Attempted != 25 || hs.Completed != 25 || hs.Failed != 0 || hs.Total.N != 25 || hs.PerSecond <= 0 {
		t.Fatalf("handshakes %+v", hs)
	}
	if rep.Hold == nil || rep.Hold.Held != 25 || rep.Hold.Dropped != 0 || rep.Hold.Seconds > 30 {
		t.Fatalf("hold %+v", rep.Hold)
	}
	close(events)
	var names []string
	for e := range events {
		if e.Event != "progress" {
			names = append(names, e.Event)
		}
	}
	if len(names) != 2 || names[0] != "up" || names[1] != "done" {
		t.Fatalf("events %v, want up then done", names)
	}
}

func TestRunIdleCountsDrops(t *testing.T) {
	srv := newFakeServer(t, nil)
	d := srv.dialer(t, 5*time.Second)
	stop := make(chan struct{})
	emit := func(e Event) {
		if e.Event == "up" {
			go func() {
				srv.CloseConns()
				time.Sleep(200 * time.Millisecond)
				close(stop)
			}()
		}
	}
	rep, err := Run(t.Context(), d, RunOptions{Mode: ModeIdle, Sessions: 10, Concurrency: 10, Hold: time.Minute, Stop: stop}, emit)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Hold.Dropped != 10 || rep.Hold.Held != 0 || len(rep.Hold.Errors) == 0 {
		t.Fatalf("hold %+v, want all 10 dropped", rep.Hold)
	}
}

func TestRunHandshakeAndTrickle(t *testing.T) {
	srv := newFakeServer(t, nil)
	d := srv.dialer(t, 5*time.Second)
	emit, events := collect()
	rep, err := Run(t.Context(), d, RunOptions{Mode: ModeHandshake, Sessions: 40, Concurrency: 8}, emit)
	if err != nil {
		t.Fatal(err)
	}
	if hs := rep.Handshake; hs.Completed != 40 || hs.Failed != 0 || hs.Total.P99 < hs.Total.P50 || hs.Total.P50 <= 0 {
		t.Fatalf("handshakes %+v", hs)
	}
	if ev := events(); len(ev) != 2 || ev[1].Report == nil {
		t.Fatalf("events %+v", ev)
	}
	// Handshake sessions are closed: the server lets go of them.
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.Router.Clients()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(srv.Router.Clients()); n != 0 {
		t.Fatalf("%d clients still attached after the handshake run", n)
	}

	rep, err = Run(t.Context(), d, RunOptions{
		Mode: ModeTrickle, Sessions: 12, Concurrency: 4,
		Echo: EchoOptions{Target: testTarget, Interval: 10 * time.Millisecond, Count: 15},
	}, emit)
	if err != nil {
		t.Fatal(err)
	}
	e := rep.Echo
	if e == nil || e.Senders != 12 || e.Planned != 180 || e.Sent != 180 || e.Received != 180 || e.Lost != 0 || e.RTT.N != 180 || e.SendersFailed != 0 {
		t.Fatalf("echo %+v", e)
	}
	if rep.Baseline != nil {
		t.Fatal("baseline reported without being asked for")
	}
}

func TestRunOptionsChecked(t *testing.T) {
	d, err := NewDialer(Config{Server: netip.MustParseAddrPort("192.0.2.1:443"), Roots: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []RunOptions{
		{Mode: "busy", Sessions: 1, Concurrency: 1},
		{Mode: ModeHandshake, Sessions: 0, Concurrency: 1},
		{Mode: ModeHandshake, Sessions: 1},
		{Mode: ModeIdle, Sessions: 1, Concurrency: 1},
		{Mode: ModeTrickle, Sessions: 1, Concurrency: 1, Echo: EchoOptions{Target: testTarget, Interval: time.Second}},
		{Mode: ModeTrickle, Sessions: 1, Concurrency: 1, Echo: EchoOptions{Target: netip.MustParseAddr("192.0.2.9"), Interval: time.Second, Count: 1}},
	} {
		if _, err := Run(t.Context(), d, o, func(Event) {}); err == nil {
			t.Errorf("Run accepted %+v", o)
		}
	}
}

func TestKeyExchange(t *testing.T) {
	srv := newFakeServer(t, nil)
	v4 := srv.Addr()
	if _, err := NewDialer(Config{Server: v4, Roots: srv.roots, KeyExchange: "rsa"}); err == nil {
		t.Error("an unknown key exchange was accepted")
	}
	for _, c := range []struct {
		kx   string
		want tls.CurveID
	}{{"", tls.X25519}, {KeyExchangeWindows, tls.X25519}, {KeyExchangeGo, tls.X25519MLKEM768}} {
		d, err := NewDialer(Config{Server: v4, Roots: srv.roots, KeyExchange: c.kx})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", v4.String(), d.tls.Clone())
		if err != nil {
			t.Fatal(err)
		}
		got := conn.ConnectionState().CurveID
		conn.Close()
		if got != c.want {
			t.Errorf("key exchange %q negotiated %v, want %v", c.kx, got, c.want)
		}
	}
}
