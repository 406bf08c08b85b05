package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what a run does with its sessions.
type Mode string

// Run modes.
const (
	// ModeIdle opens the sessions and holds them, reading and discarding,
	// until told to stop.
	ModeIdle Mode = "idle"
	// ModeHandshake opens the sessions as fast as the concurrency allows
	// and closes each once its handshake is done.
	ModeHandshake Mode = "handshake"
	// ModeTrickle opens the sessions, then each sends a steady trickle of
	// echo requests through the tunnel.
	ModeTrickle Mode = "trickle"
)

// ParseMode parses idle, handshake or trickle.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeIdle, ModeHandshake, ModeTrickle:
		return m, nil
	}
	return "", fmt.Errorf("loadgen: mode %q: want idle, handshake or trickle", s)
}

// maxSampleErrors bounds the distinct error messages a report keeps.
const maxSampleErrors = 5

// RunOptions describe one run.
type RunOptions struct {
	Mode Mode
	// Sessions is the number of sessions to open.
	Sessions int
	// Concurrency bounds the handshakes in progress at once.
	Concurrency int
	// Hold is the longest an idle run holds its sessions once all are up;
	// Stop ends the hold earlier.
	Hold time.Duration
	Stop <-chan struct{}
	// Echo is the trickle every session sends (trickle mode).
	Echo EchoOptions
	// Baseline, if not nil, is a trickle sent alongside from a raw socket,
	// outside the tunnel (trickle mode; see Ping).
	Baseline *EchoOptions
	// Progress is the interval of progress events while sessions open;
	// 0 means none.
	Progress time.Duration
}

func (o RunOptions) check() (RunOptions, error) {
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return o, err
	}
	if o.Sessions <= 0 {
		return o, fmt.Errorf("loadgen: %d sessions: want at least one", o.Sessions)
	}
	if o.Concurrency <= 0 {
		return o, fmt.Errorf("loadgen: concurrency %d: want at least one", o.Concurrency)
	}
	if o.Mode == ModeIdle && o.Hold <= 0 {
		return o, errors.New("loadgen: an idle run needs a positive hold time")
	}
	if o.Mode == ModeTrickle {
		var err error
		if o.Echo, err = o.Echo.check(); err != nil {
			return o, err
		}
		if o.Baseline != nil {
			b, err := o.Baseline.check()
			if err != nil {
				return o, fmt.Errorf("baseline: %w", err)
			}
			o.Baseline = &b
		}
	}
	return o, nil
}

// Event is what Run reports as it goes: "progress" while sessions open,
// "up" once every session was tried, "done" with the final report.
type Event struct {
	Event  string    `json:"event"`
	At     time.Time `json:"at"`
	Opened int       `json:"opened"`
	Failed int       `json:"failed"`
	Report *Report   `json:"report,omitempty"`
	// CPUSeconds and RSSBytes are the load generator process's CPU time
	// so far and resident memory, for an emitter that reports them; Run
	// leaves them zero.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	RSSBytes   uint64  `json:"rss_bytes,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Mode      Mode            `json:"mode"`
	Handshake HandshakeReport `json:"handshake"`
	Hold      *HoldReport     `json:"hold,omitempty"`
	Echo      *EchoReport     `json:"echo,omitempty"`
	Baseline  *EchoReport     `json:"baseline,omitempty"`
	Seconds   float64         `json:"seconds"`
}

// HandshakeReport describes how the sessions opened. The distributions are
// of the time from the start of a dial to each step's completion (Total:
// the Router Advertisement, the whole handshake).
type HandshakeReport struct {
	Attempted      int            `json:"attempted"`
	Completed      int            `json:"completed"`
	Failed         int            `json:"failed"`
	Concurrency    int            `json:"concurrency"`
	Seconds        float64        `json:"seconds"`
	PerSecond      float64        `json:"per_second"`
	Total          Dist           `json:"total"`
	Connect        Dist           `json:"connect"`
	TLS            Dist           `json:"tls"`
	Response       Dist           `json:"response"`
	TLSVersion     string         `json:"tls_version,omitempty"`
	UnsolicitedRAs int            `json:"unsolicited_ras"`
	FailedByPhase  map[string]int `json:"failed_by_phase,omitempty"`
	Errors         []string       `json:"errors,omitempty"`
}

// HoldReport describes an idle hold.
type HoldReport struct {
	Seconds   float64  `json:"seconds"`
	Held      int      `json:"held"`    // sessions still open at the end
	Dropped   int      `json:"dropped"` // sessions whose connection failed while held
	PacketsIn int      `json:"packets_in"`
	Errors    []string `json:"errors,omitempty"`
}

// EchoReport sums the echo results of several senders.
type EchoReport struct {
	Senders         int      `json:"senders"`
	Interval        string   `json:"interval"`
	PerSender       int      `json:"per_sender"`
	Planned         int      `json:"planned"` // Senders * PerSender
	Sent            int      `json:"sent"`
	Received        int      `json:"received"`
	Lost            int      `json:"lost"`
	Duplicates      int      `json:"duplicates"`
	Unmatched       int      `json:"unmatched"`
	SendersWithLoss int      `json:"senders_with_loss"`
	SendersFailed   int      `json:"senders_failed"`
	RTT             Dist     `json:"rtt"`
	FirstRTT        Dist     `json:"first_rtt"` // of each sender's first request
	LaterRTT        Dist     `json:"later_rtt"` // of the other requests
	Errors          []string `json:"errors,omitempty"`
}

// sampler keeps the first few distinct error messages.
type sampler struct {
	mu   sync.Mutex
	msgs []string
}

func (s *sampler) add(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := err.Error()
	if len(s.msgs) < maxSampleErrors && !slices.Contains(s.msgs, msg) {
		s.msgs = append(s.msgs, msg)
	}
}

// Run performs one run with sessions from d, reporting events to emit
// (called from one goroutine at a time), and returns the final report,
// which it also emits as "done". An error means the options were unusable;
// failed sessions are counted in the report.
func Run(ctx context.Context, d *Dialer, o RunOptions, emit func(Event)) (*Report, error) {
	o, err := o.check()
	if err != nil {
		return nil, err
	}
	var emitMu sync.Mutex
	send := func(e Event) {
		emitMu.Lock()
		defer emitMu.Unlock()
		e.At = time.Now()
		emit(e)
	}
	start := time.Now()
	rep := &Report{Mode: o.Mode}
	switch o.Mode {
	case ModeIdle:
		runIdle(ctx, d, o, rep, send)
	case ModeHandshake:
		rep.Handshake, _ = d.open(ctx, o, false, nil, send)
		send(Event{Event: "up", Opened: rep.Handshake.Completed, Failed: rep.Handshake.Failed})
	case ModeTrickle:
		runTrickle(ctx, d, o, rep, send)
	}
	rep.Seconds = time.Since(start).Seconds()
	send(Event{Event: "done", Opened: rep.Handshake.Completed, Failed: rep.Handshake.Failed, Report: rep})
	return rep, nil
}

// open dials o.Sessions sessions, o.Concurrency at a time. With keep it
// returns them (nil where the dial failed) and calls onUp for each as it
// comes up; without, it closes each at once.
func (d *Dialer) open(ctx context.Context, o RunOptions, keep bool, onUp func(*Session), emit func(Event)) (HandshakeReport, []*Session) {
	var (
		next, opened, failed atomic.Int64
		mu                   sync.Mutex
		timings              []Timing
		byPhase              = map[string]int{}
		errs                 sampler
		unsolicited          int
		tlsVersion           string
		sessions             []*Session
	)
	if keep {
		sessions = make([]*Session, o.Sessions)
	}
	timings = make([]Timing, 0, o.Sessions)
	pctx, cancelProgress := context.WithCancel(ctx)
	progressDone := make(chan struct{})
	stopProgress := func() {
		cancelProgress()
		<-progressDone
	}
	defer cancelProgress()
	if o.Progress <= 0 {
		close(progressDone)
	} else {
		go func() {
			defer close(progressDone)
			t := time.NewTicker(o.Progress)
			defer t.Stop()
			for {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
					emit(Event{Event: "progress", Opened: int(opened.Load()), Failed: int(failed.Load())})
				}
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range min(o.Concurrency, o.Sessions) {
		wg.Go(func() {
			for ctx.Err() == nil {
				id := int(next.Add(1) - 1)
				if id >= o.Sessions {
					return
				}
				s, err := d.Dial(ctx, id)
				if err != nil {
					failed.Add(1)
					errs.add(err)
					phase := "other"
					var le *Error
					if errors.As(err, &le) {
						phase = le.Phase
					}
					mu.Lock()
					byPhase[phase]++
					mu.Unlock()
					continue
				}
				opened.Add(1)
				mu.Lock()
				timings = append(timings, s.Timing)
				unsolicited += s.UnsolicitedRAs
				if tlsVersion == "" {
					tlsVersion = s.TLS
				}
				mu.Unlock()
				if !keep {
					s.Close()
					continue
				}
				sessions[id] = s
				if onUp != nil {
					onUp(s)
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	stopProgress()

	hr := HandshakeReport{
		Attempted:      int(min(next.Load(), int64(o.Sessions))),
		Completed:      int(opened.Load()),
		Failed:         int(failed.Load()),
		Concurrency:    o.Concurrency,
		Seconds:        wall.Seconds(),
		TLSVersion:     tlsVersion,
		UnsolicitedRAs: unsolicited,
		Errors:         errs.msgs,
	}
	if hr.Seconds > 0 {
		hr.PerSecond = float64(hr.Completed) / hr.Seconds
	}
	if len(byPhase) > 0 {
		hr.FailedByPhase = byPhase
	}
	pick := func(f func(Timing) time.Duration) Dist {
		ds := make([]time.Duration, len(timings))
		for i, t := range timings {
			ds[i] = f(t)
		}
		return NewDist(ds)
	}
	hr.Connect = pick(func(t Timing) time.Duration { return t.Connect })
	hr.TLS = pick(func(t Timing) time.Duration { return t.TLS })
	hr.Response = pick(func(t Timing) time.Duration { return t.Response })
	hr.Total = pick(func(t Timing) time.Duration { return t.RA })
	return hr, sessions
}

// runIdle opens the sessions, each reading and discarding from the moment
// it is up, reports "up", holds until o.Stop, o.Hold or ctx, then closes
// them.
func runIdle(ctx context.Context, d *Dialer, o RunOptions, rep *Report, emit func(Event)) {
	hctx, endHold := context.WithCancel(ctx)
	defer endHold()
	var (
		wg      sync.WaitGroup
		packets atomic.Int64
		dropped atomic.Int64
		errs    sampler
	)
	onUp := func(s *Session) {
		wg.Go(func() {
			defer s.Close()
			n, err := s.Hold(hctx)
			packets.Add(int64(n))
			if err != nil {
				dropped.Add(1)
				errs.add(err)
			}
		})
	}
	rep.Handshake, _ = d.open(ctx, o, true, onUp, emit)
	emit(Event{Event: "up", Opened: rep.Handshake.Completed, Failed: rep.Handshake.Failed})
	holdStart := time.Now()
	timer := time.NewTimer(o.Hold)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-o.Stop:
	case <-timer.C:
	}
	held := rep.Handshake.Completed - int(dropped.Load())
	endHold()
	wg.Wait()
	rep.Hold = &HoldReport{
		Seconds:   time.Since(holdStart).Seconds(),
		Held:      held,
		Dropped:   int(dropped.Load()),
		PacketsIn: int(packets.Load()),
		Errors:    errs.msgs,
	}
}

// runTrickle opens the sessions, reports "up", then has every session send
// its trickle (and the baseline pinger its own) from the same start, and
// closes them.
func runTrickle(ctx context.Context, d *Dialer, o RunOptions, rep *Report, emit func(Event)) {
	var sessions []*Session
	rep.Handshake, sessions = d.open(ctx, o, true, nil, emit)
	emit(Event{Event: "up", Opened: rep.Handshake.Completed, Failed: rep.Handshake.Failed})
	start := time.Now().Add(200 * time.Millisecond)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []EchoResult
		base    EchoResult
	)
	if o.Baseline != nil {
		wg.Go(func() { base = Ping(ctx, *o.Baseline, start) })
	}
	for _, s := range sessions {
		if s == nil {
			continue
		}
		wg.Go(func() {
			defer s.Close()
			r := s.Trickle(ctx, o.Echo, start)
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	rep.Echo = sumEcho(results, o.Echo)
	if o.Baseline != nil {
		rep.Baseline = sumEcho([]EchoResult{base}, *o.Baseline)
	}
}

// sumEcho adds up the results of senders that all used o.
func sumEcho(results []EchoResult, o EchoOptions) *EchoReport {
	r := &EchoReport{Senders: len(results), Interval: o.Interval.String(), PerSender: o.Count, Planned: len(results) * o.Count}
	var rtts, first, later []time.Duration
	var errs sampler
	for _, x := range results {
		r.Sent += x.Sent
		r.Received += x.Received
		r.Duplicates += x.Duplicates
		r.Unmatched += x.Unmatched
		if x.Lost() > 0 {
			r.SendersWithLoss++
		}
		if x.Err != nil {
			r.SendersFailed++
			errs.add(x.Err)
		}
		rtts = append(rtts, x.RTTs...)
		skip := x.First > 0
		if skip {
			first = append(first, x.First)
		}
		for _, d := range x.RTTs {
			if skip && d == x.First {
				skip = false
				continue
			}
			later = append(later, d)
		}
	}
	r.FirstRTT, r.LaterRTT = NewDist(first), NewDist(later)
	r.Lost = r.Sent - r.Received
	r.RTT = NewDist(rtts)
	r.Errors = errs.msgs
	return r
}
