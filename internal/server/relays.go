package server

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/iphttps/iphttps/internal/netcfg"
	"github.com/iphttps/iphttps/internal/sixtofour"
	sixtofoursrv "github.com/iphttps/iphttps/internal/sixtofour/server"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/teredo"
	teredosrv "github.com/iphttps/iphttps/internal/teredo/server"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
)

// relay is a transport the server offers next to IP-HTTPS (Teredo, 6to4):
// its clients' packets reach the intranet through the server's TUN device,
// and the kernel routes their prefix to the TUN device, where readHost
// offers each packet to the relays before the router.
type relay interface {
	// Name prefixes the relay's counters in the statistics ("teredo/...");
	// the metrics make it the label transport="teredo".
	Name() string
	Run(ctx context.Context) error
	Close()
	// FromHost takes a packet for one of the relay's clients and reports
	// whether it did; FlushHost sends what it took from one read batch.
	FromHost(p []byte) bool
	FlushHost()
	Clients() []status.Client
	Counters() map[string]uint64
	// describe adds the relay's part of the server's status.
	describe(st *status.Interface)
}

// serves are the destinations the server's relays carry clients to: the
// link prefix, the routes and the server's own addresses.
func (s *Server) serves() []netip.Prefix {
	serves := append([]netip.Prefix{s.o.Router.Prefix}, s.o.Router.Routes...)
	for _, a := range s.o.Router.HostAddrs {
		serves = append(serves, netip.PrefixFrom(a, 128))
	}
	return serves
}

// startRelays makes the configured relays and routes their prefixes to the
// TUN device.
func (s *Server) startRelays() error {
	newWriter := func() *tundev.Writer { return tundev.NewWriter(s.dev, 128) }
	if s.o.Teredo.Primary.IsValid() {
		t, err := teredosrv.New(teredosrv.Options{
			Primary: s.o.Teredo.Primary, Secondary: s.o.Teredo.Secondary, Lab: s.o.Teredo.Lab,
			Serves: s.serves(), Log: s.log.With("transport", "teredo"),
			NewHostWriter: func() tundev.PacketWriter { return newWriter() },
		})
		if err != nil {
			return err
		}
		s.relays = append(s.relays, teredoRelay{t, s.o.Teredo})
		if err := netcfg.ReplaceRoute(s.o.Interface, teredo.Prefix); err != nil {
			return winerr.New(winerr.InstallFailure, fmt.Errorf("route the Teredo prefix %v to %s: %w", teredo.Prefix, s.o.Interface, err))
		}
	}
	if s.o.SixToFour.Address.IsValid() {
		r, err := sixtofoursrv.New(sixtofoursrv.Options{
			Address: s.o.SixToFour.Address, Lab: s.o.SixToFour.Lab,
			Serves: s.serves(), Log: s.log.With("transport", "6to4"),
			NewHostWriter: func() tundev.PacketWriter { return newWriter() },
		})
		if err != nil {
			return err
		}
		s.relays = append(s.relays, sixToFourRelay{r})
		// The server holds its 6to4 address (the kernel answers the
		// clients' path test) and routes 2002::/16 to the TUN device.
		if err := netcfg.AddAddr(s.o.Interface, netip.PrefixFrom(r.Self(), 128), 0, 0, false); err != nil {
			return winerr.New(winerr.InstallFailure, fmt.Errorf("give %s the 6to4 address %v: %w", s.o.Interface, r.Self(), err))
		}
		if err := netcfg.ReplaceRoute(s.o.Interface, sixtofour.Prefix); err != nil {
			return winerr.New(winerr.InstallFailure, fmt.Errorf("route the 6to4 prefix %v to %s: %w", sixtofour.Prefix, s.o.Interface, err))
		}
	}
	return nil
}

type teredoRelay struct {
	*teredosrv.Server
	o TeredoOptions
}

func (teredoRelay) Name() string { return "teredo" }

func (t teredoRelay) describe(st *status.Interface) {
	st.Teredo = &status.TeredoServer{
		Primary: t.o.Primary.String(), Secondary: t.Secondary().String(), Prefix: t.Prefix().String(),
	}
}

type sixToFourRelay struct{ *sixtofoursrv.Server }

func (sixToFourRelay) Name() string { return "6to4" }

func (r sixToFourRelay) describe(st *status.Interface) {
	st.SixToFourRelay = &status.SixToFourRelay{Address: r.Self().String(), Prefix: sixtofour.Prefix.String()}
}
