// Package paths chooses between a DirectAccess client's methods: 6to4,
// then Teredo, then IP-HTTPS (the order is configurable), as Windows
// does, but never stuck on a dead method and always able to say why a
// method is or is not in use.
//
// A Selector is itself a transport (hostside.Transport) that runs the
// methods' transports on the one host side: one TUN device, one set of
// intranet routes. The rules:
//
//   - Methods start in order: a method starts when every better one has
//     failed in this round, or has been trying for the method's HoldBack
//     (Teredo starts alongside 6to4; IP-HTTPS holds back 10 s while Teredo
//     still qualifies). A method with a budget (Teredo: 30 s) that is not
//     up by then is given up.
//   - The best method up carries the traffic; a worse one that comes up
//     after it stops, and nothing worse starts while it carries.
//   - When it fails, the next method that has not failed in this round
//     starts at once; the failed one's addresses and routes go (a route
//     another method also holds stays).
//   - While a method that is not the best carries the traffic, the better
//     ones are tried again every Recheck: when one comes up, it takes the
//     traffic over and the worse one stops. The intranet routes stay on
//     the device through the switch.
//   - A network change starts a new round (RequalifyOnNetworkChange).
//   - When every method has failed, Connect returns the last error: the
//     host side waits its reconnect timer and starts a new round.
//
// Each switch is one log line with the reason; the status has every
// method's state (`iphttps show paths`), and the Teredo and 6to4 blocks
// of the methods that have them (`show teredo`, `show 6to4`).
package paths

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Method is one way to the DirectAccess server.
type Method struct {
	Name      string // "6to4", "Teredo", "IP-HTTPS"
	Transport hostside.Transport
	// Budget bounds how long the method may take to come up before it is
	// given up for this round (0: its own timeouts only).
	Budget time.Duration
	// HoldBack is how long the method waits for the better methods still
	// trying before it starts alongside them (0: until they have failed).
	// Teredo does not wait for 6to4 (they do not compete, and 6to4's
	// tests take seconds on a network that drops protocol 41); IP-HTTPS
	// holds back 10 s while Teredo qualifies, as Windows does.
	HoldBack time.Duration
}

// IPHTTPSHoldBack is how long IP-HTTPS waits for Teredo still qualifying
// before it qualifies too: Windows' IP-HTTPS waits at least 10 s.
const IPHTTPSHoldBack = 10 * time.Second

// StartAlongside is the HoldBack of a method that starts with the better
// ones (Teredo next to 6to4).
const StartAlongside = time.Nanosecond

// Options configure a Selector.
type Options struct {
	// Methods, the best first.
	Methods []Method
	// Recheck is how often the methods better than the one in use are
	// tried again (DefaultRecheck when 0).
	Recheck time.Duration
	Log     *slog.Logger
}

// DefaultRecheck is how often a better method is tried again while a
// worse one carries the traffic.
const DefaultRecheck = 5 * time.Minute

// TeredoBudget is how long Teredo may take to qualify before the next
// method starts: Windows gives up after about 30 s.
const TeredoBudget = 30 * time.Second

// Path states (status.Path.State).
const (
	StateActive  = "active"
	StateTrying  = "trying"
	StateFailed  = "failed"
	StateWaiting = "waiting"
	StateStopped = "stopped"
	StateStandby = "standby"
)

// Selector runs the methods (hostside.Transport).
type Selector struct {
	o Options

	mu      sync.Mutex
	paths   []status.Path      // each method's state
	shadows []status.Interface // each method's own view of the status
	routes  map[netip.Prefix]map[int]bool
	upSince time.Time // when the method carrying traffic came up
}

// New checks the options.
func New(o Options) (*Selector, error) {
	if len(o.Methods) == 0 {
		return nil, errors.New("paths: no method")
	}
	seen := map[string]bool{}
	for _, m := range o.Methods {
		if m.Transport == nil || m.Name == "" || seen[m.Name] {
			return nil, fmt.Errorf("paths: method %q given twice or without a transport", m.Name)
		}
		seen[m.Name] = true
	}
	if o.Recheck <= 0 {
		o.Recheck = DefaultRecheck
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Selector{o: o, paths: make([]status.Path, len(o.Methods)), shadows: make([]status.Interface, len(o.Methods)),
		routes: map[netip.Prefix]map[int]bool{}}
	for i, m := range o.Methods {
		s.paths[i] = status.Path{Method: m.Name, State: StateWaiting}
	}
	return s, nil
}

// Name is the selector's name in logs.
func (s *Selector) Name() string {
	names := make([]string, len(s.o.Methods))
	for i, m := range s.o.Methods {
		names[i] = m.Name
	}
	return strings.Join(names, ", then ")
}

// RequalifyOnNetworkChange: a network change starts a new round, from the
// best method.
func (s *Selector) RequalifyOnNetworkChange() bool { return true }

// InitStatus lets each method set what it owns (the Teredo and 6to4
// blocks) and lists the methods.
func (s *Selector) InitStatus(st *status.Interface) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := *st // each method starts from the daemon's fields, not another method's
	for i, m := range s.o.Methods {
		sh := base
		if in, ok := m.Transport.(hostside.StatusIniter); ok {
			in.InitStatus(&sh)
		}
		s.shadows[i] = sh
		mergeOwned(st, sh)
	}
	st.Name = "DirectAccess paths (" + s.Name() + ")"
	st.Paths = append([]status.Path(nil), s.paths...)
}

// mergeOwned copies into st the blocks a method owns in the status.
func mergeOwned(st *status.Interface, sh status.Interface) {
	if sh.TeredoClient != nil {
		st.TeredoClient = sh.TeredoClient
	}
	if sh.SixToFour != nil {
		st.SixToFour = sh.SixToFour
	}
}

// PrefixedCounters are the methods' own counters, named by method
// ("teredo/...", "6to4/...").
func (s *Selector) PrefixedCounters() map[string]uint64 {
	m := map[string]uint64{}
	for _, meth := range s.o.Methods {
		if c, ok := meth.Transport.(hostside.Counter); ok {
			prefix := strings.ToLower(meth.Transport.Name()) + "/"
			for k, v := range c.Counters() {
				m[prefix+k] = v
			}
		}
	}
	return m
}

// InterfaceCounters are the methods' counters that count under the
// interface's names (IP-HTTPS's).
func (s *Selector) InterfaceCounters() map[string]uint64 {
	m := map[string]uint64{}
	for _, meth := range s.o.Methods {
		if c, ok := meth.Transport.(hostside.InterfaceCounter); ok {
			for k, v := range c.InterfaceCounters() {
				m[k] += v
			}
		}
	}
	return m
}

// UpFor is how long the method carrying traffic has been up (the host
// side's reconnect timer restarts only after a link that was up a while).
func (s *Selector) UpFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upSince.IsZero() {
		return 0
	}
	return time.Since(s.upSince)
}

// setPath changes method i's state.
func (s *Selector) setPath(i int, fn func(*status.Path)) {
	s.mu.Lock()
	fn(&s.paths[i])
	s.mu.Unlock()
}

// pathsCopy is the methods' states for the status.
func (s *Selector) pathsCopy() []status.Path {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]status.Path(nil), s.paths...)
}

// Connect runs one round: the methods in order, until ctx ends (nil) or
// every method has failed (the last error).
func (s *Selector) Connect(ctx context.Context, l hostside.Link) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &round{s: s, l: l, log: s.o.Log, events: make(chan event, 4*len(s.o.Methods)),
		runs: make([]*run, len(s.o.Methods)), failed: make([]bool, len(s.o.Methods)),
		probing: make([]bool, len(s.o.Methods)), active: -1}
	for i := range s.o.Methods {
		s.setPath(i, func(p *status.Path) { p.Active, p.State = false, StateWaiting })
	}
	return r.loop(ctx)
}

// errAllFailed wraps the last method's error when every method failed.
var errAllFailed = errors.New("every method failed")

// describeErr is an error's code and text for the status and logs.
func describeErr(err error) (code, text string) {
	if err == nil {
		return "0x0", ""
	}
	return winerr.Hex(winerr.Classify(err)), err.Error()
}
