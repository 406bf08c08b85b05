package main

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/sixtofour"
)

// errDiagnosisFailed is returned (exit status 1) when a check failed; the
// report already said which.
type errDiagnosisFailed struct{ r diagnose.Report }

func (e errDiagnosisFailed) Error() string {
	return fmt.Sprintf("diagnose: check %s failed (%s)", e.r.Failed, e.r.Code)
}

func newDiagnoseCmd() *cobra.Command {
	cfg := config.DefaultClient()
	var (
		file     string
		asJSON   bool
		timeout  time.Duration
		echoHost string
	)
	cmd := &cobra.Command{
		Use:   "diagnose [URL]",
		Short: "Check, step by step, why a DirectAccess client (IP-HTTPS, Teredo, 6to4) cannot connect",
		Long: `Run the checks Windows' troubleshooting articles make by hand, in order, against the
IP-HTTPS server at URL (or the url of --config), with the client's settings:

  platform-ipv6 platform-tun platform-interface   IPv6 on, TUN usable, no stale interface
  url dns proxy tcp                               URL rules, name, proxy in effect, TCP
  tls cert-chain cert-validity cert-name          TLS handshake, trusted root, validity,
  cert-usage cert-revocation                      Windows name rule, EKU, CRL reachable
  iphttps-post router-advertisement               the 200 answer, an RA with a /64 prefix

With the server's other methods (the URL is then optional), their checks run before IP-HTTPS's, in the
order DirectAccess tries the methods, with the clients' own tests:

  --6to4-relay IPV4:     6to4-address 6to4-mapping 6to4-reachability
                         a public local address, no NAT (the relay's Teredo server sees that
                         address), an echo over protocol 41 (needs CAP_NET_RAW)
  --teredo-server ADDR:  teredo-primary teredo-secondary teredo-nat teredo-relay
                         the qualification with both server addresses, the NAT type, an echo
                         to --teredo-echo-host through the server

and a verdict says which method would carry the traffic and why the ones before it would not.

Each check prints PASS, WARN or FAIL, the Windows code it maps to (as netsh shows it), what
it saw, the likely cause and the fix. A check whose prerequisites failed is SKIPPED with the
reason. The exit status is 1 when a check failed, 0 otherwise (warnings allowed). --json
prints the same report as JSON (schema: go doc ./internal/diagnose).

The diagnosis opens its own connections (it does not disturb a running client) and needs no
root, but creating the client's TUN device does (without CAP_NET_ADMIN the TUN check warns),
and so does the 6to4 echo's raw socket (without CAP_NET_RAW it is skipped).`,
		Example: `  iphttps diagnose https://da.example.com/IPHTTPS
  iphttps diagnose --config /etc/iphttps/client.toml
  iphttps diagnose https://da.example.test/IPHTTPS --ca ca.pem --json
  iphttps diagnose --6to4-relay 203.0.113.10 --teredo-server 203.0.113.10 \
      --teredo-echo-host 2001:db8:c0::10 https://da.example.com/IPHTTPS`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cfg
			if file != "" {
				fc, err := config.Load(file, config.DefaultClient())
				if err != nil {
					return err
				}
				config.Merge(&c, fc, cmd.Flags())
			}
			if len(args) == 1 {
				c.URL = args[0]
			}
			o, err := diagnoseOptions(c)
			if err != nil {
				return err
			}
			if echoHost != "" {
				if o.TeredoEchoHost, err = netip.ParseAddr(echoHost); err != nil || !o.TeredoEchoHost.Is6() || o.TeredoEchoHost.Is4In6() {
					return fmt.Errorf("--teredo-echo-host %q: want an intranet host's IPv6 address", echoHost)
				}
			}
			o.Timeout = timeout
			log, err := newLogger(c.Log)
			if err != nil {
				return err
			}
			d := diagnose.SystemDeps()
			d.Log = log
			var progress func(diagnose.Check)
			out := cmd.OutOrStdout()
			if !asJSON {
				if err := diagnose.WriteHeader(out, o.Title()); err != nil {
					return err
				}
				progress = func(ch diagnose.Check) { _ = diagnose.WriteCheck(out, ch) }
			}
			r := diagnose.Run(cmd.Context(), o, d, progress)
			if asJSON {
				err = diagnose.WriteJSON(out, r)
			} else {
				err = diagnose.WriteSummary(out, r)
			}
			if err != nil {
				return err
			}
			if cmd.Context().Err() != nil {
				return fmt.Errorf("diagnose: interrupted")
			}
			if r.ExitCode() != 0 {
				return errDiagnosisFailed{r}
			}
			return nil
		},
	}
	// The client's flags for what the diagnosis checks; names, defaults and
	// configuration keys are the client's.
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "the client's TOML configuration file (url and the flags' keys)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.DurationVar(&timeout, "timeout", diagnose.DefaultTimeout, "time allowed for each check")
	addConnectionFlags(f, &cfg)
	f.StringVar(&cfg.ControlSocket, "control-socket", "", "the client's control socket, if not the default (/run/iphttps/client-<interface>.sock)")
	f.BoolVar(&cfg.Userspace, "userspace", false, "the client runs in userspace mode (no TUN device): skip the platform checks")
	f.StringVar(&cfg.SixToFourRelay, "6to4-relay", "", "check 6to4 too, with this relay: the DirectAccess server's public IPv4 address")
	f.BoolVar(&cfg.SixToFourLab, "6to4-lab", false, "treat the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) as public for 6to4, for labs and tests")
	f.StringVar(&cfg.TeredoServer, "teredo-server", "", "check Teredo too, with this Teredo server (IPv4 address or name; a DirectAccess server's first public address)")
	f.StringVar(&cfg.TeredoSecondary, "teredo-secondary", "", "the Teredo server's second IPv4 address, for the NAT type test (default: the first plus one)")
	f.IntVar(&cfg.TeredoClientPort, "teredo-client-port", 0, "local UDP port of the Teredo qualification (0: random)")
	f.BoolVar(&cfg.TeredoLab, "teredo-lab", false, "treat the documentation ranges as public for Teredo, for labs and tests")
	f.StringVar(&echoHost, "teredo-echo-host", "", "an intranet host's IPv6 address to ping through the Teredo server (DirectAccess needs intranet hosts to answer ICMPv6 echo)")
	addLogFlags(cmd, &cfg.Log)
	return cmd
}

// diagnoseOptions turns the client's configuration into what the diagnosis
// needs. The URL itself is not checked here: that is the url check.
func diagnoseOptions(c config.Client) (diagnose.Options, error) {
	o := diagnose.Options{
		URL:            c.URL,
		AllowIPLiteral: c.AllowIPLiteral,
		AllowPlainHTTP: c.AllowPlainHTTP,
		Interface:      c.Interface,
		Userspace:      c.Userspace,
		RootsName:      "system roots",
	}
	if c.SixToFourRelay != "" {
		relay, err := sixToFourRelay(c)
		if err != nil {
			return o, err
		}
		if err := sixtofour.CheckPublic(relay, c.SixToFourLab); err != nil {
			return o, fmt.Errorf("6to4_relay: %w", err)
		}
		o.SixToFourRelay, o.SixToFourLab = relay, c.SixToFourLab
	}
	if c.TeredoServer != "" {
		t, err := teredoOptions(c, nil)
		if err != nil {
			return o, err
		}
		o.TeredoServer, o.TeredoSecondary, o.TeredoClientPort, o.TeredoLab = t.Server, t.Secondary, t.ClientPort, t.Lab
	}
	if o.URL == "" && c.SixToFourRelay == "" && c.TeredoServer == "" {
		return o, fmt.Errorf("diagnose: no URL: give it as the argument or as url in --config (or --teredo-server, --6to4-relay)")
	}
	if c.ControlSocket != "" {
		o.ControlSockets = []string{c.ControlSocket}
	}
	var err error
	if c.CA != "" {
		if o.Roots, o.RootCerts, err = diagnose.ReadRoots(c.CA); err != nil {
			return o, fmt.Errorf("ca: %w", err)
		}
		o.RootsName = "--ca " + c.CA
	}
	if c.Cert != "" || c.Key != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return o, fmt.Errorf("client certificate (cert %q, key %q): %w", c.Cert, c.Key, err)
		}
		o.Certificates = []tls.Certificate{cert}
	}
	if o.NameRule, err = iphttps.ParseNameRule(c.NameRule); err != nil {
		return o, err
	}
	if o.Proxy, err = proxyConfig(c); err != nil {
		return o, err
	}
	return o, nil
}
