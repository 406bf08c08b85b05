package client

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/winerr"
)

// Qualification (RFC 4380 section 5.2.1, RFC 5991 addresses) and
// maintenance (section 5.2.5). docs/teredo.md, "Client", gives the order,
// the budgets and the NAT words.

// solicitation is a router solicitation sent and not yet answered.
type solicitation struct {
	nonce [teredo.NonceLen]byte
	cone  bool
	to    netip.AddrPort
	sent  time.Time
}

// result is a qualification's outcome.
type result struct {
	adv teredo.Advertisement
	nat string
}

// solicit sends a router solicitation with a fresh random nonce.
func (s *session) solicit(to netip.AddrPort, cone bool) solicitation {
	sol := solicitation{cone: cone, to: to, sent: time.Now()}
	rand.Read(sol.nonce[:])
	var buf [teredo.AuthMinLen + 48]byte
	if _, err := s.conn.WriteToUDPAddrPort(teredo.AppendRS(buf[:0], sol.nonce, cone), to); err != nil {
		s.t.c.drop(dropSendFailed, 1)
		s.log.Debug("teredo: cannot send a router solicitation", "to", to, "err", err)
	} else {
		s.t.c.add(&s.t.c.solicitations, 1)
		s.t.c.add(&s.t.c.datagramsOut, 1)
	}
	return sol
}

// match checks a datagram from a server address against the solicitations
// sent: the nonce picks the solicitation, which says where the answer must
// come from (the cone test's from the other address), and ParseRA checks
// the rest. ok is false when the datagram answers none (it is counted).
func (s *session) match(d datagram, sols []solicitation) (teredo.Advertisement, solicitation, bool) {
	dg, err := teredo.Parse(d.b)
	if err != nil {
		s.t.c.drop(dropMalformed, 1)
		return teredo.Advertisement{}, solicitation{}, false
	}
	for _, sol := range sols {
		if !dg.HasAuth || dg.Nonce != sol.nonce {
			continue
		}
		want := sol.to
		if sol.cone {
			want = s.secondary
			if sol.to == s.secondary {
				want = s.primary
			}
		}
		if d.from != want {
			s.t.c.drop(dropRAWrongSource, 1)
			s.log.Debug("teredo: advertisement from the wrong server address", "from", d.from, "want", want, "cone", sol.cone)
			return teredo.Advertisement{}, sol, false
		}
		adv, err := teredo.ParseRA(dg, sol.nonce, teredo.RSSource(sol.cone))
		if err == nil && adv.Server != s.primary.Addr() {
			err = fmt.Errorf("prefix %v names the server %v, not %v", adv.Prefix, adv.Server, s.primary.Addr())
		}
		if err != nil {
			s.t.c.drop(dropBadRA, 1)
			s.log.Debug("teredo: invalid advertisement", "from", d.from, "err", err)
			return teredo.Advertisement{}, sol, false
		}
		if d.from == s.primary {
			s.lastServer.Store(d.at.UnixNano())
		}
		s.t.c.add(&s.t.c.advertisements, 1)
		return adv, sol, true
	}
	if dg.HasAuth && s.isLate(dg.Nonce) {
		// A late answer to a qualification's solicitation that another
		// answer already settled (the cone test's pair): not a drop.
		return teredo.Advertisement{}, solicitation{}, false
	}
	s.t.c.drop(dropUnexpectedRA, 1)
	return teredo.Advertisement{}, solicitation{}, false
}

// isLate reports whether nonce is a qualification solicitation's.
func (s *session) isLate(nonce [teredo.NonceLen]byte) bool {
	for _, sol := range s.late {
		if sol.nonce == nonce {
			return true
		}
	}
	return false
}

// checkMapping refuses a mapping that is not a global address: Teredo
// peers could not reach it.
func (s *session) checkMapping(adv teredo.Advertisement) error {
	if teredo.IsGlobalUnicast(adv.Mapping.Addr(), s.lab) {
		return nil
	}
	return s.fail(ErrorMappingNotGlobal, winerr.Errorf(winerr.NoData,
		"teredo: %w: the server %v saw this client at %v (a server behind the same NAT? a carrier-grade NAT?); Teredo needs a global mapping",
		ErrMappingNotGlobal, s.primary.Addr(), adv.Mapping))
}

// qualify runs the qualification: the cone test and the first non-cone
// solicitation together towards the primary address, then, without a cone
// answer, the symmetric test towards the secondary address.
func (s *session) qualify(ctx context.Context) (result, error) {
	b := s.t.b
	s.probe(StateProbePrimary)
	var (
		sols  []solicitation
		m1    teredo.Advertisement
		got1  bool
		tries int
		grace <-chan time.Time
	)
	defer func() { s.late = append(s.late, sols...) }()
	send := time.NewTimer(0)
	defer send.Stop()
primary:
	for {
		select {
		case <-ctx.Done():
			return result{}, ctx.Err()
		case err := <-s.readErr:
			return result{}, s.fail(ErrorSocket, socketErr(err))
		case <-send.C:
			if tries == len(b.primaryWaits) {
				return result{}, s.fail(ErrorPrimary, winerr.Errorf(winerr.TimedOut,
					"teredo: %w: no router advertisement from %v in %s (%d solicitations); UDP to port %d may be blocked; DirectAccess falls back to IP-HTTPS",
					ErrPrimaryUnreachable, s.primary.Addr(), fmtDur(sum(b.primaryWaits)), 2*tries, teredo.Port))
			}
			sols = append(sols, s.solicit(s.primary, true), s.solicit(s.primary, false))
			send.Reset(b.primaryWaits[tries])
			tries++
		case <-grace:
			break primary
		case d := <-s.ras:
			adv, sol, ok := s.match(d, sols)
			if !ok {
				continue
			}
			if err := s.checkMapping(adv); err != nil {
				return result{}, err
			}
			if sol.cone {
				// Only a NAT that lets in packets from an address the
				// client never sent to passes the cone test.
				nat := NATCone
				if adv.Mapping == s.local {
					nat = NATNone
				}
				return result{adv: adv, nat: nat}, nil
			}
			if !got1 {
				m1, got1 = adv, true
				send.Stop()
				g := min(max(2*d.at.Sub(sol.sent), b.coneGraceMin), b.coneGraceMax)
				grace = time.After(g)
				s.log.Debug("teredo: primary server answered; waiting for the cone test's answer", "mapping", adv.Mapping, "wait", g)
			}
		}
	}

	// Symmetric test: the mapping towards the secondary address must be
	// the same.
	s.probe(StateProbeSecondary)
	s.late = append(s.late, sols...)
	sols, tries = nil, 0
	send.Reset(0)
	for {
		select {
		case <-ctx.Done():
			return result{}, ctx.Err()
		case err := <-s.readErr:
			return result{}, s.fail(ErrorSocket, socketErr(err))
		case <-send.C:
			if tries == len(b.secondaryWaits) {
				return result{}, s.fail(ErrorSecondary, winerr.Errorf(winerr.TimedOut,
					"teredo: %w: the primary %v answered (mapping %v) but not the secondary %v in %s; without it the NAT cannot be told from a symmetric one",
					ErrSecondaryUnreachable, s.primary.Addr(), m1.Mapping, s.secondary.Addr(), fmtDur(sum(b.secondaryWaits))))
			}
			sols = append(sols, s.solicit(s.secondary, false))
			send.Reset(b.secondaryWaits[tries])
			tries++
		case d := <-s.ras:
			adv, _, ok := s.match(d, sols)
			if !ok {
				continue
			}
			if err := s.checkMapping(adv); err != nil {
				return result{}, err
			}
			if adv.Mapping != m1.Mapping {
				s.l.Update(func(st *status.Interface) {
					s.teredo(st, func(ts *status.TeredoState) {
						ts.NAT, ts.NATSpecialBehaviour = NATSymmetric, specialBehaviour(s.local, m1.Mapping)
						ts.ExternalNATMapping = m1.Mapping.String()
					})
				})
				return result{}, s.fail(ErrorSymmetric, winerr.Errorf(winerr.NoData,
					"teredo: %w: it maps this client to %v towards %v and to %v towards %v; Teredo needs a cone or restricted NAT (use IP-HTTPS, DirectAccess's fallback, or forward a fixed client port on the NAT)",
					ErrSymmetricNAT, m1.Mapping, s.primary.Addr(), adv.Mapping, s.secondary.Addr()))
			}
			// Without an answer from another port of the server, an
			// address-restricted NAT cannot be told from a port-restricted
			// one: "restricted" covers both.
			return result{adv: m1, nat: NATRestricted}, nil
		}
	}
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
	tick := time.NewTicker(s.t.b.statusEvery)
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
	b := s.t.b
	s.t.c.add(&s.t.c.refreshes, 1)
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
			if !teredo.IsGlobalUnicast(adv.Mapping.Addr(), s.lab) {
				return s.checkMapping(adv)
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
