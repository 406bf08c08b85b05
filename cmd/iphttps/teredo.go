package main

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/iphttps/iphttps/internal/config"
	teredoclient "github.com/iphttps/iphttps/internal/teredo/client"
)

// addTeredoClientFlags declares the flags that make the client use Teredo
// instead of IP-HTTPS.
func addTeredoClientFlags(f *pflag.FlagSet, cfg *config.Client) {
	f.StringVar(&cfg.TeredoServer, "teredo-server", "", "use Teredo instead of IP-HTTPS, qualifying with this Teredo server (IPv4 address or name; a DirectAccess server's first public address)")
	f.StringVar(&cfg.TeredoSecondary, "teredo-secondary", "", "the Teredo server's second IPv4 address, for the NAT type test (default: the first plus one)")
	f.IntVar(&cfg.TeredoClientPort, "teredo-client-port", 0, "local UDP port of the Teredo client (0: random, Windows' \"unspecified\")")
	f.DurationVar(&cfg.TeredoRefreshInterval, "teredo-refresh-interval", cfg.TeredoRefreshInterval, "Teredo Client Refresh Interval: how often the NAT mapping is refreshed with the server")
	f.BoolVar(&cfg.TeredoLab, "teredo-lab", false, "treat the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) as public, for labs and tests")
}

// teredoTransport makes the Teredo transport the configuration asks for.
func teredoTransport(cfg config.Client, log *slog.Logger) (*teredoclient.Transport, error) {
	o, err := teredoOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	return teredoclient.New(o)
}

// teredoOptions are the Teredo client's options from the configuration
// (the client's, and what `iphttps diagnose` probes with).
func teredoOptions(cfg config.Client, log *slog.Logger) (teredoclient.Options, error) {
	o := teredoclient.Options{
		Server:          cfg.TeredoServer,
		RefreshInterval: cfg.TeredoRefreshInterval,
		Lab:             cfg.TeredoLab,
		Log:             log,
	}
	if cfg.TeredoSecondary != "" {
		a, err := netip.ParseAddr(cfg.TeredoSecondary)
		if err != nil || !a.Is4() {
			return o, fmt.Errorf("teredo_secondary %q: want an IPv4 address", cfg.TeredoSecondary)
		}
		o.Secondary = a
	}
	if cfg.TeredoClientPort < 0 || cfg.TeredoClientPort > 65535 {
		return o, fmt.Errorf("teredo_client_port %d: want 0 (random) to 65535", cfg.TeredoClientPort)
	}
	o.ClientPort = uint16(cfg.TeredoClientPort)
	return o, nil
}
