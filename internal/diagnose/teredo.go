package diagnose

import (
	"context"
	"errors"
	"fmt"

	"github.com/iphttps/iphttps/internal/packet"
	teredoclient "github.com/iphttps/iphttps/internal/teredo/client"
	"github.com/iphttps/iphttps/internal/winerr"
)

// The Teredo checks (--teredo-server): the Teredo client's qualification,
// run by the client's own code (teredoclient.Probe) step by step, then a
// connectivity test through the server.

// teredoState is what the Teredo checks leave for the next.
type teredoState struct {
	probe *teredoclient.Probe
	q     teredoclient.Qualification
	// secondErr is the secondary step's error (nil: it passed or was not
	// needed).
	secondErr error
}

func (t *teredoState) close() {
	if t.probe != nil {
		t.probe.Close()
		t.probe = nil
	}
}

// Fixes of the Teredo checks.
const (
	fixUDP3544 = "let UDP to and from port 3544 of the server's two addresses through every firewall on the " +
		"path and on the server, and check that the server runs Teredo (`iphttps show teredo` there); until " +
		"then DirectAccess uses IP-HTTPS"
	fixSecondary = "let UDP to and from port 3544 of the secondary address through too; give --teredo-secondary " +
		"when the server's second address is not the primary plus one"
)

func (s *session) teredoSteps() []Step {
	primary, secondary, echo := teredoclient.Budgets()
	return []Step{
		{Name: CheckTeredoPrimary, Title: "Teredo server's primary address answers (UDP 3544)", NoInterfaceStatus: true,
			Budget: primary, Run: s.checkTeredoPrimary},
		{Name: CheckTeredoSecondary, Title: "Teredo server's secondary address answers", NoInterfaceStatus: true,
			Needs: []string{CheckTeredoPrimary}, Budget: secondary, Run: s.checkTeredoSecondary},
		{Name: CheckTeredoNAT, Title: "NAT type allows Teredo", NoInterfaceStatus: true,
			Needs: []string{CheckTeredoSecondary}, Run: func(context.Context) Check { return s.checkTeredoNAT() }},
		{Name: CheckTeredoRelay, Title: "echo to an intranet host through the server", NoInterfaceStatus: true,
			Needs: []string{CheckTeredoNAT}, Budget: echo, Run: s.checkTeredoRelay},
	}
}

// checkTeredoPrimary opens the client's socket and runs the
// qualification's first step: the cone test and the mapping towards the
// primary address.
func (s *session) checkTeredoPrimary(ctx context.Context) Check {
	var saw Facts
	saw.Add("server", s.o.TeredoServer)
	p, err := teredoclient.NewProbe(ctx, teredoclient.Options{
		Server: s.o.TeredoServer, Secondary: s.o.TeredoSecondary, ClientPort: s.o.TeredoClientPort,
		Lab: s.o.TeredoLab, Resolver: s.d.Resolver, Log: s.d.Log,
	})
	if err != nil {
		code := winerr.Classify(err)
		fix := "check the Teredo server's address or name (an IPv4 address; documentation ranges need --teredo-lab)"
		switch code {
		case winerr.HostNotFound, winerr.NoData:
			fix = "give --teredo-server the server's IPv4 address, or publish its name's A record (`getent ahostsv4 NAME`)"
		case winerr.AddrInUse:
			fix = "another program holds the client port (a running Teredo client, Miredo?): give another --teredo-client-port, or none"
		}
		return methodFail(CheckTeredoPrimary, code, saw, err.Error(), fix)
	}
	s.ter.probe = p
	saw.Add("primary", p.Primary())
	saw.Add("local", p.Local())
	q, err := p.QualifyPrimary(ctx)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return unfinished(ctx, CheckTeredoPrimary, saw)
	case errors.Is(err, teredoclient.ErrPrimaryUnreachable):
		saw.Add("answer", "none")
		return methodFail(CheckTeredoPrimary, winerr.Classify(err), saw,
			"UDP 3544 blocked on the path or no Teredo server: "+err.Error(), fixUDP3544)
	case errors.Is(err, teredoclient.ErrMappingNotGlobal):
		return methodFail(CheckTeredoPrimary, winerr.Classify(err), saw, err.Error(),
			"reach the server over the Internet, not from behind its own NAT; behind a carrier-grade NAT use IP-HTTPS")
	default:
		return methodFail(CheckTeredoPrimary, winerr.Classify(err), saw, err.Error(), "")
	}
	s.ter.q = q
	saw.Add("answer", fmt.Sprintf("router advertisement after %v", took(q.RTT)))
	saw.Add("prefix", q.Advertisement.Prefix)
	saw.Add("mapping", q.Advertisement.Mapping)
	if q.Cone {
		saw.Add("cone test", fmt.Sprintf("answered (from %v)", p.Secondary()))
	} else {
		saw.Add("cone test", "no answer: the NAT drops what it did not ask for (the symmetric test decides)")
	}
	return pass(saw, "")
}

// checkTeredoSecondary runs the symmetric test towards the secondary
// address, when the cone test did not already hear from it.
func (s *session) checkTeredoSecondary(ctx context.Context) Check {
	p := s.ter.probe
	var saw Facts
	saw.Add("secondary", p.Secondary())
	if s.ter.q.Cone {
		saw.Add("answer", "the cone test's, from this address")
		return pass(saw, "the cone test settled the NAT type: no symmetric test needed")
	}
	q, err := p.QualifySecondary(ctx, s.ter.q)
	s.ter.q, s.ter.secondErr = q, err
	switch {
	case err == nil, errors.Is(err, teredoclient.ErrSymmetricNAT):
		saw.Add("mapping", q.SecondaryMapping)
		return pass(saw, "")
	case ctx.Err() != nil:
		return unfinished(ctx, CheckTeredoSecondary, saw)
	case errors.Is(err, teredoclient.ErrSecondaryUnreachable):
		saw.Add("answer", "none")
		return methodWarn(CheckTeredoSecondary, winerr.Classify(err), saw,
			"only the secondary address does not answer: the NAT type cannot be determined: "+err.Error(), fixSecondary)
	case errors.Is(err, teredoclient.ErrMappingNotGlobal):
		c := methodFail(CheckTeredoSecondary, winerr.Classify(err), saw, err.Error(),
			"reach the server over the Internet, not from behind its own NAT; behind a carrier-grade NAT use IP-HTTPS")
		c.Remedies = methodRemedies(CheckTeredoPrimary, winerr.Classify(err)) // the same mapping as there
		return c
	}
	return methodFail(CheckTeredoSecondary, winerr.Classify(err), saw, err.Error(), "")
}

// checkTeredoNAT reports the NAT type as the client would: none, cone,
// restricted qualify; symmetric, or unknown without the secondary's
// answer, do not.
func (s *session) checkTeredoNAT() Check {
	q, local := s.ter.q, s.ter.probe.Local()
	var saw Facts
	if q.NAT != "" {
		saw.Add("NAT", q.NAT)
		saw.Add("NAT special behaviour", teredoclient.SpecialBehaviour(local, q.Advertisement.Mapping))
	}
	saw.Add("local mapping", local)
	saw.Add("external mapping", q.Advertisement.Mapping)
	switch {
	case errors.Is(s.ter.secondErr, teredoclient.ErrSecondaryUnreachable):
		saw.Add("NAT", "unknown")
		return methodFail(CheckTeredoNAT, winerr.Classify(s.ter.secondErr), saw,
			"the NAT type cannot be determined without the secondary address's answer: the Teredo client does not qualify (Error: "+
				teredoclient.ErrorSecondary+")", fixSecondary)
	case q.NAT == teredoclient.NATSymmetric:
		saw.Add("external mapping towards the secondary", q.SecondaryMapping)
		return methodFail(CheckTeredoNAT, winerr.Classify(s.ter.secondErr), saw,
			fmt.Sprintf("symmetric NAT: it maps this client to %v towards the primary and to %v towards the secondary address; Teredo needs a cone or restricted NAT",
				q.Advertisement.Mapping, q.SecondaryMapping),
			"IP-HTTPS, or forward a UDP port: a fixed port on the NAT forwarded to this host, used by the client (--teredo-client-port), makes the NAT a cone for Teredo")
	case q.NAT == "":
		return notApplicable(saw, "the NAT type was not determined: the secondary step did not finish")
	}
	return pass(saw, "the Teredo client qualifies: "+q.NAT)
}

// checkTeredoRelay is the direct connectivity test from the qualified
// address to --teredo-echo-host through the server.
func (s *session) checkTeredoRelay(ctx context.Context) Check {
	const requirement = "DirectAccess needs intranet hosts to answer ICMPv6 echo requests for Teredo clients: a " +
		"client finds a host's relay with this echo before it sends the host anything (docs/teredo.md, \"Data path\")"
	host := s.o.TeredoEchoHost
	if !host.IsValid() {
		return notApplicable(nil, "no --teredo-echo-host given; "+requirement)
	}
	p := s.ter.probe
	var saw Facts
	saw.Add("echo", fmt.Sprintf("to %v, through the server %v", host, p.Primary()))
	e, err := p.Echo(ctx, s.ter.q, host)
	saw.Add("from", e.From)
	switch {
	case err == nil:
		saw.Add("echo reply", fmt.Sprintf("relayed by %v after %v (try %d)", e.Relay, took(e.RTT), e.Try))
		return pass(saw, requirement)
	case ctx.Err() != nil:
		return unfinished(ctx, CheckTeredoRelay, saw)
	case errors.Is(err, packet.ErrNoEcho):
		saw.Add("echo reply", "none")
		return methodFail(CheckTeredoRelay, winerr.Classify(err), saw, err.Error()+"; "+requirement,
			"let ICMPv6 echo requests in and the replies out on the host; on the server, route the host's prefix into the tunnel (--route) and check `iphttps show teredo`")
	}
	return methodFail(CheckTeredoRelay, winerr.Classify(err), saw, err.Error(), "")
}
