// Package client is the Teredo client (RFC 4380 with the RFC 5991 address
// rules), a transport of the iphttps client's host side (client.Transport):
// it qualifies with a Teredo server, tells the NAT type in the words Windows
// uses, configures the Teredo address on the host, carries the host's IPv6
// packets over UDP to Teredo peers and relays (bubbles, the direct
// connectivity test), and keeps its NAT mapping fresh. docs/teredo.md
// (section "Client") describes the procedure, the budgets and the counters.
// Probe runs the same qualification without a host, step by step, for
// `iphttps diagnose`.
package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/teredo/peer"
	"github.com/iphttps/iphttps/internal/udpbatch"
	"github.com/iphttps/iphttps/internal/winerr"
)

// DefaultRefreshInterval is the client refresh interval of RFC 4380 section
// 5.2 and Windows' default.
const DefaultRefreshInterval = 30 * time.Second

// Peer list bounds of a client: Miredo's client limit without Judy arrays;
// a DirectAccess client talks to a handful of peers.
const (
	maxPeers   = 1024
	queueBytes = peer.DefaultQueueBytes
)

// Options configure a Teredo client.
type Options struct {
	// Server is the primary Teredo server: an IPv4 literal or a DNS name
	// (resolved to IPv4 at every qualification).
	Server string
	// Secondary is the server's second address; invalid: the primary + 1,
	// the convention of DirectAccess and Miredo servers.
	Secondary netip.Addr
	// ClientPort is the local UDP port; 0: one chosen by the kernel.
	ClientPort uint16
	// RefreshInterval is how long the client may go without hearing from
	// its server before it solicits it again; 0: 30 s. The wait is drawn
	// anew each time between 75 and 100 % of it.
	RefreshInterval time.Duration
	// Lab lets documentation addresses (192.0.2.0/24, 198.51.100.0/24,
	// 203.0.113.0/24) count as global, for the lab and the tests.
	Lab bool
	// Resolver resolves a server name; nil: net.DefaultResolver.
	Resolver *net.Resolver
	// Log receives the client's log; nil: the link's.
	Log *slog.Logger
}

// Netsh's words for a Teredo client (`netsh interface teredo show state`).
const (
	StateOffline          = "offline"
	StateProbePrimary     = "probe (primary server)"
	StateProbeSecondary   = "probe (secondary server)"
	StateQualified        = "qualified"
	NATNone               = "none (global connectivity)"
	NATCone               = "cone"
	NATRestricted         = "restricted"
	NATSymmetric          = "symmetric"
	InterfaceQualified    = "Teredo client qualified"
	ErrorNone             = "none"
	ErrorPrimary          = "primary server unreachable over UDP"
	ErrorSecondary        = "secondary server unreachable over UDP"
	ErrorSymmetric        = "symmetric NAT"
	ErrorResolve          = "server name cannot be resolved"
	ErrorServerNotGlobal  = "server address is not global"
	ErrorMappingNotGlobal = "server reported a mapping that is not global"
	ErrorPort             = "client port cannot be opened"
	ErrorAdapter          = "failed to configure the tunnel adapter"
	ErrorSocket           = "UDP socket failure"
)

// Errors of Connect, each wrapped with detail and a Windows code; tell
// them apart with errors.Is.
var (
	ErrPrimaryUnreachable   = errors.New("the primary Teredo server does not answer over UDP")
	ErrSecondaryUnreachable = errors.New("the secondary Teredo server address does not answer over UDP")
	ErrSymmetricNAT         = errors.New("the NAT is symmetric")
	ErrMappingNotGlobal     = errors.New("the server saw this client at an address that is not global")
)

// budgets are the qualification and maintenance timers (docs/teredo.md,
// "Client"); tests shorten them.
type budgets struct {
	// primaryWaits: a cone and a non-cone solicitation go to the primary
	// address, then the client waits this long before the next pair.
	primaryWaits []time.Duration
	// coneGrace is how long after the non-cone advertisement the client
	// still waits for the cone test's answer: twice that exchange's round
	// trip, within these bounds.
	coneGraceMin, coneGraceMax time.Duration
	// secondaryWaits: a non-cone solicitation goes to the secondary
	// address, then the client waits this long before the next.
	secondaryWaits []time.Duration
	// refreshWait and refreshTries: an unanswered refresh is repeated
	// refreshTries times, refreshWait apart, before the session fails.
	refreshWait  time.Duration
	refreshTries int
	// statusEvery is how often the peer count in the status is updated.
	statusEvery time.Duration
}

var defaultBudgets = budgets{
	primaryWaits:   []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second},
	coneGraceMin:   250 * time.Millisecond,
	coneGraceMax:   time.Second,
	secondaryWaits: []time.Duration{2 * time.Second, 2 * time.Second},
	refreshWait:    4 * time.Second,
	refreshTries:   3,
	statusEvery:    5 * time.Second,
}

// Transport is a Teredo client; one session (Connect) runs at a time.
type Transport struct {
	o       Options
	literal netip.Addr // Server when it is an IPv4 literal
	b       budgets
	c       counters
	cur     atomic.Pointer[session] // the running session, for Counters

	mu   sync.Mutex
	last identity // the address of the last session, kept for the same mapping
}

// New checks o and returns a transport; nothing touches the system until
// Connect.
func New(o Options) (*Transport, error) {
	t := &Transport{o: o, b: defaultBudgets}
	if o.Server == "" {
		return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: no Teredo server configured")
	}
	if a, err := netip.ParseAddr(o.Server); err == nil {
		if !a.Is4() {
			return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: the server %s is not an IPv4 address (Teredo runs over IPv4)", o.Server)
		}
		if err := checkGlobal("server", a, o.Lab); err != nil {
			return nil, err
		}
		t.literal = a
	} else if !validName(o.Server) {
		return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: the server %q is neither an IPv4 address nor a host name", o.Server)
	}
	if o.Secondary.IsValid() {
		if o.Secondary == t.literal {
			return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: the secondary server address %v is the primary's: the NAT tests need two addresses", o.Secondary)
		}
		if !o.Secondary.Is4() {
			return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: the secondary server address %v is not an IPv4 address", o.Secondary)
		}
		if err := checkGlobal("secondary server", o.Secondary, o.Lab); err != nil {
			return nil, err
		}
	}
	switch {
	case o.RefreshInterval == 0:
		t.o.RefreshInterval = DefaultRefreshInterval
	case o.RefreshInterval < time.Second || o.RefreshInterval > time.Hour:
		return nil, winerr.Errorf(winerr.InvalidParameter, "teredo: refresh interval %v out of range (1 s to 1 h; default 30 s)", o.RefreshInterval)
	}
	return t, nil
}

func checkGlobal(what string, a netip.Addr, lab bool) error {
	if teredo.IsGlobalUnicast(a, lab) {
		return nil
	}
	hint := ""
	if teredo.IsDocumentation(a) {
		hint = " (documentation addresses count as global only in lab mode)"
	}
	return winerr.Errorf(winerr.InvalidParameter, "teredo: the %s address %v is not a global unicast IPv4 address%s", what, a, hint)
}

// validName reports whether s looks like a DNS host name.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// Name is the transport's name in logs.
func (t *Transport) Name() string { return "Teredo" }

// identity is a qualified client's address and what it is made of.
type identity struct {
	addr    netip.Addr     // the Teredo address
	server  netip.Addr     // the server in it
	mapping netip.AddrPort // the NAT mapping in it
	flags   uint16
}

// session is one Connect: a socket, a qualification and the qualified life.
type session struct {
	qualifier // the socket, the server's addresses, the answers
	t         *Transport
	l         hostside.Link

	pc *ipv4.PacketConn
	// gso and gro: the socket's UDP segmentation and receive offload
	// (udpbatch.Offload).
	gso, gro bool

	me    atomic.Pointer[identity] // nil until qualified
	peers atomic.Pointer[peer.List]

	replies replyLimiter
}

// datagram is a copy of a datagram for the control goroutine.
type datagram struct {
	b    []byte
	from netip.AddrPort
	at   time.Time
}

// InitStatus names the interface as Windows names the Teredo adapter and
// shows the client offline until its first qualification (the host side
// calls it once, before the first Connect).
func (t *Transport) InitStatus(st *status.Interface) {
	st.Name, st.URL = "Teredo Tunneling Pseudo-Interface", ""
	st.TeredoClient = &status.TeredoState{
		Type: "client", ServerName: t.o.Server, RefreshInterval: int(t.o.RefreshInterval / time.Second),
		ClientPort: t.clientPort(), State: StateOffline, Error: ErrorNone,
	}
}

func (t *Transport) clientPort() string {
	if t.o.ClientPort != 0 {
		return strconv.Itoa(int(t.o.ClientPort))
	}
	return "unspecified"
}

// RequalifyOnNetworkChange asks the host side to end the session and
// qualify again at once when the network changes: the NAT mapping, and
// with it the Teredo address, may have changed.
func (t *Transport) RequalifyOnNetworkChange() bool { return true }

// Connect qualifies with the server and, once qualified, carries packets
// until ctx ends or the server is lost (client.Transport).
func (t *Transport) Connect(ctx context.Context, l hostside.Link) (up bool, err error) {
	s := &session{t: t, l: l, qualifier: newQualifier(&t.c, t.b, t.o.Log, t.o.Lab)}
	if s.log == nil {
		s.log = l.Log()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.peers.Store(peer.New(maxPeers, queueBytes))
	t.cur.Store(s)
	defer func() {
		t.cur.Store(nil)
		t.c.retire(s.peers.Load())
	}()

	port := t.clientPort()
	l.Update(func(st *status.Interface) {
		st.State, st.NextRetry, st.Server = "LinkDown", time.Time{}, ""
		st.TeredoClient = &status.TeredoState{
			Type: "client", ServerName: t.o.Server, RefreshInterval: int(t.o.RefreshInterval / time.Second),
			ClientPort: port, State: StateProbePrimary, ClientType: "teredo client", Network: "unmanaged",
		}
	})
	t.c.add(&t.c.sessions, 1)

	up, err = s.run(ctx)
	if ctx.Err() != nil {
		s.offline(ErrorNone)
		return up, nil
	}
	return up, err
}

// run is Connect after the status is set: every failure path sets the
// status's error itself.
func (s *session) run(ctx context.Context) (bool, error) {
	primary, secondary, err := s.t.servers(ctx)
	if err != nil {
		what := ErrorResolve
		if winerr.Classify(err) == winerr.InvalidParameter {
			what = ErrorServerNotGlobal
		}
		return false, s.fail(what, err)
	}
	s.primary, s.secondary = netip.AddrPortFrom(primary, teredo.Port), netip.AddrPortFrom(secondary, teredo.Port)
	s.l.Update(func(st *status.Interface) {
		st.Server = s.primary.String()
		s.teredo(st, func(ts *status.TeredoState) { ts.Server, ts.Secondary = primary.String(), secondary.String() })
	})

	if err := s.open(ctx); err != nil {
		return false, s.fail(ErrorPort, err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		if err := s.read(); err != nil {
			s.readErr <- err
		}
	}()
	up := false
	defer func() {
		if up {
			s.l.Detach()
		}
		s.conn.Close()
		<-readDone
		if me := s.me.Load(); me != nil {
			if err := s.l.Host().DelAddr(netip.PrefixFrom(me.addr, 128)); err != nil {
				s.log.Warn("cannot remove the Teredo address", "addr", me.addr, "err", err)
			}
		}
	}()

	res, err := s.qualify(ctx)
	if err != nil {
		return false, err // the status's error is set
	}
	if err := s.configure(res); err != nil {
		return up, s.fail(ErrorAdapter, err)
	}
	up = true
	return up, s.maintain(ctx)
}

// servers returns the server's primary address (resolved) and secondary
// address (Options.Secondary, or the primary + 1), both global and
// different. The errors carry 0x57 (InvalidParameter) for an address that
// is not global, the resolver's code for a name that does not resolve.
func (t *Transport) servers(ctx context.Context) (primary, secondary netip.Addr, err error) {
	primary, err = t.resolve(ctx)
	if err != nil {
		return primary, secondary, err
	}
	secondary = t.o.Secondary
	if !secondary.IsValid() {
		secondary = primary.Next()
		if err := checkGlobal("secondary server (the primary + 1)", secondary, t.o.Lab); err != nil {
			return primary, secondary, err
		}
	}
	if secondary == primary {
		return primary, secondary, winerr.Errorf(winerr.InvalidParameter,
			"teredo: the secondary server address %v is the primary's: the NAT tests need two addresses", secondary)
	}
	return primary, secondary, nil
}

// resolve returns the primary server's IPv4 address.
func (t *Transport) resolve(ctx context.Context) (netip.Addr, error) {
	if t.literal.IsValid() {
		return t.literal, nil
	}
	r := t.o.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(rctx, "ip4", t.o.Server)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return netip.Addr{}, winerr.Errorf(winerr.HostNotFound, "teredo: the server name %s does not resolve to an IPv4 address: %w", t.o.Server, err)
		}
		return netip.Addr{}, winerr.Errorf(winerr.Classify(err), "teredo: cannot resolve the server name %s: %w", t.o.Server, err)
	}
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			if err := checkGlobal("server ("+t.o.Server+")", a, t.o.Lab); err != nil {
				return netip.Addr{}, err
			}
			return a, nil
		}
	}
	return netip.Addr{}, winerr.Errorf(winerr.NoData, "teredo: the server name %s has no IPv4 address", t.o.Server)
}

// open opens the client's UDP socket (qualifier.open) and sets it up for
// the data path.
func (s *session) open(ctx context.Context) error {
	if err := s.qualifier.open(ctx, s.t.o.ClientPort); err != nil {
		return err
	}
	udpbatch.SetBuffers(s.conn, udpbatch.SocketBuffer)
	s.pc = ipv4.NewPacketConn(s.conn)
	s.gso, s.gro = udpbatch.Offload(s.conn)
	s.l.Update(func(st *status.Interface) {
		s.teredo(st, func(ts *status.TeredoState) { ts.LocalMapping = s.local.String() })
	})
	s.log.Info("Teredo client starting", "server", s.t.o.Server, "primary", s.primary.Addr(), "secondary", s.secondary.Addr(), "local", s.local)
	return nil
}

// teredo changes the Teredo state in st: a copy, since readers of the
// status hold the old pointer without the lock.
func (s *session) teredo(st *status.Interface, fn func(*status.TeredoState)) {
	var ts status.TeredoState
	if st.TeredoClient != nil {
		ts = *st.TeredoClient
	}
	fn(&ts)
	st.TeredoClient = &ts
}

// probe shows the qualification's progress.
func (s *session) probe(state string) {
	s.l.Update(func(st *status.Interface) {
		s.teredo(st, func(ts *status.TeredoState) { ts.State, ts.Error = state, "" })
	})
}

// offline shows the client offline with Windows' error line.
func (s *session) offline(why string) {
	s.l.Update(func(st *status.Interface) {
		s.teredo(st, func(ts *status.TeredoState) { ts.State, ts.Error, ts.Peers = StateOffline, why, 0 })
	})
}

// fail shows the client offline with why and returns err.
func (s *session) fail(why string, err error) error {
	s.offline(why)
	return err
}

// configure puts the qualified address and the routes on the host and
// starts carrying packets.
func (s *session) configure(res Qualification) error {
	id := s.t.identityFor(res.Advertisement)
	h := s.l.Host()
	if err := h.AddAddr(netip.PrefixFrom(id.addr, 128), 0, 0, false); err != nil {
		return winerr.Errorf(winerr.InstallFailure, "teredo: cannot add the address %v to %s: %w", id.addr, h.Describe(), err)
	}
	s.me.Store(&id)
	want := append([]netip.Prefix{teredo.Prefix}, s.l.Routes()...)
	var routes []string
	for _, p := range want {
		p = p.Masked()
		if slices.Contains(routes, p.String()) {
			continue
		}
		if err := h.ReplaceRoute(p); err != nil {
			s.log.Warn("cannot install route", "route", p, "err", err)
			continue
		}
		routes = append(routes, p.String())
	}
	s.l.Attach(&sender{s: s, batch: udpbatch.Batch{GSO: s.gso}})
	s.lastServer.Store(time.Now().UnixNano())
	now := time.Now()
	s.l.Update(func(st *status.Interface) {
		st.State, st.LastErrorCode, st.LastError = "LinkUp", winerr.Success, ""
		st.InterfaceStatus, st.Since, st.NextRetry = InterfaceQualified, now, time.Time{}
		st.Prefix = res.Advertisement.Prefix.String()
		st.Addresses = []string{netip.PrefixFrom(id.addr, 128).String()}
		st.Routes = routes
		s.teredo(st, func(ts *status.TeredoState) {
			ts.State, ts.Error = StateQualified, ""
			ts.NAT, ts.NATSpecialBehaviour = res.NAT, SpecialBehaviour(s.local, id.mapping)
			ts.ExternalNATMapping, ts.Address = id.mapping.String(), id.addr.String()
			ts.LastRefresh = now
		})
	})
	s.t.c.add(&s.t.c.qualifications, 1)
	s.log.Info("Teredo client qualified", "address", id.addr, "nat", res.NAT, "mapping", id.mapping,
		"local", s.local, "routes", routes)
	return nil
}

// SpecialBehaviour is netsh's "NAT Special Behaviour" line: iphttps never
// asks UPnP; the port is preserved when the mapping keeps the local port.
func SpecialBehaviour(local, mapping netip.AddrPort) string {
	pp := "No"
	if local.Port() == mapping.Port() {
		pp = "Yes"
	}
	return "UPNP: No, PortPreserving: " + pp
}

// identityFor returns the address a session qualified by adv takes: the
// previous session's when the server and mapping are the same (sockets
// bound to it survive the reconnect), otherwise one with new random flags
// (RFC 5991: new flags for every new mapping).
func (t *Transport) identityFor(adv teredo.Advertisement) identity {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last.addr.IsValid() && t.last.server == adv.Server && t.last.mapping == adv.Mapping {
		return t.last
	}
	t.last = newIdentity(adv)
	return t.last
}

func newIdentity(adv teredo.Advertisement) identity {
	var r [2]byte
	rand.Read(r[:])
	flags := teredo.RandomFlags(binary.BigEndian.Uint16(r[:]))
	return identity{
		addr:    teredo.Address{Server: adv.Server, Flags: flags, Mapped: adv.Mapping}.IPv6(),
		server:  adv.Server,
		mapping: adv.Mapping,
		flags:   flags,
	}
}

// renumber moves the client to the address of a new mapping (a refresh
// found the NAT changed it): new flags, new address, a new peer list (the
// peers knew the old mapping).
func (s *session) renumber(adv teredo.Advertisement) error {
	old := s.me.Load()
	id := newIdentity(adv)
	h := s.l.Host()
	if err := h.AddAddr(netip.PrefixFrom(id.addr, 128), 0, 0, false); err != nil {
		return winerr.Errorf(winerr.InstallFailure, "teredo: cannot add the new address %v to %s: %w", id.addr, h.Describe(), err)
	}
	s.me.Store(&id)
	s.t.mu.Lock()
	s.t.last = id
	s.t.mu.Unlock()
	if old != nil {
		if err := h.DelAddr(netip.PrefixFrom(old.addr, 128)); err != nil {
			s.log.Warn("cannot remove the old Teredo address", "addr", old.addr, "err", err)
		}
	}
	s.t.c.retire(s.peers.Swap(peer.New(maxPeers, queueBytes)))
	s.t.c.add(&s.t.c.mappingChanges, 1)
	s.l.Update(func(st *status.Interface) {
		st.Prefix = adv.Prefix.String()
		st.Addresses = []string{netip.PrefixFrom(id.addr, 128).String()}
		s.teredo(st, func(ts *status.TeredoState) {
			ts.ExternalNATMapping, ts.Address = id.mapping.String(), id.addr.String()
			ts.NATSpecialBehaviour = SpecialBehaviour(s.local, id.mapping)
			ts.Peers = 0
		})
	})
	var oldAddr netip.Addr
	var oldMapping netip.AddrPort
	if old != nil {
		oldAddr, oldMapping = old.addr, old.mapping
	}
	s.log.Info("Teredo mapping changed: new address", "old_mapping", oldMapping, "mapping", id.mapping,
		"old_address", oldAddr, "address", id.addr)
	return nil
}

// Counters returns the client's counters since New, named for `show
// statistics` (the caller adds a "teredo/" prefix): the drops by reason
// ("drop_"+reason), the qualification and maintenance events, the packets
// each way and the peer list's.
func (t *Transport) Counters() map[string]uint64 {
	var cur *peer.List
	if s := t.cur.Load(); s != nil {
		cur = s.peers.Load()
	}
	return t.c.snapshot(cur)
}

// fmtDur formats a duration for messages.
func fmtDur(d time.Duration) string { return fmt.Sprint(d.Round(time.Millisecond)) }
