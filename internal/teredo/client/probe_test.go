package client

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/winerr"
)

// newProbe opens a Probe in the client namespace of f.
func newProbe(t *testing.T, f *fixture, o Options) *Probe {
	t.Helper()
	o.Server, o.Lab = primary.String(), true
	var p *Probe
	netnstest.Do(t, f.cli, func() error {
		var err error
		p, err = NewProbe(context.Background(), o)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

// The Probe qualifies as a session does, step by step, behind a restricted
// NAT: no cone answer, the same mapping from the secondary address; its
// echo through the server reaches the intranet host and the answer comes
// back relayed by the primary address.
func TestProbeRestrictedNAT(t *testing.T) {
	t.Parallel()
	f := newFixture(t, restricted, true)
	p := newProbe(t, f, Options{})
	if p.Primary() != netip.AddrPortFrom(primary, 3544) || p.Secondary() != netip.AddrPortFrom(secondary, 3544) || p.Local().Addr() != clientAddr {
		t.Errorf("primary %v, secondary %v, local %v", p.Primary(), p.Secondary(), p.Local())
	}
	ctx := context.Background()
	q, err := p.QualifyPrimary(ctx)
	if err != nil || q.NAT != "" || q.Cone || q.Advertisement.Mapping.Addr() != natOutside || q.Advertisement.Server != primary {
		t.Fatalf("primary step: %+v, %v", q, err)
	}
	q, err = p.QualifySecondary(ctx, q)
	if err != nil || q.NAT != NATRestricted || q.SecondaryMapping != q.Advertisement.Mapping {
		t.Fatalf("secondary step: %+v, %v", q, err)
	}
	e, err := p.Echo(ctx, q, intranetHost)
	if err != nil || e.Relay != p.Primary() || e.Try != 1 {
		t.Fatalf("echo: %+v, %v", e, err)
	}
	if a, ok := teredo.ParseAddress(e.From); !ok || a.Mapped != q.Advertisement.Mapping || a.Server != primary {
		t.Errorf("echo from %v, not a Teredo address of the mapping %v", e.From, q.Advertisement.Mapping)
	}
}

// Behind a symmetric NAT the secondary step refuses with 0x2afc and both
// mappings; an echo nobody answers fails with 0x274c after its tries.
func TestProbeSymmetricNATAndSilentHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, symmetric, true)
	f.answerPings.Store(false)
	p := newProbe(t, f, Options{})
	ctx := context.Background()
	q, err := p.QualifyPrimary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q, err = p.QualifySecondary(ctx, q)
	if !errors.Is(err, ErrSymmetricNAT) || winerr.Classify(err) != winerr.NoData || q.NAT != NATSymmetric ||
		!q.SecondaryMapping.IsValid() || q.SecondaryMapping == q.Advertisement.Mapping {
		t.Fatalf("secondary step: %+v, %v", q, err)
	}
	start := time.Now()
	_, err = p.Echo(ctx, q, intranetHost)
	if !errors.Is(err, packet.ErrNoEcho) || winerr.Classify(err) != winerr.TimedOut {
		t.Fatalf("echo: %v", err)
	}
	if _, _, budget := Budgets(); time.Since(start) < budget {
		t.Errorf("gave up after %v, budget %v", time.Since(start), budget)
	}
}
