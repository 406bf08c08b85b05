package netbench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// Pair is two network namespaces joined by one veth: a server side and a
// client side, each with an IPv4 and an IPv6 address on its veth end.
type Pair struct {
	SrvNS, CliNS   string       // namespace names
	SrvDev, CliDev string       // veth ends
	Srv4, Cli4     netip.Prefix // IPv4 addresses with their prefix length
	Srv6, Cli6     netip.Prefix // IPv6 addresses (added without DAD)
}

// Namespaces returns the two namespace names, client first (the order in
// which they are torn down).
func (p Pair) Namespaces() []string { return []string{p.CliNS, p.SrvNS} }

// Up creates both namespaces (loopback up), the veth between them and the
// addresses, then waits (at most 5 s) until the server's IPv6 address
// answers a ping from the client side. On failure the caller still has to
// call Down.
func (p Pair) Up(ctx context.Context) error {
	for _, ns := range []string{p.SrvNS, p.CliNS} {
		if err := lab.AddNetns(ctx, ns); err != nil {
			return err
		}
	}
	if err := lab.AddVeth(ctx, p.SrvNS, p.SrvDev, p.CliNS, p.CliDev); err != nil {
		return err
	}
	for _, a := range []struct {
		ns, dev string
		pfx     netip.Prefix
	}{
		{p.SrvNS, p.SrvDev, p.Srv4}, {p.CliNS, p.CliDev, p.Cli4},
		{p.SrvNS, p.SrvDev, p.Srv6}, {p.CliNS, p.CliDev, p.Cli6},
	} {
		if err := lab.AddAddr(ctx, a.ns, a.dev, a.pfx.String()); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := Output(ctx, p.CliNS, 3*time.Second, "ping", "-6", "-n", "-c", "1", "-W", "1", p.Srv6.Addr().String())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("veth %s-%s: %s does not answer: %w", p.SrvDev, p.CliDev, p.Srv6.Addr(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Down kills every process left in the two namespaces and deletes them
// (the veth goes with them). Namespaces that do not exist are no error, so
// Down also clears what an aborted earlier run left behind.
func (p Pair) Down(ctx context.Context) error {
	var errs []error
	for _, ns := range p.Namespaces() {
		if err := lab.DeleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
