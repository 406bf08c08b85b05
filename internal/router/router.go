package router

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/iphttps/iphttps/internal/packet"
)

// Router is the router of one IP-HTTPS link. Create it with New.
type Router struct {
	cfg     Config
	anycast netip.Addr // the prefix's Subnet-Router anycast address

	// raAllNodes is the Router Advertisement to ff02::1, built at New and
	// on a policy change; read-only.
	raAllNodes atomic.Pointer[[]byte]

	// mu guards owners, clients, nextID and retired, and every
	// Client.index; it is held for reading around every Port.Send so that
	// Detach waits for sends in flight.
	mu      sync.RWMutex
	owners  map[netip.Addr]*Client
	clients []*Client
	nextID  uint64
	retired countersTotal // counters of detached clients

	counters routerCounters

	// The policy a reload may change; cfg holds the values at New.
	authMode atomic.Int32 // a Mode
	isolate  atomic.Bool
}

// New checks cfg, applies its defaults and returns a router with no
// clients.
func New(cfg Config) (*Router, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	r := &Router{
		cfg:     cfg,
		anycast: cfg.Prefix.Addr(),
		owners:  make(map[netip.Addr]*Client),
	}
	r.authMode.Store(int32(cfg.Mode))
	r.isolate.Store(cfg.IsolateClients)
	if err := r.buildRA(); err != nil {
		return nil, err
	}
	return r, nil
}

// mode is the authentication mode in force.
func (r *Router) mode() Mode { return Mode(r.authMode.Load()) }

// SetPolicy changes the authentication mode and client isolation of a
// running router. [MS-IPHTTPS] 3.2.5 wants every client disconnected when the
// mode changes: that is the caller's part.
func (r *Router) SetPolicy(m Mode, isolate bool) error {
	if m != ModeNone && m != ModeCertificates {
		return fmt.Errorf("router: unknown authentication mode %d", m)
	}
	oldMode, oldIsolate := r.authMode.Swap(int32(m)), r.isolate.Swap(isolate)
	if err := r.buildRA(); err != nil {
		r.authMode.Store(oldMode)
		r.isolate.Store(oldIsolate)
		return err
	}
	return nil
}

// buildRA builds the Router Advertisement to ff02::1 for the policy in force.
func (r *Router) buildRA() error {
	ra, err := r.BuildRA(packet.AllNodes())
	if err != nil {
		return fmt.Errorf("router: config does not give a valid Router Advertisement: %w", err)
	}
	r.raAllNodes.Store(&ra)
	return nil
}

// Config returns the router's configuration with defaults applied and the
// policy in force.
func (r *Router) Config() Config {
	cfg := r.cfg
	cfg.Mode, cfg.IsolateClients = r.mode(), r.isolate.Load()
	cfg.HostAddrs = slices.Clone(cfg.HostAddrs)
	cfg.Routes = slices.Clone(cfg.Routes)
	return cfg
}

// Attach adds a client connected through p, which must not be nil.
func (r *Router) Attach(p Port) *Client {
	if p == nil {
		panic("router: Attach with a nil Port")
	}
	c := &Client{port: p}
	c.addrs.Store(new([]netip.Addr))
	r.mu.Lock()
	r.nextID++
	c.id = r.nextID
	c.index = len(r.clients)
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	return c
}

// Detach removes c and frees every address it owns, so other clients may
// claim them. Later packets from c are dropped (DropDetached); once Detach
// returns, c's Port is never called again. Detaching twice is harmless.
func (r *Router) Detach(c *Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.detached.Load() {
		return
	}
	c.detached.Store(true)
	for _, a := range *c.addrs.Load() {
		if r.owners[a] == c {
			delete(r.owners, a)
		}
	}
	c.addrs.Store(new([]netip.Addr))
	c.last.Store(nil)

	last := len(r.clients) - 1
	moved := r.clients[last]
	r.clients[c.index] = moved
	moved.index = c.index
	r.clients[last] = nil
	r.clients = r.clients[:last]

	r.retired.add(&c.counters)
}

// Owner returns the client that owns a, if any.
func (r *Router) Owner(a netip.Addr) (*Client, bool) {
	c := r.ownerOf(a.WithZone(""))
	return c, c != nil
}

// Clients returns the attached clients.
func (r *Router) Clients() []*Client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.clients)
}

// sendLocked hands pkt to c's port and counts the outcome. r.mu must be
// held for reading.
func (r *Router) sendLocked(c *Client, pkt []byte) bool {
	if c.detached.Load() {
		return false
	}
	if !c.port.Send(pkt) {
		c.counters.txDropped.Add(1)
		r.drop(DropQueueFull)
		return false
	}
	c.counters.txPackets.Add(1)
	c.counters.txBytes.Add(uint64(len(pkt)))
	return true
}

// send hands pkt to c's port.
func (r *Router) send(c *Client, pkt []byte) bool {
	r.mu.RLock()
	ok := r.sendLocked(c, pkt)
	r.mu.RUnlock()
	return ok
}

// flood hands pkt to every client but except (which may be nil).
func (r *Router) flood(pkt []byte, except *Client) {
	r.counters.flooded.Add(1)
	r.mu.RLock()
	for _, c := range r.clients {
		if c != except {
			r.sendLocked(c, pkt)
		}
	}
	r.mu.RUnlock()
}
