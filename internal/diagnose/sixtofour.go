package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/iphttps/iphttps/internal/sixtofour"
	"github.com/iphttps/iphttps/internal/sixtofour/probe"
	"github.com/iphttps/iphttps/internal/winerr"
)

// The 6to4 checks (--6to4-relay): the 6to4 client's three tests, run by
// the client's own code (package sixtofour/probe), in its order.

// sixToFourState is what the 6to4 checks leave for the next.
type sixToFourState struct {
	local netip.Addr // this host's IPv4 address towards the relay
}

// The Teredo and 6to4 checks' fixes, when the method cannot work on this
// network at all.
const fixFallback = "nothing to repair for DirectAccess: on such a network it uses Teredo or IP-HTTPS (the " +
	"verdict says which would carry the traffic)"

func (s *session) sixToFourSteps() []Step {
	relay, lab := s.o.SixToFourRelay, s.o.SixToFourLab
	return []Step{
		{Name: Check6to4Address, Title: "local IPv4 address towards the relay is public", NoInterfaceStatus: true,
			Run: func(context.Context) Check {
				c, local := check6to4Address(relay, lab)
				s.six.local = local
				return c
			}},
		{Name: Check6to4Mapping, Title: "the relay's Teredo server sees that address (no NAT)", NoInterfaceStatus: true,
			Needs: []string{Check6to4Address}, Budget: probe.Timeout,
			Run: func(ctx context.Context) Check { return check6to4Mapping(ctx, s.six.local, relay) }},
		{Name: Check6to4Reachability, Title: "echo to the relay's 6to4 address over protocol 41", NoInterfaceStatus: true,
			Needs: []string{Check6to4Address, Check6to4Mapping}, Budget: probe.Tries * probe.Timeout,
			Run: func(ctx context.Context) Check { return check6to4Reachability(ctx, s.six.local, relay) }},
	}
}

// methodFail is a 6to4 or Teredo check's FAIL with the remedies of its
// note (none rather than IP-HTTPS's when there is no note).
func methodFail(check string, code uint32, saw Facts, cause, fix string) Check {
	c := fail(code, saw, cause, fix)
	c.Remedies = methodRemedies(check, code)
	if c.Remedies == nil {
		c.Remedies = []string{}
	}
	return c
}

// unfinished is a 6to4 or Teredo check cut off by its time limit (ctx):
// the checks that need it are skipped. (When the whole diagnosis was
// interrupted, the Runner makes it SKIPPED.)
func unfinished(ctx context.Context, check string, saw Facts) Check {
	return methodFail(check, winerr.TimedOut, saw, fmt.Sprintf("the check did not finish in its time (%v)", context.Cause(ctx)),
		"give the checks more time (--timeout)")
}

// methodWarn is methodFail's WARN.
func methodWarn(check string, code uint32, saw Facts, cause, fix string) Check {
	c := methodFail(check, code, saw, cause, fix)
	c.Status = Warn
	return c
}

// check6to4Address is the range test: the local address towards the relay
// (sixtofour.CheckPublic) must be public.
func check6to4Address(relay netip.Addr, lab bool) (Check, netip.Addr) {
	var saw Facts
	saw.Add("relay", relay)
	local, err := probe.Local(relay)
	if err != nil {
		return methodFail(Check6to4Address, winerr.Classify(err), saw, err.Error(),
			fmt.Sprintf("bring the network up: `ip route get %v` must show a route to the relay", relay)), local
	}
	saw.Add("local address", local)
	saw.Add("6to4 address", sixtofour.Address(local))
	saw.Add("relay's 6to4 address", sixtofour.Address(relay))
	if err := sixtofour.CheckPublic(local, lab); err != nil {
		return methodFail(Check6to4Address, winerr.NetUnreach, saw,
			fmt.Sprintf("this host's address %v: 6to4 needs a public IPv4 address on the host itself (the 6to4 client's range test)", err),
			fixFallback+"; for 6to4, give the host a public IPv4 address"), local
	}
	return pass(saw, ""), local
}

// check6to4Mapping is the mapping test: the relay's Teredo server must see
// this host at its own address.
func check6to4Mapping(ctx context.Context, local, relay netip.Addr) Check {
	m, err := probe.Mapping(ctx, local, relay)
	var saw Facts
	saw.Add("Teredo server", m.Server)
	switch {
	case ctx.Err() != nil:
		return unfinished(ctx, Check6to4Mapping, saw)
	case errors.Is(err, probe.ErrBehindNAT):
		saw.Add("sees this host at", m.Seen)
		saw.Add("local address", local)
		return methodFail(Check6to4Mapping, winerr.Classify(err), saw,
			fmt.Sprintf("behind a NAT: the Teredo server at %v sees this host as %v, but its address is %v; protocol 41 has no ports and cannot come back through a NAT",
				m.Server.Addr(), m.Seen.Addr(), local),
			fixFallback+"; for 6to4, the public address must be on this host (no NAT in between)")
	case err != nil:
		return methodFail(Check6to4Mapping, winerr.Classify(err), saw, err.Error(), "")
	case !m.Ran:
		return notApplicable(saw, "not run: "+m.NotRun+"; the reachability test decides, as in the 6to4 client")
	}
	saw.Add("sees this host at", fmt.Sprintf("%v (this host's own address) after %v", m.Seen, took(m.RTT)))
	return pass(saw, "")
}

// check6to4Reachability is the reachability test: an echo from our 6to4
// address to the relay's over protocol 41, on a raw socket of its own.
func check6to4Reachability(ctx context.Context, local, relay netip.Addr) Check {
	var saw Facts
	from, to := sixtofour.Address(local), sixtofour.Address(relay)
	saw.Add("echo", fmt.Sprintf("from %v to %v over protocol 41 (to %v), %d tries of %v", from, to, relay, probe.Tries, probe.Timeout))
	conn, err := probe.Listen(local)
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return notApplicable(saw, "not run: a raw socket for protocol 41 needs CAP_NET_RAW (run the diagnosis as root); without this test 6to4 cannot be judged")
	}
	if err != nil {
		return methodFail(Check6to4Reachability, winerr.Classify(err), saw, err.Error(), "")
	}
	defer conn.Close()
	r, err := probe.Reach(ctx, conn, local, relay)
	switch {
	case err == nil:
		saw.Add("echo reply", fmt.Sprintf("from %v after %v (try %d)", r.From, took(r.RTT), r.Try))
		return pass(saw, "")
	case ctx.Err() != nil:
		return unfinished(ctx, Check6to4Reachability, saw)
	case errors.Is(err, probe.ErrNoEcho):
		saw.Add("echo reply", fmt.Sprintf("none in %v", time.Duration(probe.Tries)*probe.Timeout))
		return methodFail(Check6to4Reachability, winerr.Classify(err), saw,
			err.Error(),
			fmt.Sprintf("let IPv4 protocol 41 to and from %v through the firewalls on the path and on the server; check the server's 6to4 relay (`iphttps show 6to4` there); until then DirectAccess uses Teredo or IP-HTTPS", relay))
	}
	return methodFail(Check6to4Reachability, winerr.Classify(err), saw, err.Error(), "")
}
