package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/paths"
)

// addPathFlags adds the flags of a client with several methods.
func addPathFlags(f *pflag.FlagSet, cfg *config.Client) {
	f.StringSliceVar(&cfg.PathsOrder, "paths-order", cfg.PathsOrder, "with more than one of an IP-HTTPS URL, --teredo-server and --6to4-relay: the order the methods are tried in (6to4, teredo, ip-https)")
	f.DurationVar(&cfg.PathsRecheck, "paths-recheck", cfg.PathsRecheck, "with several methods: how often the better methods are tried again while a worse one carries the traffic")
}

// pathSelector makes the selector of a client configured with several
// methods, in cfg.PathsOrder (methods not configured are left out), and
// the URL shown in the status.
func pathSelector(cfg config.Client, log *slog.Logger) (*paths.Selector, string, error) {
	var methods []paths.Method
	var urls []string
	seen := map[string]bool{}
	for _, name := range cfg.PathsOrder {
		name = strings.ToLower(strings.TrimSpace(name))
		if seen[name] {
			return nil, "", fmt.Errorf("paths_order: %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "6to4":
			if cfg.SixToFourRelay == "" {
				continue
			}
			t, err := sixToFourTransport(cfg, log.With("path", "6to4"))
			if err != nil {
				return nil, "", err
			}
			methods = append(methods, paths.Method{Name: "6to4", Transport: t})
			urls = append(urls, "6to4://"+cfg.SixToFourRelay)
		case "teredo":
			if cfg.TeredoServer == "" {
				continue
			}
			t, err := teredoTransport(cfg, log.With("path", "Teredo"))
			if err != nil {
				return nil, "", err
			}
			methods = append(methods, paths.Method{Name: "Teredo", Transport: t, Budget: paths.TeredoBudget, HoldBack: paths.StartAlongside})
			urls = append(urls, "teredo://"+cfg.TeredoServer)
		case "ip-https", "iphttps":
			if cfg.URL == "" {
				continue
			}
			t, configErr, err := ipHTTPSTransport(cfg)
			if err != nil {
				return nil, "", err
			}
			if configErr != nil {
				return nil, "", fmt.Errorf("url: %w", configErr)
			}
			methods = append(methods, paths.Method{Name: "IP-HTTPS", Transport: t, HoldBack: paths.IPHTTPSHoldBack})
			urls = append(urls, cfg.URL)
		default:
			return nil, "", fmt.Errorf("paths_order: unknown method %q (want 6to4, teredo, ip-https)", name)
		}
	}
	for _, c := range []struct{ name, value string }{{"6to4", cfg.SixToFourRelay}, {"teredo", cfg.TeredoServer}, {"ip-https", cfg.URL}} {
		if c.value != "" && !seen[c.name] && !(c.name == "ip-https" && seen["iphttps"]) {
			return nil, "", fmt.Errorf("paths_order %v leaves out %s, which is configured", cfg.PathsOrder, c.name)
		}
	}
	sel, err := paths.New(paths.Options{Methods: methods, Recheck: cfg.PathsRecheck, Log: log})
	if err != nil {
		return nil, "", err
	}
	return sel, strings.Join(urls, " "), nil
}
