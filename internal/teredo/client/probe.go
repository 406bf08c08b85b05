package client

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/winerr"
)

// The connectivity test's budget: each echo request waits echoTimeout, up
// to echoTries (as the 6to4 reachability test).
const (
	echoTimeout = 2 * time.Second
	echoTries   = 3
)

// Probe is the client's qualification (docs/teredo.md, "Client": the same
// code, the same budgets) and a direct connectivity test, on a UDP socket
// of its own and without a host: nothing is configured on the system and
// nothing is counted in a Transport. `iphttps diagnose` runs it step by
// step. Its methods are for one goroutine at a time.
type Probe struct {
	qualifier
	echo     packet.EchoTest
	me       atomic.Pointer[netip.Addr] // the connectivity test's source
	readDone chan struct{}
}

// Budgets are the longest the Probe's steps take by design: the primary
// step (three pairs of solicitations and the cone test's last chance), the
// secondary step, and the connectivity test.
func Budgets() (primary, secondary, echo time.Duration) {
	b := defaultBudgets
	return sum(b.primaryWaits) + b.coneGraceMax, sum(b.secondaryWaits), echoTries * echoTimeout
}

// NewProbe checks o as New does, finds the server's two addresses as
// Connect does (the name resolved, the secondary o.Secondary or the
// primary + 1) and opens the client's socket (o.ClientPort). Its errors
// carry Connect's codes: the resolver's (0x2af9 for a name that does not
// exist), 0x57 for an address that is not global, the socket's.
func NewProbe(ctx context.Context, o Options) (*Probe, error) {
	t, err := New(o)
	if err != nil {
		return nil, err
	}
	primary, secondary, err := t.servers(ctx)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Probe{qualifier: newQualifier(&t.c, t.b, log, o.Lab), readDone: make(chan struct{})}
	p.primary, p.secondary = netip.AddrPortFrom(primary, teredo.Port), netip.AddrPortFrom(secondary, teredo.Port)
	if err := p.open(ctx, o.ClientPort); err != nil {
		return nil, err
	}
	go p.read()
	return p, nil
}

// read passes the server's answers to the qualification and echo replies
// to the connectivity test, until the socket is closed.
func (p *Probe) read() {
	defer close(p.readDone)
	buf := make([]byte, readBuf)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.readErr <- err
			}
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		d, err := teredo.Parse(buf[:n])
		if err != nil {
			continue
		}
		if (from == p.primary || from == p.secondary) && d.HasAuth {
			p.answer(buf[:n], from, time.Now())
			continue
		}
		if me := p.me.Load(); me != nil && packet.Dst(d.IPv6) == *me {
			p.echo.Reply(d.IPv6, from)
		}
	}
}

// Primary and Secondary are the server's addresses (port 3544); Local is
// the socket's address towards the server.
func (p *Probe) Primary() netip.AddrPort   { return p.primary }
func (p *Probe) Secondary() netip.AddrPort { return p.secondary }
func (p *Probe) Local() netip.AddrPort     { return p.local }

// QualifyPrimary is the qualification's first step: the cone test and the
// mapping towards the primary address. Without an answer to the cone test
// the NAT type is left open (empty): QualifySecondary decides. The errors
// wrap ErrPrimaryUnreachable (0x274c) or ErrMappingNotGlobal (0x2afc).
func (p *Probe) QualifyPrimary(ctx context.Context) (Qualification, error) {
	return p.qualifyPrimary(ctx)
}

// QualifySecondary is the symmetric test that follows a first step
// without a cone answer. The errors wrap ErrSecondaryUnreachable (0x274c),
// ErrSymmetricNAT (0x2afc: the result's NAT is then "symmetric") or
// ErrMappingNotGlobal.
func (p *Probe) QualifySecondary(ctx context.Context, first Qualification) (Qualification, error) {
	return p.qualifySecondary(ctx, first)
}

// Echoed is a passed connectivity test.
type Echoed struct {
	// From is the Teredo address the test ran from: the one a client
	// qualified as q would take (random flags).
	From netip.Addr
	// Relay is where the reply came from: the host's relay (a
	// DirectAccess server relays from its primary address).
	Relay netip.AddrPort
	Try   int
	RTT   time.Duration
}

// Echo is the direct connectivity test (RFC 4380 section 5.2.9) from the
// address of a client qualified as q to the native host, through the
// primary server: an echo request with a random nonce, answered within 2
// s, up to 3 tries. A host that does not answer ICMPv6 echo cannot be
// reached over Teredo: the client sends nothing else to it until the test
// passes. The error wraps packet.ErrNoEcho (0x274c) when nothing came back.
func (p *Probe) Echo(ctx context.Context, q Qualification, host netip.Addr) (Echoed, error) {
	me := newIdentity(q.Advertisement).addr
	p.me.Store(&me)
	defer p.me.Store(nil)
	r, err := p.echo.Run(ctx, me, host, echoTries, echoTimeout, func(req []byte) error {
		_, err := p.conn.WriteToUDPAddrPort(req, p.primary)
		return err
	})
	switch {
	case err == nil:
		return Echoed{From: me, Relay: r.Via, Try: r.Try, RTT: r.RTT}, nil
	case ctx.Err() != nil:
		return Echoed{From: me}, ctx.Err()
	case errors.Is(err, packet.ErrNoEcho):
		return Echoed{From: me}, winerr.Errorf(winerr.TimedOut,
			"teredo: %w from %v to %d echo requests through the server %v (%v each): the server does not relay to it, or the host does not answer ICMPv6 echo",
			err, host, echoTries, p.primary.Addr(), echoTimeout)
	}
	return Echoed{From: me}, winerr.Errorf(winerr.Classify(err), "teredo: cannot send the echo request to the server %v: %w", p.primary.Addr(), err)
}

// Close closes the socket.
func (p *Probe) Close() error {
	err := p.conn.Close()
	<-p.readDone
	return err
}
