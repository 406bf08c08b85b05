package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Qualification (RFC 4380 section 5.2.1, RFC 5991 addresses) and
// maintenance (section 5.2.5). docs/teredo.md, "Client", gives the order,
// the budgets and the NAT words.

// qualifier is what a qualification needs: the client's socket, the
// server's addresses and the answers the socket's reader passes on. A
// session (qualification, then refreshes) and a Probe each have one.
type qualifier struct {
	c   *counters
	b   budgets
	log *slog.Logger

	conn      *net.UDPConn
	primary   netip.AddrPort // primary server address, port 3544
	secondary netip.AddrPort
	local     netip.AddrPort // the local address towards the server and the port
	lab       bool

	lastServer atomic.Int64 // unix nanoseconds of the last datagram from the primary

	ras     chan datagram  // solicitation answers, for the control goroutine
	late    []solicitation // the qualification's, whose answers may still come
	readErr chan error
}

func newQualifier(c *counters, b budgets, log *slog.Logger, lab bool) qualifier {
	return qualifier{c: c, b: b, log: log, lab: lab, ras: make(chan datagram, 16), readErr: make(chan error, 1)}
}

// open binds the client's UDP socket to port (0: any; don't fragment off,
// as RFC 4380 section 5.1.2 asks) and finds the local address the kernel
// uses towards the primary server.
func (q *qualifier) open(ctx context.Context, port uint16) error {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(int(port))))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return winerr.Errorf(winerr.AddrInUse, "teredo: the client port %d is in use by another program (a Miredo client?)", port)
		}
		return winerr.Errorf(winerr.Classify(err), "teredo: cannot open the client's UDP socket: %w", err)
	}
	conn := pc.(*net.UDPConn)
	probe, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(q.primary))
	if err != nil {
		conn.Close()
		return winerr.Errorf(winerr.Classify(err), "teredo: no route to the Teredo server %v: %w", q.primary.Addr(), err)
	}
	local := netip.MustParseAddrPort(probe.LocalAddr().String()).Addr().Unmap()
	probe.Close()
	q.conn = conn
	q.local = netip.AddrPortFrom(local, netip.MustParseAddrPort(conn.LocalAddr().String()).Port())
	return nil
}

// answer hands a datagram with an authentication header from a server
// address to the qualification or refresh waiting for it (the reader's
// part; b is copied).
func (q *qualifier) answer(b []byte, from netip.AddrPort, at time.Time) {
	select {
	case q.ras <- datagram{b: bytes.Clone(b), from: from, at: at}:
	default:
		q.c.drop(dropRAQueueFull, 1)
	}
}

// solicitation is a router solicitation sent and not yet answered.
type solicitation struct {
	nonce [teredo.NonceLen]byte
	cone  bool
	to    netip.AddrPort
	sent  time.Time
}

// Qualification is what a qualification found.
type Qualification struct {
	// Advertisement is the answer from the primary address: the server's
	// prefix and this client's mapping (the cone test's when it
	// answered).
	Advertisement teredo.Advertisement
	// NAT is the NAT type in netsh's words (NATNone, NATCone,
	// NATRestricted, NATSymmetric); empty while the primary step left it
	// open (no answer to the cone test): the secondary step decides.
	NAT string
	// Cone is true when the cone test was answered (from the secondary
	// address, to a solicitation sent to the primary).
	Cone bool
	// SecondaryMapping is the mapping the secondary address saw in the
	// symmetric test; invalid when that test did not run or got no answer.
	SecondaryMapping netip.AddrPort
	// RTT is the round trip of the first answer.
	RTT time.Duration
}

// solicit sends a router solicitation with a fresh random nonce.
func (q *qualifier) solicit(to netip.AddrPort, cone bool) solicitation {
	sol := solicitation{cone: cone, to: to, sent: time.Now()}
	rand.Read(sol.nonce[:])
	var buf [teredo.AuthMinLen + 48]byte
	if _, err := q.conn.WriteToUDPAddrPort(teredo.AppendRS(buf[:0], sol.nonce, cone), to); err != nil {
		q.c.drop(dropSendFailed, 1)
		q.log.Debug("teredo: cannot send a router solicitation", "to", to, "err", err)
	} else {
		q.c.add(&q.c.solicitations, 1)
		q.c.add(&q.c.datagramsOut, 1)
	}
	return sol
}

// match checks a datagram from a server address against the solicitations
// sent: the nonce picks the solicitation, which says where the answer must
// come from (the cone test's from the other address), and ParseRA checks
// the rest. ok is false when the datagram answers none (it is counted).
func (q *qualifier) match(d datagram, sols []solicitation) (teredo.Advertisement, solicitation, bool) {
	dg, err := teredo.Parse(d.b)
	if err != nil {
		q.c.drop(dropMalformed, 1)
		return teredo.Advertisement{}, solicitation{}, false
	}
	for _, sol := range sols {
		if !dg.HasAuth || dg.Nonce != sol.nonce {
			continue
		}
		want := sol.to
		if sol.cone {
			want = q.secondary
			if sol.to == q.secondary {
				want = q.primary
			}
		}
		if d.from != want {
			q.c.drop(dropRAWrongSource, 1)
			q.log.Debug("teredo: advertisement from the wrong server address", "from", d.from, "want", want, "cone", sol.cone)
			return teredo.Advertisement{}, sol, false
		}
		adv, err := teredo.ParseRA(dg, sol.nonce, teredo.RSSource(sol.cone))
		if err == nil && adv.Server != q.primary.Addr() {
			err = fmt.Errorf("prefix %v names the server %v, not %v", adv.Prefix, adv.Server, q.primary.Addr())
		}
		if err != nil {
			q.c.drop(dropBadRA, 1)
			q.log.Debug("teredo: invalid advertisement", "from", d.from, "err", err)
			return teredo.Advertisement{}, sol, false
		}
		if d.from == q.primary {
			q.lastServer.Store(d.at.UnixNano())
		}
		q.c.add(&q.c.advertisements, 1)
		return adv, sol, true
	}
	if dg.HasAuth && q.isLate(dg.Nonce) {
		// A late answer to a qualification's solicitation that another
		// answer already settled (the cone test's pair): not a drop.
		return teredo.Advertisement{}, solicitation{}, false
	}
	q.c.drop(dropUnexpectedRA, 1)
	return teredo.Advertisement{}, solicitation{}, false
}

// isLate reports whether nonce is a qualification solicitation's.
func (q *qualifier) isLate(nonce [teredo.NonceLen]byte) bool {
	for _, sol := range q.late {
		if sol.nonce == nonce {
			return true
		}
	}
	return false
}

// mappingErr refuses a mapping that is not a global address: Teredo peers
// could not reach it.
func (q *qualifier) mappingErr(adv teredo.Advertisement) error {
	if teredo.IsGlobalUnicast(adv.Mapping.Addr(), q.lab) {
		return nil
	}
	return winerr.Errorf(winerr.NoData,
		"teredo: %w: the server %v saw this client at %v (a server behind the same NAT? a carrier-grade NAT?); Teredo needs a global mapping",
		ErrMappingNotGlobal, q.primary.Addr(), adv.Mapping)
}

// qualifyPrimary is the qualification's first step: the cone test and the
// first non-cone solicitation together towards the primary address. An
// answer to the cone test settles the NAT type; without one, the result's
// NAT is empty and qualifySecondary decides. The errors wrap
// ErrPrimaryUnreachable (0x274c) or ErrMappingNotGlobal (0x2afc), or are
// the socket's (socketErr) or ctx's.
func (q *qualifier) qualifyPrimary(ctx context.Context) (Qualification, error) {
	b := q.b
	var (
		sols  []solicitation
		first Qualification
		got1  bool
		tries int
		grace <-chan time.Time
	)
	defer func() { q.late = append(q.late, sols...) }()
	send := time.NewTimer(0)
	defer send.Stop()
	for {
		select {
		case <-ctx.Done():
			return Qualification{}, ctx.Err()
		case err := <-q.readErr:
			return Qualification{}, socketErr(err)
		case <-send.C:
			if tries == len(b.primaryWaits) {
				return Qualification{}, winerr.Errorf(winerr.TimedOut,
					"teredo: %w: no router advertisement from %v in %s (%d solicitations); UDP to port %d may be blocked; DirectAccess falls back to IP-HTTPS",
					ErrPrimaryUnreachable, q.primary.Addr(), fmtDur(sum(b.primaryWaits)), 2*tries, teredo.Port)
			}
			sols = append(sols, q.solicit(q.primary, true), q.solicit(q.primary, false))
			send.Reset(b.primaryWaits[tries])
			tries++
		case <-grace:
			return first, nil
		case d := <-q.ras:
			adv, sol, ok := q.match(d, sols)
			if !ok {
				continue
			}
			if err := q.mappingErr(adv); err != nil {
				return Qualification{}, err
			}
			if sol.cone {
				// Only a NAT that lets in packets from an address the
				// client never sent to passes the cone test.
				nat := NATCone
				if adv.Mapping == q.local {
					nat = NATNone
				}
				return Qualification{Advertisement: adv, NAT: nat, Cone: true, RTT: d.at.Sub(sol.sent)}, nil
			}
			if !got1 {
				first, got1 = Qualification{Advertisement: adv, RTT: d.at.Sub(sol.sent)}, true
				send.Stop()
				g := min(max(2*first.RTT, b.coneGraceMin), b.coneGraceMax)
				grace = time.After(g)
				q.log.Debug("teredo: primary server answered; waiting for the cone test's answer", "mapping", adv.Mapping, "wait", g)
			}
		}
	}
}

// qualifySecondary is the symmetric test, after a first step without a
// cone answer: the mapping towards the secondary address must be the
// same. It returns first completed: the NAT type ("restricted"), the
// secondary's mapping. The errors wrap ErrSecondaryUnreachable (0x274c),
// ErrSymmetricNAT (0x2afc; NAT is then "symmetric") or
// ErrMappingNotGlobal, or are the socket's or ctx's.
func (q *qualifier) qualifySecondary(ctx context.Context, first Qualification) (Qualification, error) {
	b := q.b
	var (
		sols  []solicitation
		tries int
	)
	defer func() { q.late = append(q.late, sols...) }()
	send := time.NewTimer(0)
	defer send.Stop()
	m1 := first.Advertisement.Mapping
	for {
		select {
		case <-ctx.Done():
			return first, ctx.Err()
		case err := <-q.readErr:
			return first, socketErr(err)
		case <-send.C:
			if tries == len(b.secondaryWaits) {
				return first, winerr.Errorf(winerr.TimedOut,
					"teredo: %w: the primary %v answered (mapping %v) but not the secondary %v in %s; without it the NAT cannot be told from a symmetric one",
					ErrSecondaryUnreachable, q.primary.Addr(), m1, q.secondary.Addr(), fmtDur(sum(b.secondaryWaits)))
			}
			sols = append(sols, q.solicit(q.secondary, false))
			send.Reset(b.secondaryWaits[tries])
			tries++
		case d := <-q.ras:
			adv, _, ok := q.match(d, sols)
			if !ok {
				continue
			}
			if err := q.mappingErr(adv); err != nil {
				return first, err
			}
			first.SecondaryMapping = adv.Mapping
			if adv.Mapping != m1 {
				first.NAT = NATSymmetric
				return first, winerr.Errorf(winerr.NoData,
					"teredo: %w: it maps this client to %v towards %v and to %v towards %v; Teredo needs a cone or restricted NAT (use IP-HTTPS, DirectAccess's fallback, or forward a fixed client port on the NAT)",
					ErrSymmetricNAT, m1, q.primary.Addr(), adv.Mapping, q.secondary.Addr())
			}
			// Without an answer from another port of the server, an
			// address-restricted NAT cannot be told from a port-restricted
			// one: "restricted" covers both.
			first.NAT = NATRestricted
			return first, nil
		}
	}
}

// qualify runs the qualification (qualifyPrimary, then, without a cone
// answer, qualifySecondary), showing its progress and, on failure, the
// error line in the status.
func (s *session) qualify(ctx context.Context) (Qualification, error) {
	s.probe(StateProbePrimary)
	q, err := s.qualifyPrimary(ctx)
	if err == nil && q.NAT == "" {
		s.probe(StateProbeSecondary)
		q, err = s.qualifySecondary(ctx, q)
	}
	switch {
	case err == nil:
		return q, nil
	case ctx.Err() != nil:
		return q, ctx.Err()
	case q.NAT == NATSymmetric:
		s.l.Update(func(st *status.Interface) {
			s.teredo(st, func(ts *status.TeredoState) {
				ts.NAT, ts.NATSpecialBehaviour = NATSymmetric, SpecialBehaviour(s.local, q.Advertisement.Mapping)
				ts.ExternalNATMapping = q.Advertisement.Mapping.String()
			})
		})
	}
	return q, s.fail(errorLine(err), err)
}

// errorLine is the status's Error line for a qualification's error.
func errorLine(err error) string {
	switch {
	case errors.Is(err, ErrPrimaryUnreachable):
		return ErrorPrimary
	case errors.Is(err, ErrSecondaryUnreachable):
		return ErrorSecondary
	case errors.Is(err, ErrSymmetricNAT):
		return ErrorSymmetric
	case errors.Is(err, ErrMappingNotGlobal):
		return ErrorMappingNotGlobal
	}
	return ErrorSocket
}

// socketErr wraps a failure of the client's socket.
func socketErr(err error) error {
	return winerr.Errorf(winerr.Classify(err), "teredo: the client's UDP socket failed: %w", err)
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// refreshInterval draws the wait before the next refresh: 75 to 100 % of
// the refresh interval (RFC 4380 section 5.2).
func (s *session) refreshInterval() time.Duration {
	i := s.t.o.RefreshInterval
	return i*3/4 + mrand.N(i/4+1)
}

// maintain runs the qualified life: a refresh when nothing came from the
// primary address for the randomised refresh interval. It returns nil
// when ctx ends, an error when the server is lost or the socket fails.
func (s *session) maintain(ctx context.Context) error {
	tick := time.NewTicker(s.b.statusEvery)
	defer tick.Stop()
	interval := s.refreshInterval()
	wait := time.NewTimer(interval)
	defer wait.Stop()
	peers := -1
	for {
		due := time.Unix(0, s.lastServer.Load()).Add(interval)
		if d := time.Until(due); d > 0 {
			wait.Reset(d)
			select {
			case <-ctx.Done():
				return nil
			case err := <-s.readErr:
				return s.fail(ErrorSocket, socketErr(err))
			case <-tick.C:
				if n := s.peers.Load().Len(); n != peers {
					peers = n
					s.l.Update(func(st *status.Interface) {
						s.teredo(st, func(ts *status.TeredoState) { ts.Peers = n })
					})
				}
			case <-wait.C:
			case d := <-s.ras:
				s.match(d, nil) // counts it, unless it is a late answer
			}
			continue
		}
		if err := s.refresh(ctx); err != nil || ctx.Err() != nil {
			return err
		}
		interval = s.refreshInterval()
	}
}

// refresh solicits the primary address (non-cone) until it answers, at
// most refreshTries times; a new mapping renumbers the client.
func (s *session) refresh(ctx context.Context) error {
	b := s.b
	s.c.add(&s.c.refreshes, 1)
	var sols []solicitation
	t := time.NewTimer(0)
	defer t.Stop()
	tries := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.readErr:
			return s.fail(ErrorSocket, socketErr(err))
		case <-t.C:
			if tries == b.refreshTries {
				return s.fail(ErrorPrimary, winerr.Errorf(winerr.TimedOut,
					"teredo: %w: %d refreshes unanswered in %s; the NAT mapping or the path to %v was lost",
					ErrPrimaryUnreachable, tries, fmtDur(time.Duration(tries)*b.refreshWait), s.primary.Addr()))
			}
			sols = append(sols, s.solicit(s.primary, false))
			t.Reset(b.refreshWait)
			tries++
		case d := <-s.ras:
			adv, _, ok := s.match(d, sols)
			if !ok {
				continue
			}
			if err := s.mappingErr(adv); err != nil {
				return s.fail(ErrorMappingNotGlobal, err)
			}
			if me := s.me.Load(); me == nil || me.mapping != adv.Mapping || me.server != adv.Server {
				if err := s.renumber(adv); err != nil {
					return s.fail(ErrorAdapter, err)
				}
			}
			now := time.Now()
			s.l.Update(func(st *status.Interface) {
				s.teredo(st, func(ts *status.TeredoState) { ts.LastRefresh = now })
			})
			return nil
		}
	}
}
