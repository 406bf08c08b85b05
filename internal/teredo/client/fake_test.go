package client

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/status"
)

// fakeHost is a test double of the host side's end of the tunnel: it
// records the addresses and routes put on it and the packets written to it.
type fakeHost struct {
	mu     sync.Mutex
	addrs  map[netip.Prefix]bool
	routes map[netip.Prefix]bool
	events []string
	in     chan []byte
	closed chan struct{}
	once   sync.Once
}

func newFakeHost() *fakeHost {
	return &fakeHost{addrs: map[netip.Prefix]bool{}, routes: map[netip.Prefix]bool{}, in: make(chan []byte, 1024), closed: make(chan struct{})}
}

func (h *fakeHost) Read([][]byte, []int, int) (int, error) {
	<-h.closed
	return 0, os.ErrClosed
}

func (h *fakeHost) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		select {
		case h.in <- append([]byte(nil), b[offset:]...):
		default:
			return 0, fmt.Errorf("fake host: receive queue full")
		}
	}
	return len(bufs), nil
}

func (h *fakeHost) BatchSize() int   { return 1 }
func (h *fakeHost) Describe() string { return "fake0" }
func (h *fakeHost) Offloaded() bool  { return false }
func (h *fakeHost) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

func (h *fakeHost) note(format string, args ...any) {
	h.events = append(h.events, fmt.Sprintf(format, args...))
}

func (h *fakeHost) AddAddr(addr netip.Prefix, valid, preferred time.Duration, prefixRoute bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addrs[addr] = true
	h.note("add %v", addr)
	return nil
}

func (h *fakeHost) DelAddr(addr netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.addrs, addr)
	h.note("del %v", addr)
	return nil
}

func (h *fakeHost) ReplaceRoute(dst netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes[dst] = true
	h.note("route %v", dst)
	return nil
}

func (h *fakeHost) DelRoute(dst netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.routes, dst)
	h.note("delroute %v", dst)
	return nil
}

// state returns the addresses and routes on the host.
func (h *fakeHost) state() (addrs, routes []netip.Prefix) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for a := range h.addrs {
		addrs = append(addrs, a)
	}
	for r := range h.routes {
		routes = append(routes, r)
	}
	return addrs, routes
}

// next waits for a packet written to the host.
func (h *fakeHost) next(t *testing.T, within time.Duration) []byte {
	t.Helper()
	select {
	case p := <-h.in:
		return p
	case <-time.After(within):
		t.Fatalf("nothing was written to the host within %v", within)
		return nil
	}
}

// fakeLink is a test double of the host side (client.Link).
type fakeLink struct {
	host   *fakeHost
	routes []netip.Prefix
	log    *slog.Logger
	st     status.Holder

	mu       sync.Mutex
	sender   hostside.Sender
	attached int
	detached int
	states   []string // the Teredo states shown, in order, without repeats
	rxPkts   int
	rxBytes  int
}

func newFakeLink(t *testing.T, routes ...netip.Prefix) *fakeLink {
	return &fakeLink{host: newFakeHost(), routes: routes, log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}

func (l *fakeLink) Host() hostside.Host { return l.host }

func (l *fakeLink) Attach(s hostside.Sender) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sender = s
	l.attached++
}

func (l *fakeLink) Detach() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sender = nil
	l.detached++
}

func (l *fakeLink) Update(fn func(*status.Interface)) {
	l.st.Update(func(s *status.Interface) {
		fn(s)
		if s.TeredoClient == nil {
			return
		}
		l.mu.Lock()
		if n := len(l.states); n == 0 || l.states[n-1] != s.TeredoClient.State {
			l.states = append(l.states, s.TeredoClient.State)
		}
		l.mu.Unlock()
	})
}

func (l *fakeLink) Received(pkts, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rxPkts += pkts
	l.rxBytes += bytes
}

func (l *fakeLink) Routes() []netip.Prefix { return l.routes }
func (l *fakeLink) Log() *slog.Logger      { return l.log }

// send hands packets to the attached sender, as the host side's reader does.
func (l *fakeLink) send(t *testing.T, pkts ...[]byte) (int, int) {
	t.Helper()
	l.mu.Lock()
	s := l.sender
	l.mu.Unlock()
	if s == nil {
		t.Fatal("no sender attached")
	}
	return s.Send(pkts)
}

func (l *fakeLink) status() status.Interface { return l.st.Get() }

func (l *fakeLink) teredo() status.TeredoState {
	s := l.st.Get()
	if s.TeredoClient == nil {
		return status.TeredoState{}
	}
	return *s.TeredoClient
}

func (l *fakeLink) stateHistory() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.states...)
}
