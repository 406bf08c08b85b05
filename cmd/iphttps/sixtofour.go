package main

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/iphttps/iphttps/internal/config"
	sixtofourclient "github.com/iphttps/iphttps/internal/sixtofour/client"
)

// addSixToFourClientFlags adds the 6to4 client's flags.
func addSixToFourClientFlags(f *pflag.FlagSet, cfg *config.Client) {
	f.StringVar(&cfg.SixToFourRelay, "6to4-relay", "", "use 6to4 instead of IP-HTTPS (IPv6 in IPv4 protocol 41, for a host with a public IPv4 address), with this relay: the DirectAccess server's public IPv4 address")
	f.BoolVar(&cfg.SixToFourLab, "6to4-lab", false, "treat the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) as public for 6to4, for labs and tests")
	f.DurationVar(&cfg.SixToFourTestInterval, "6to4-test-interval", cfg.SixToFourTestInterval, "how often a working 6to4 path is tested again (an echo to the relay over protocol 41)")
}

// sixToFourTransport makes the 6to4 transport the configuration asks for.
func sixToFourTransport(cfg config.Client, log *slog.Logger) (*sixtofourclient.Transport, error) {
	relay, err := sixToFourRelay(cfg)
	if err != nil {
		return nil, err
	}
	return sixtofourclient.New(sixtofourclient.Options{
		Relay: relay, Lab: cfg.SixToFourLab, TestInterval: cfg.SixToFourTestInterval, Log: log,
	})
}

// sixToFourRelay is the configuration's 6to4 relay (the client's, and the
// one `iphttps diagnose` tests).
func sixToFourRelay(cfg config.Client) (netip.Addr, error) {
	relay, err := netip.ParseAddr(cfg.SixToFourRelay)
	if err != nil || !relay.Is4() {
		return netip.Addr{}, fmt.Errorf("6to4_relay %q: want the DirectAccess server's public IPv4 address, e.g. 203.0.113.10", cfg.SixToFourRelay)
	}
	return relay, nil
}
