package paths

import (
	"log/slog"
	"net/netip"
	"slices"
	"time"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
)

// methodLink is the host side as one method's session sees it: its sender
// reaches the host's packets only while it carries the traffic, its
// status is its own until it does, its addresses and routes are counted
// so that they can go when it ends without taking another method's.
type methodLink struct {
	r      *round
	i      int
	parent hostside.Link
	host   *hostView
	// Guarded by the Selector's mu: the session's sender, and whether the
	// round was told the method is up.
	sender hostside.Sender
	toldUp bool
}

func (ml *methodLink) Host() hostside.Host { return ml.host }

// A method is up when it has attached its sender and its status says
// LinkUp (IP-HTTPS attaches before its address is configured; Teredo and
// 6to4 just before they report it): then, and only then, the round hears
// of it and decides whether it carries the traffic.

// Attach records the method's sender.
func (ml *methodLink) Attach(snd hostside.Sender) {
	s := ml.r.s
	s.mu.Lock()
	ml.sender = snd
	ml.toldUp = false
	up := s.shadows[ml.i].State == linkUp
	s.mu.Unlock()
	if up {
		ml.tellUp()
	}
}

// tellUp tells the round the method is up (once per LinkUp).
func (ml *methodLink) tellUp() {
	s := ml.r.s
	s.mu.Lock()
	snd, told := ml.sender, ml.toldUp
	if snd != nil {
		ml.toldUp = true
	}
	s.mu.Unlock()
	if snd != nil && !told {
		ml.r.events <- event{i: ml.i, sender: snd}
	}
}

// linkUp is the interface state a transport reports once packets flow.
const linkUp = "LinkUp"

// Detach is the method saying it can no longer carry packets: its session
// is ending, which the round learns when Connect returns.
func (ml *methodLink) Detach() {}

// Update applies fn to the method's own view of the status; the blocks it
// owns (Teredo, 6to4) go to the daemon's status at once, the interface's
// common fields only while it carries the traffic.
func (ml *methodLink) Update(fn func(*status.Interface)) {
	s := ml.r.s
	s.mu.Lock()
	sh := s.shadows[ml.i]
	fn(&sh)
	s.shadows[ml.i] = sh
	p := &s.paths[ml.i]
	p.Code = winerr.Hex(sh.LastErrorCode)
	p.Status = ownStatus(sh)
	active := p.Active
	paths := append([]status.Path(nil), s.paths...)
	if sh.State != linkUp {
		ml.toldUp = false
	}
	s.mu.Unlock()
	ml.parent.Update(func(st *status.Interface) {
		mergeOwned(st, sh)
		if active {
			st.Name, st.State, st.InterfaceStatus = sh.Name, sh.State, sh.InterfaceStatus
			st.LastErrorCode, st.LastError = sh.LastErrorCode, sh.LastError
			st.Server, st.Prefix, st.Addresses, st.Routes = sh.Server, sh.Prefix, sh.Addresses, sh.Routes
			st.Since, st.NextRetry = sh.Since, time.Time{}
		}
		st.Paths = paths
	})
	if sh.State == linkUp {
		ml.tellUp()
	}
}

// ownStatus is a method's state in the words of its own interface.
func ownStatus(sh status.Interface) string {
	switch {
	case sh.SixToFour != nil:
		return "6to4 Service State " + sh.SixToFour.ServiceState + ", " + sh.SixToFour.State
	case sh.TeredoClient != nil:
		t := sh.TeredoClient.Normalized()
		if t.State == "offline" {
			return "Teredo State offline, Error " + t.Error
		}
		return "Teredo State " + t.State
	}
	return sh.InterfaceStatus
}

func (ml *methodLink) Received(pkts, bytes int) { ml.parent.Received(pkts, bytes) }
func (ml *methodLink) Routes() []netip.Prefix   { return ml.parent.Routes() }
func (ml *methodLink) Log() *slog.Logger {
	return ml.parent.Log().With("path", ml.r.s.o.Methods[ml.i].Name)
}

// hostView is the host as one method sees it: addresses and routes are
// recorded per method, and a route stays on the device while any method
// holds it.
type hostView struct {
	hostside.Host
	s     *Selector
	i     int
	addrs []netip.Prefix
}

func (h *hostView) AddAddr(a netip.Prefix, valid, preferred time.Duration, linkLocal bool) error {
	if err := h.Host.AddAddr(a, valid, preferred, linkLocal); err != nil {
		return err
	}
	h.s.mu.Lock()
	if !slices.Contains(h.addrs, a) {
		h.addrs = append(h.addrs, a)
	}
	h.s.mu.Unlock()
	return nil
}

func (h *hostView) DelAddr(a netip.Prefix) error {
	h.s.mu.Lock()
	h.addrs = slices.DeleteFunc(h.addrs, func(q netip.Prefix) bool { return q == a })
	h.s.mu.Unlock()
	return h.Host.DelAddr(a)
}

func (h *hostView) ReplaceRoute(dst netip.Prefix) error {
	if err := h.Host.ReplaceRoute(dst); err != nil {
		return err
	}
	h.s.mu.Lock()
	if h.s.routes[dst] == nil {
		h.s.routes[dst] = map[int]bool{}
	}
	h.s.routes[dst][h.i] = true
	h.s.mu.Unlock()
	return nil
}

func (h *hostView) DelRoute(dst netip.Prefix) error {
	h.s.mu.Lock()
	holders := h.s.routes[dst]
	delete(holders, h.i)
	keep := len(holders) > 0
	if !keep {
		delete(h.s.routes, dst)
	}
	h.s.mu.Unlock()
	if keep {
		return nil // another method still routes it
	}
	return h.Host.DelRoute(dst)
}

// release takes off what the method's ended session left on the host:
// its addresses, and the routes no other method holds.
func (h *hostView) release() {
	h.s.mu.Lock()
	addrs := h.addrs
	h.addrs = nil
	var drop []netip.Prefix
	for dst, holders := range h.s.routes {
		if holders[h.i] {
			delete(holders, h.i)
			if len(holders) == 0 {
				delete(h.s.routes, dst)
				drop = append(drop, dst)
			}
		}
	}
	h.s.mu.Unlock()
	log := h.s.o.Log
	for _, a := range addrs {
		if err := h.Host.DelAddr(a); err != nil {
			log.Warn("path: cannot remove an address of an ended method", "addr", a, "err", err)
		}
	}
	for _, dst := range drop {
		if err := h.Host.DelRoute(dst); err != nil {
			log.Warn("path: cannot remove a route of an ended method", "route", dst, "err", err)
		}
	}
}
