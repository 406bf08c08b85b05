package paths

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/winerr"
)

// round is one Connect of the Selector: which methods run, which one
// carries the traffic, which failed. Only its loop goroutine touches it.
type round struct {
	s       *Selector
	l       hostside.Link
	log     *slog.Logger
	events  chan event
	runs    []*run // the running methods' sessions
	failed  []bool // failed in this round (cleared for a recheck)
	active  int    // the method carrying traffic, -1 for none
	upEver  bool
	last    error  // the last failure
	probing []bool // a probe of that (worse) method is running
}

// run is one session of a method.
type run struct {
	cancel  context.CancelFunc
	started time.Time
	link    *methodLink
	up      bool
	stopped string // why the selector stopped it ("" when it ended on its own)
	gaveUp  error  // set when it was not up within its budget
}

// event is what a method's session reports to the loop.
type event struct {
	i      int
	ended  bool // else: it attached a sender (it is up)
	probe  bool // a probe of a worse method finished (err: its result)
	sender hostside.Sender
	err    error
}

// Prober is a method that can tell whether it would work without coming
// up (IP-HTTPS: connect, TLS, the POST's 200). While a better method
// carries the traffic, the worse ones that can are probed, so that `show
// paths` says why each would or would not work (Windows qualifies
// IP-HTTPS next to Teredo for the same reason).
type Prober interface {
	Probe(ctx context.Context, log *slog.Logger) error
}

// probeTimeout bounds one probe.
const probeTimeout = 30 * time.Second

// budgetCheck is how often the budgets of methods still trying are
// checked.
const budgetCheck = 250 * time.Millisecond

func (r *round) loop(ctx context.Context) (bool, error) {
	r.advance(ctx, "start")
	recheck := time.NewTicker(r.s.o.Recheck)
	defer recheck.Stop()
	budgets := time.NewTicker(budgetCheck)
	defer budgets.Stop()
	for {
		if r.running() == 0 {
			// Every method failed (advance started nothing more).
			return r.upEver, fmt.Errorf("%w: %w", errAllFailed, r.last)
		}
		select {
		case <-ctx.Done():
			r.stopAll("the client stops or starts a new round")
			r.drain()
			return r.upEver, nil
		case ev := <-r.events:
			switch {
			case ev.probe:
				r.probeDone(ev)
			case ev.ended:
				r.ended(ctx, ev)
			default:
				r.attached(ctx, ev)
			}
		case <-budgets.C:
			r.checkBudgets()
			r.advance(ctx, "hold-back")
		case <-recheck.C:
			if r.active > 0 {
				for i := 0; i < r.active; i++ {
					r.failed[i] = false
				}
				r.advance(ctx, "periodic re-check of the better methods")
			}
			r.probeWorse(ctx)
		}
	}
}

// running is the number of methods with a session.
func (r *round) running() int {
	n := 0
	for _, ru := range r.runs {
		if ru != nil {
			n++
		}
	}
	return n
}

// advance starts the best method that may start: not while a better one is
// still trying, nothing worse than the one carrying traffic, nothing that
// failed in this round.
func (r *round) advance(ctx context.Context, why string) {
	// trying is the earliest start of a better method still trying.
	var trying time.Time
	for i, m := range r.s.o.Methods {
		if r.active >= 0 && i >= r.active {
			return
		}
		if ru := r.runs[i]; ru != nil {
			if trying.IsZero() || ru.started.Before(trying) {
				trying = ru.started
			}
			continue
		}
		if r.failed[i] {
			continue
		}
		if !trying.IsZero() {
			// A better method still tries: this one holds back, for its
			// HoldBack at most (0: until the better ones have failed).
			if m.HoldBack <= 0 || time.Since(trying) < m.HoldBack {
				return
			}
			why = fmt.Sprintf("the better methods still try after %v", m.HoldBack)
		}
		r.start(ctx, i, m, why)
		return
	}
}

func (r *round) start(ctx context.Context, i int, m Method, why string) {
	mctx, cancel := context.WithCancel(ctx)
	ml := &methodLink{r: r, i: i, parent: r.l, host: &hostView{s: r.s, i: i, Host: r.l.Host()}}
	r.runs[i] = &run{cancel: cancel, started: time.Now(), link: ml}
	r.s.mu.Lock()
	r.s.shadows[i].State = "" // up again only when this session says so
	r.s.mu.Unlock()
	now := time.Now()
	r.s.setPath(i, func(p *status.Path) { p.State, p.LastTried, p.Reason = StateTrying, now, "" })
	r.log.Info("path: trying "+m.Name, "reason", why)
	go func() {
		_, err := m.Transport.Connect(mctx, ml)
		r.events <- event{i: i, ended: true, err: err}
	}()
}

// attached: method i is up. The best method up carries the traffic.
func (r *round) attached(ctx context.Context, ev event) {
	ru := r.runs[ev.i]
	if ru == nil {
		return
	}
	ru.up = true
	if ev.i == r.active {
		r.l.Attach(ev.sender) // the method in use has a new sender
		return
	}
	if r.active >= 0 && ev.i > r.active {
		// A worse method that started alongside came up after a better
		// one: it is not needed.
		r.stop(ev.i, r.s.o.Methods[r.active].Name+" is up")
		return
	}
	prev := r.active
	r.active = ev.i
	r.upEver = true
	r.l.Attach(ev.sender)
	now := time.Now()
	r.s.mu.Lock()
	r.s.upSince = now
	r.s.mu.Unlock()
	name := r.s.o.Methods[ev.i].Name
	r.s.setPath(ev.i, func(p *status.Path) {
		p.Active, p.State, p.UpSince, p.Code, p.Reason = true, StateActive, now, "0x0", ""
	})
	if prev >= 0 {
		r.log.Info("path: traffic now over "+name, "was", r.s.o.Methods[prev].Name, "reason", name+" is better and came up")
		r.stop(prev, name+" is better and took over")
	} else {
		r.log.Info("path: traffic now over "+name, "after", time.Since(ru.started).Round(time.Millisecond))
	}
	for j := ev.i + 1; j < len(r.runs); j++ {
		if r.runs[j] != nil {
			r.stop(j, name+" is up")
		}
	}
	r.publish()
	r.probeWorse(ctx)
}

// probeWorse probes the methods worse than the one carrying the traffic
// that can be probed and are not probed already.
func (r *round) probeWorse(ctx context.Context) {
	if r.active < 0 {
		return
	}
	for j := r.active + 1; j < len(r.runs); j++ {
		p, ok := r.s.o.Methods[j].Transport.(Prober)
		if !ok || r.runs[j] != nil || r.probing[j] {
			continue
		}
		r.probing[j] = true
		now := time.Now()
		r.s.setPath(j, func(p *status.Path) { p.LastTried = now })
		log := r.log.With("path", r.s.o.Methods[j].Name)
		go func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			err := p.Probe(pctx, log)
			cancel()
			r.events <- event{i: j, probe: true, err: err}
		}()
	}
}

// probeDone records a probe's result: the method stands by, or why it
// would fail.
func (r *round) probeDone(ev event) {
	r.probing[ev.i] = false
	if r.runs[ev.i] != nil {
		return // it started meanwhile: its session says more
	}
	code, text := describeErr(ev.err)
	if ev.err == nil {
		r.s.setPath(ev.i, func(p *status.Path) {
			p.State, p.Code, p.Status, p.Reason = StateStandby, "0x0", "would connect", "a better method carries the traffic"
		})
	} else {
		r.s.setPath(ev.i, func(p *status.Path) { p.State, p.Code, p.Status, p.Reason = StateFailed, code, "probe failed", text })
		r.log.Info("path: "+r.s.o.Methods[ev.i].Name+" would not work", "code", code, "err", ev.err)
	}
	r.publish()
}

// ended: method i's session returned.
func (r *round) ended(ctx context.Context, ev event) {
	ru := r.runs[ev.i]
	r.runs[ev.i] = nil
	if ru != nil {
		ru.link.host.release()
	}
	name := r.s.o.Methods[ev.i].Name
	wasActive := r.active == ev.i
	if wasActive {
		r.active = -1
		r.l.Detach()
		r.s.mu.Lock()
		r.s.upSince = time.Time{}
		r.s.mu.Unlock()
	}
	if ru != nil && ru.stopped != "" && ctx.Err() == nil {
		r.s.setPath(ev.i, func(p *status.Path) { p.Active, p.State, p.Reason = false, StateStopped, ru.stopped })
		r.publish()
		return
	}
	if ctx.Err() != nil {
		r.s.setPath(ev.i, func(p *status.Path) { p.Active, p.State = false, StateWaiting })
		return
	}
	err := ev.err
	if ru != nil && ru.gaveUp != nil {
		err = ru.gaveUp
	}
	if err == nil {
		err = winerr.Errorf(winerr.ConnAborted, "%s ended", name)
	}
	r.failed[ev.i], r.last = true, err
	code, text := describeErr(err)
	r.s.setPath(ev.i, func(p *status.Path) { p.Active, p.State, p.Code, p.Reason = false, StateFailed, code, text })
	if wasActive {
		r.log.Warn("path: "+name+" failed while carrying traffic; trying the next method", "code", code, "err", err)
		r.advance(ctx, name+" failed ("+code+")")
	} else {
		// A method trying to come up (or a better one re-checked) failed:
		// the next one in order may start, never one worse than the
		// method in use.
		r.log.Info("path: "+name+" failed", "code", code, "err", err)
		r.advance(ctx, name+" failed ("+code+")")
	}
	r.publish()
}

// stop ends method i's session because of why (not a failure).
func (r *round) stop(i int, why string) {
	if ru := r.runs[i]; ru != nil && ru.stopped == "" {
		ru.stopped = why
		ru.cancel()
	}
}

func (r *round) stopAll(why string) {
	for i := range r.runs {
		r.stop(i, why)
	}
}

// drain waits for every session to return, releasing what each held.
func (r *round) drain() {
	for r.running() > 0 || slices.Contains(r.probing, true) {
		ev := <-r.events
		if ev.probe {
			r.probing[ev.i] = false
			continue
		}
		if ev.ended && r.runs[ev.i] != nil {
			r.runs[ev.i].link.host.release()
			r.runs[ev.i] = nil
		}
	}
	if r.active >= 0 {
		r.l.Detach()
		r.active = -1
	}
}

// checkBudgets gives up a method that is not up within its budget: its
// session is cancelled and counted as failed (ended).
func (r *round) checkBudgets() {
	for i, ru := range r.runs {
		b := r.s.o.Methods[i].Budget
		if ru == nil || ru.up || ru.stopped != "" || ru.gaveUp != nil || b <= 0 || time.Since(ru.started) < b {
			continue
		}
		ru.gaveUp = winerr.Errorf(winerr.TimedOut, "%s was not up within its %v", r.s.o.Methods[i].Name, b)
		ru.cancel()
	}
}

// publish puts the methods' states into the host side's status.
func (r *round) publish() {
	paths := r.s.pathsCopy()
	r.l.Update(func(st *status.Interface) { st.Paths = paths })
}
