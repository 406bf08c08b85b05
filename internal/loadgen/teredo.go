package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iphttps/iphttps/internal/teredo"
)

// Teredo qualification load: many Teredo clients in one process, each with
// a UDP socket of its own, each qualifying once against a Teredo server
// (RFC 4380 section 5.2.1): a router solicitation carrying a fresh nonce,
// the server's advertisement checked (nonce, prefix, MTU, the mapping in
// its origin indication), retransmitted after a timeout as a client does.

// Defaults of TeredoOptions.
const (
	// DefaultTeredoTimeout is how long a client waits for the answer to
	// one solicitation, and DefaultTeredoAttempts how many it sends: RFC
	// 4380's qualification timer and retries (4 s, 3).
	DefaultTeredoTimeout  = 4 * time.Second
	DefaultTeredoAttempts = 3
)

// TeredoOptions describe a qualification run.
type TeredoOptions struct {
	// Server is the Teredo server's primary IPv4 address (port 3544).
	Server netip.Addr
	// Locals are the local IPv4 addresses the clients' sockets are bound
	// to, in turn (client i on Locals[i%len(Locals)], a port the kernel
	// chooses). Empty: the unspecified address.
	Locals []netip.Addr
	// Clients is the number of clients; Concurrency bounds the clients
	// qualifying at once (and so the sockets open at once).
	Clients, Concurrency int
	// Timeout and Attempts: how long each solicitation waits for its
	// answer, and how many a client sends (0: the defaults).
	Timeout  time.Duration
	Attempts int
	// NoNAT says the server sees the clients' sockets as they are: each
	// advertisement must then carry its socket's own address and port as
	// the mapping. Otherwise the mapping need only be a global address
	// (Lab: documentation addresses count as global).
	NoNAT, Lab bool
	// Listen opens a client's socket (nil: net.ListenUDP), for a caller
	// that puts the sockets in a network namespace.
	Listen func(laddr netip.AddrPort) (*net.UDPConn, error)
}

func (o TeredoOptions) check() (TeredoOptions, error) {
	if !o.Server.Is4() {
		return o, fmt.Errorf("loadgen: Teredo server %v: want an IPv4 address", o.Server)
	}
	for _, a := range o.Locals {
		if !a.Is4() {
			return o, fmt.Errorf("loadgen: local address %v: want IPv4", a)
		}
	}
	if o.NoNAT && len(o.Locals) == 0 {
		return o, errors.New("loadgen: checking the mapping without a NAT needs the local addresses (Locals)")
	}
	if o.Clients <= 0 {
		return o, fmt.Errorf("loadgen: %d Teredo clients: want at least one", o.Clients)
	}
	if o.Concurrency <= 0 {
		return o, fmt.Errorf("loadgen: concurrency %d: want at least one", o.Concurrency)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTeredoTimeout
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultTeredoAttempts
	}
	if o.Listen == nil {
		o.Listen = func(laddr netip.AddrPort) (*net.UDPConn, error) {
			return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(laddr))
		}
	}
	return o, nil
}

// TeredoReport is the outcome of a qualification run.
type TeredoReport struct {
	Clients     int `json:"clients"`
	Concurrency int `json:"concurrency"`
	// Qualified clients got a valid advertisement; Failed did not (no
	// answer to any attempt, a bad answer, a socket error).
	Qualified int `json:"qualified"`
	Failed    int `json:"failed"`
	// Solicitations counts the router solicitations sent, retransmissions
	// included; Lost those that got no answer within the timeout.
	Solicitations int `json:"solicitations"`
	Lost          int `json:"lost"`
	// BadAnswers counts datagrams that looked like an answer but failed a
	// check (wrong nonce, mapping, prefix, sender).
	BadAnswers int     `json:"bad_answers"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"` // qualified clients per second
	// Time is from each client's first solicitation to its valid
	// advertisement.
	Time   Dist     `json:"time"`
	Errors []string `json:"errors,omitempty"`
}

// ErrTeredoQualify is wrapped by the errors of a client that did not
// qualify.
var ErrTeredoQualify = errors.New("teredo qualification failed")

// RunTeredo qualifies o.Clients Teredo clients against o.Server,
// o.Concurrency at a time, and reports how it went. An error means the
// options were unusable; failed clients are counted in the report.
func RunTeredo(ctx context.Context, o TeredoOptions) (*TeredoReport, error) {
	o, err := o.check()
	if err != nil {
		return nil, err
	}
	var (
		next                     atomic.Int64
		sent, lost, bad, qual, n atomic.Int64
		mu                       sync.Mutex
		times                    = make([]time.Duration, 0, o.Clients)
		errs                     sampler
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range min(o.Concurrency, o.Clients) {
		wg.Go(func() {
			buf := make([]byte, 2048)
			for ctx.Err() == nil {
				id := int(next.Add(1) - 1)
				if id >= o.Clients {
					return
				}
				n.Add(1)
				r := qualifyOne(ctx, o, id, buf)
				sent.Add(int64(r.sent))
				lost.Add(int64(r.lost))
				bad.Add(int64(r.bad))
				if r.err != nil {
					errs.add(r.err)
					continue
				}
				qual.Add(1)
				mu.Lock()
				times = append(times, r.took)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	rep := &TeredoReport{
		Clients: o.Clients, Concurrency: o.Concurrency,
		Qualified: int(qual.Load()), Failed: int(n.Load() - qual.Load()),
		Solicitations: int(sent.Load()), Lost: int(lost.Load()), BadAnswers: int(bad.Load()),
		Seconds: wall.Seconds(), Time: NewDist(times), Errors: errs.msgs,
	}
	if rep.Seconds > 0 {
		rep.PerSecond = float64(rep.Qualified) / rep.Seconds
	}
	return rep, nil
}

// teredoResult is one client's qualification.
type teredoResult struct {
	sent, lost, bad int
	took            time.Duration
	err             error
}

// qualifyOne runs client id's qualification on a socket of its own.
func qualifyOne(ctx context.Context, o TeredoOptions, id int, buf []byte) (r teredoResult) {
	local := netip.IPv4Unspecified()
	if len(o.Locals) > 0 {
		local = o.Locals[id%len(o.Locals)]
	}
	c, err := o.Listen(netip.AddrPortFrom(local, 0))
	if err != nil {
		r.err = fmt.Errorf("loadgen: %w: client %d: socket on %v: %w", ErrTeredoQualify, id, local, err)
		return r
	}
	defer c.Close()
	self := c.LocalAddr().(*net.UDPAddr).AddrPort()
	self = netip.AddrPortFrom(self.Addr().Unmap(), self.Port())
	server := netip.AddrPortFrom(o.Server, teredo.Port)
	start := time.Now()
	var last error
	for range o.Attempts {
		if ctx.Err() != nil {
			break
		}
		var nonce [teredo.NonceLen]byte
		rand.Read(nonce[:])
		if _, err := c.WriteToUDPAddrPort(teredo.AppendRS(nil, nonce, false), server); err != nil {
			r.err = fmt.Errorf("loadgen: %w: client %d: send: %w", ErrTeredoQualify, id, err)
			return r
		}
		r.sent++
		deadline := time.Now().Add(o.Timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = c.SetReadDeadline(deadline)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				last = fmt.Errorf("no answer within %s", o.Timeout)
				r.lost++
				break
			}
			d, err := teredo.Parse(buf[:n])
			if err != nil || !d.HasAuth || d.Nonce != nonce {
				continue // not the answer to this solicitation
			}
			if err := checkAdvertisement(o, d, nonce, self, from); err != nil {
				r.bad++
				r.err = fmt.Errorf("loadgen: %w: client %d: %w", ErrTeredoQualify, id, err)
				return r
			}
			r.took = time.Since(start)
			return r
		}
	}
	if last == nil {
		last = ctx.Err()
	}
	r.err = fmt.Errorf("loadgen: %w: client %d on %v: %d solicitations: %w", ErrTeredoQualify, id, self, r.sent, last)
	return r
}

// checkAdvertisement checks the answer to the solicitation with nonce sent
// from self: a valid advertisement from the server's primary address, for
// its prefix, with the Teredo MTU and the client's mapping.
func checkAdvertisement(o TeredoOptions, d teredo.Datagram, nonce [teredo.NonceLen]byte, self, from netip.AddrPort) error {
	if from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port()); from != netip.AddrPortFrom(o.Server, teredo.Port) {
		return fmt.Errorf("advertisement from %v, not the server's %v:%d", from, o.Server, teredo.Port)
	}
	adv, err := teredo.ParseRA(d, nonce, teredo.RSSourceNonCone)
	if err != nil {
		return err
	}
	switch {
	case adv.Server != o.Server:
		return fmt.Errorf("advertised prefix %v is not the server's %v", adv.Prefix, teredo.ServerPrefix(o.Server))
	case adv.MTU != teredo.MTU:
		return fmt.Errorf("advertised MTU %d, want %d", adv.MTU, teredo.MTU)
	case o.NoNAT && adv.Mapping != self:
		return fmt.Errorf("mapping %v, want the socket's own %v (no NAT)", adv.Mapping, self)
	case !teredo.IsGlobalUnicast(adv.Mapping.Addr(), o.Lab):
		return fmt.Errorf("mapping %v is not a global address", adv.Mapping)
	}
	return nil
}
