// Package client is the client's host side, written once for every
// transport: this machine's end of the tunnel (a kernel TUN device, or the
// in-process stack of --userspace), the status and the control socket,
// reload, the reconnect timer of [MS-IPHTTPS], and the reader of the
// packets the host sends into the tunnel. A Transport (IP-HTTPS, package
// iphttps/client; Teredo, package teredo/client) carries them.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
)

// LinkMTU is the tunnel interface's MTU: the IPv6 minimum, the link MTU of
// IP-HTTPS ([MS-IPHTTPS] 3.1.5.2) and of Teredo.
const LinkMTU = 1280

// Options is a validated client configuration.
type Options struct {
	// Transport carries the packets; required.
	Transport Transport
	// URL is what the status shows as the interface's URL (the IP-HTTPS
	// URL as configured, as Windows shows it).
	URL string
	// ConfigError is set when the configuration cannot work (an unusable
	// URL): the client then only reports it, with its code, until a reload
	// brings a good one.
	ConfigError error
	Interface   string
	// Routes are the configured routes into the tunnel (Link.Routes).
	Routes  []netip.Prefix
	Backoff Backoff
	Offload tundev.Offload // for the default host, a kernel TUN device
	// Host makes this machine's end of the link; nil: a kernel TUN device
	// named Interface (KernelHost).
	Host OpenHost
	// Listeners are shown in the status (the --userspace proxy listeners).
	Listeners     []string
	ControlSocket string
	Log           *slog.Logger
}

type counters struct {
	pktsUp, bytesUp, pktsDown, bytesDown atomic.Uint64
	dropLinkDown, tunReadErrors          atomic.Uint64
}

// Client is a running client.
type Client struct {
	o     Options // read and replaced only by Run's goroutine, between connections
	iface string  // o.Interface, which never changes
	log   *slog.Logger

	reloadMu sync.Mutex
	pending  *Options      // options given to Reload, applied before the next connection
	reloaded chan struct{} // closed (and replaced) by each Reload
	st       status.Holder
	host     Host                      // set by createInterface before anything else uses it
	cur      atomic.Pointer[senderRef] // the live session's sender; nil while down
	c        counters
}

// New prepares a client; nothing touches the system until Run.
func New(o Options) *Client {
	c := &Client{o: o, iface: o.Interface, log: o.Log, reloaded: make(chan struct{})}
	if o.Host == nil {
		o.Host = KernelHost(o.Interface, o.Offload)
		c.o.Host = o.Host
	}
	c.st.Update(func(s *status.Interface) {
		s.Source, s.Role, s.URL = "Local", "client", o.URL
		s.Device, s.State, s.PID, s.Since = o.Interface, "Enabled", os.Getpid(), time.Now()
		s.Listeners = o.Listeners
		s.InterfaceStatus = winerr.StatusConnecting
		if in, ok := o.Transport.(StatusIniter); ok {
			in.InitStatus(s)
		}
	})
	return c
}

// senderRef holds the live session's Sender for an atomic pointer.
type senderRef struct{ Sender }

// The host side as a transport's session sees it (Link).

// Host is this machine's end of the tunnel.
func (c *Client) Host() Host { return c.host }

// Attach makes s the destination of the host's packets.
func (c *Client) Attach(s Sender) { c.cur.Store(&senderRef{s}) }

// Detach stops sending the host's packets to the session.
func (c *Client) Detach() { c.cur.Store(nil) }

// Update changes the reported status.
func (c *Client) Update(fn func(*status.Interface)) { c.st.Update(fn) }

// Received counts packets delivered to the host.
func (c *Client) Received(pkts, bytes int) {
	c.c.pktsDown.Add(uint64(pkts))
	c.c.bytesDown.Add(uint64(bytes))
}

// Routes are the configured routes into the tunnel.
func (c *Client) Routes() []netip.Prefix { return c.o.Routes }

// Log is the client's logger.
func (c *Client) Log() *slog.Logger { return c.log }

// Status reports the client's state.
func (c *Client) Status() status.Interface {
	s := c.st.Get()
	s.Counters = map[string]uint64{
		"packets_up": c.c.pktsUp.Load(), "bytes_up": c.c.bytesUp.Load(),
		"packets_down": c.c.pktsDown.Load(), "bytes_down": c.c.bytesDown.Load(),
		"drop_link_down": c.c.dropLinkDown.Load(), "tun_read_errors": c.c.tunReadErrors.Load(),
	}
	if tc, ok := c.o.Transport.(InterfaceCounter); ok {
		for k, v := range tc.InterfaceCounters() {
			s.Counters[k] += v
		}
	}
	if tc, ok := c.o.Transport.(Counter); ok {
		prefix := strings.ToLower(c.o.Transport.Name()) + "/"
		for k, v := range tc.Counters() {
			s.Counters[prefix+k] = v
		}
	}
	if tc, ok := c.o.Transport.(PrefixedCounter); ok {
		for k, v := range tc.PrefixedCounters() {
			s.Counters[k] = v
		}
	}
	return s
}

// Run keeps the tunnel up until ctx ends, then removes the TUN device (and with
// it every address and route on it) and the control socket.
func (c *Client) Run(ctx context.Context) error {
	if c.o.Transport == nil {
		return errors.New("client: no transport")
	}
	ctl, err := control.Listen(c.o.ControlSocket)
	if err != nil {
		return err
	}
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- control.Serve(ctx, ctl, c.Status) }()
	defer func() { ctl.Close(); <-ctlDone }()

	if err := c.createInterface(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while the interface could not be created
		}
		return err
	}
	// The TUN device vanishing under the client (ip link del) ends the run.
	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		c.readTUN()
		if ctx.Err() == nil {
			fail(winerr.Errorf(winerr.InstallFailure, "the interface %s was removed while the client ran", c.iface))
		}
	}()
	defer func() { c.host.Close(); <-upDone }()
	ctx = runCtx

	c.log.Info("client starting", "transport", c.o.Transport.Name(), "url", c.o.URL, "interface", c.host.Describe(), "offload", c.host.Offloaded())
	kick := make(chan struct{}, 1)
	go func() {
		if err := watchNetwork(ctx, c.iface, kick); err != nil && ctx.Err() == nil {
			c.log.Warn("stopped watching the network for changes; reconnects follow the timer only", "err", err)
		}
	}()
	bo := c.o.Backoff
	early := false // this backoff step already had its early (network change) retry
	for ctx.Err() == nil {
		if c.applyReload() {
			bo = c.o.Backoff
		}
		if c.o.ConfigError != nil {
			c.fail(c.o.ConfigError)
			c.st.Update(func(s *status.Interface) { s.NextRetry = time.Time{} })
			reload := c.reloadChan()
			if !c.reloadPending() {
				select {
				case <-ctx.Done():
				case <-reload:
				}
			}
			continue
		}
		select {
		case <-kick: // a change from before this attempt: the attempt covers it
		default:
		}
		reload := c.reloadChan()
		// A reload ends the current attempt; the loop then reconnects with
		// it. So does a network change for a transport that asks for it
		// (Teredo: the NAT mapping may have changed with the network).
		var changes <-chan struct{}
		if r, ok := c.o.Transport.(Requalifier); ok && r.RequalifyOnNetworkChange() {
			changes = kick
		}
		var changed atomic.Bool
		sctx, endSession := context.WithCancel(ctx)
		go func() {
			select {
			case <-reload:
				endSession()
			case <-changes:
				changed.Store(true)
				endSession()
			case <-sctx.Done():
			}
		}()
		began := time.Now()
		wasUp, err := c.o.Transport.Connect(sctx, c)
		upFor := time.Since(began)
		if u, ok := c.o.Transport.(UpTimer); ok {
			upFor = u.UpFor()
		}
		endSession()
		if ctx.Err() != nil {
			break
		}
		if c.reloadPending() {
			continue
		}
		if changed.Load() {
			c.log.Info("the network changed: connecting again", "transport", c.o.Transport.Name())
			if !sleep(ctx, networkSettle) {
				break
			}
			continue
		}
		c.fail(err)
		// A link that was up for a while just ended: try again soon (after
		// a random part of the first step, so the clients of a restarted
		// server do not all come back at once), then follow the timer.
		lost := wasUp && upFor >= minUpForReset
		if lost {
			early = false
		}
		wait := retryWait(&bo, lost, time.Now())
		c.st.Update(func(s *status.Interface) { s.NextRetry = time.Now().Add(wait) })
		c.log.Info("reconnecting", "in", wait.Round(time.Millisecond), "last_error", winerr.Hex(winerr.Classify(err)))
		kicks := kick
		if early {
			kicks = nil // one early retry per step: a flapping network cannot defeat the timer
		}
		ok, kicked := sleepOrKick(ctx, wait, kicks, reload)
		if !ok {
			break
		}
		early = kicked
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		c.fail(err)
		return err
	}
	c.log.Info("client stopping: removing the interface", "transport", c.o.Transport.Name(), "interface", c.o.Interface)
	return nil
}

// createInterface makes the host end of the link (the TUN device), retrying
// with the reconnect timer while it cannot be created (status "Interface
// creation failure").
func (c *Client) createInterface(ctx context.Context) error {
	bo := c.o.Backoff
	for {
		h, err := c.o.Host()
		if err == nil {
			c.host = h
			c.st.Update(func(s *status.Interface) { s.Device, s.Offload = h.Describe(), h.Offloaded() })
			return nil
		}
		c.fail(err)
		wait := bo.Next(time.Now())
		c.st.Update(func(s *status.Interface) { s.NextRetry = time.Now().Add(wait) })
		c.log.Error("cannot create the tunnel interface", "err", err, "retry_in", wait.Round(time.Second))
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// fail records err as the last error, as Windows does: the code stays until
// the next success.
func (c *Client) fail(err error) {
	code := winerr.Classify(err)
	if code == winerr.Success {
		code = winerr.NoData
	}
	c.st.Update(func(s *status.Interface) {
		s.LastErrorCode, s.InterfaceStatus = code, winerr.StatusFor(code)
		s.LastError = err.Error()
		if s.State != "Enabled" || code == winerr.DupName || code == winerr.InstallFailure {
			s.State = "LinkDown"
		}
		s.Since = time.Now()
	})
	c.log.Warn(winerr.StatusFor(code), "code", winerr.Hex(code), "err", err)
}

// networkSettle lets a network that just changed finish coming up (addresses,
// routes, DNS) before the reconnect it triggers.
const networkSettle = 500 * time.Millisecond

// minUpForReset is how long a link must have been up for its loss to restart
// the reconnect timer: a server that drops every session at once must not
// be retried in a tight loop.
const minUpForReset = 10 * time.Second

// sleepOrKick waits d, or less when the network changes (kicked) or the
// configuration is reloaded; ok is false when ctx ends.
func sleepOrKick(ctx context.Context, d time.Duration, kick, reload <-chan struct{}) (ok, kicked bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-t.C:
		return true, false
	case <-reload:
		return true, false
	case <-kick:
		return sleep(ctx, networkSettle), true
	}
}

// Reload hands the client a new configuration (SIGHUP): the current
// connection attempt or wait ends and the next one uses o. The interface
// cannot change without a restart.
func (c *Client) Reload(o Options) error {
	if o.Transport == nil {
		return errors.New("client: reload without a transport")
	}
	if o.Interface != c.iface {
		return fmt.Errorf("the interface name cannot change on reload (%s -> %s): restart the client", c.iface, o.Interface)
	}
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	c.pending = &o
	close(c.reloaded)
	c.reloaded = make(chan struct{})
	return nil
}

func (c *Client) reloadPending() bool {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	return c.pending != nil
}

func (c *Client) reloadChan() <-chan struct{} {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	return c.reloaded
}

// applyReload switches to the options given to Reload, if any.
func (c *Client) applyReload() bool {
	c.reloadMu.Lock()
	o := c.pending
	c.pending = nil
	c.reloadMu.Unlock()
	if o == nil {
		return false
	}
	if o.Log == nil {
		o.Log = c.log
	}
	o.Host, o.Listeners = c.o.Host, c.o.Listeners // made once, at the start
	if t, ok := o.Transport.(Successor); ok {
		t.TakeOver(c.o.Transport)
	}
	c.o = *o
	c.st.Update(func(s *status.Interface) { s.URL = o.URL })
	c.log.Info("configuration reloaded; reconnecting", "url", o.URL, "routes", o.Routes)
	return true
}

// sleep waits d; false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	ok, _ := sleepOrKick(ctx, d, nil, nil) // nil channels never fire
	return ok
}

// readTUN sends what the host routes into the tunnel to the live connection.
func (c *Client) readTUN() {
	batch := tundev.NewReadBatch(c.host, LinkMTU)
	pkts := make([][]byte, 0, c.host.BatchSize())
	for {
		n, err := batch.Read(c.host)
		pkts = pkts[:0]
		for i := 0; i < n; i++ {
			pkts = append(pkts, batch.Packet(i))
		}
		c.send(pkts)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			c.c.tunReadErrors.Add(1)
			if !errors.Is(err, tun.ErrTooManySegments) {
				c.log.Warn("TUN read failed", "err", err)
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// send hands packets from the TUN device to the live session; without one
// they are counted as dropped.
func (c *Client) send(pkts [][]byte) {
	ref := c.cur.Load()
	if ref == nil {
		c.c.dropLinkDown.Add(uint64(len(pkts)))
		return
	}
	n, bytes := ref.Send(pkts)
	c.c.pktsUp.Add(uint64(n))
	c.c.bytesUp.Add(uint64(bytes))
}
