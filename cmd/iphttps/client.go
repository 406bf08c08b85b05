package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/iphttps"
	iphttpsclient "github.com/iphttps/iphttps/internal/iphttps/client"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/userspace"
)

func newClientCmd() *cobra.Command {
	cfg := config.DefaultClient()
	var file string
	cmd := &cobra.Command{
		Use:   "client [URL]",
		Short: "Connect to a DirectAccess server over IP-HTTPS, Teredo or 6to4 (or the best of them) and keep the tunnel up",
		Long: `Connect to an IP-HTTPS server and bring up a tunnel interface (TUN, MTU 1280). The client
solicits the server's router advertisement, forms its address from the advertised /64 after
duplicate address detection, and installs routes to the prefix, to every route the server
advertises, and to --route prefixes. It keeps the tunnel up: after a failure it retries with
the [MS-IPHTTPS] timer (30 s, then the time since the first failure, at most 15 min).

The server certificate is checked the way Windows checks it: the chain must end in a trusted
root (system roots, or --ca), and the subject CN must be the URL's host name (--name-rule
standard checks the subject alternative names instead). The URL must name the host; an IP
literal is refused with 0x4be, as Windows does.

With --userspace no root, TUN device or route is needed: the link ends in an IPv6 stack inside
the process, and applications reach the network behind the server through a local SOCKS5
listener (--socks) and, if asked, an HTTP proxy listener (--http-proxy).

With --teredo-server the client uses Teredo (IPv6 in UDP through NATs, RFC 4380) instead:
it qualifies with the Teredo server (a DirectAccess server's first public IPv4 address, which
is also the relay to the intranet), reports the NAT type as Windows does (iphttps show teredo),
configures its 2001:0::/32 address, and routes 2001::/32 and the --route prefixes into the
tunnel. A symmetric NAT is refused with the reason: IP-HTTPS is then the way through.

With --6to4-relay the client uses 6to4 (IPv6 in IPv4 protocol 41, for a host with a public
IPv4 address), after three tests (the address is public, no NAT in the way, protocol 41 gets
through to the relay and back) that run again on every network change: a failed test takes the
address and routes off (iphttps show 6to4 says why).

Given more than one of a URL, --teredo-server and --6to4-relay, the client chooses as a
DirectAccess client does: 6to4, then Teredo, then IP-HTTPS (--paths-order), the first that
works carrying the traffic, a better one taking over when it works again (--paths-recheck);
iphttps show paths says which one is in use and why not the others.

On SIGHUP the configuration file is read again and the client reconnects with it (the
interface name cannot change). On SIGINT or SIGTERM the interface, its addresses and routes
are removed.`,
		Example: `  iphttps client https://da.example.com/IPHTTPS
  iphttps client https://da.example.test/IPHTTPS --ca /etc/iphttps/ca.pem --route 2001:db8:c0::/48
  iphttps client --config /etc/iphttps/client.toml
  iphttps client https://da.example.com/IPHTTPS --userspace --socks 127.0.0.1:1080
  iphttps client --teredo-server 203.0.113.10 --route 2001:db8:c0::/48
  iphttps client --6to4-relay 203.0.113.10 --route 2001:db8:c0::/48
  iphttps client https://da.example.com/IPHTTPS --teredo-server 203.0.113.10 --6to4-relay 203.0.113.10`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flagged := cfg // the defaults and flags, before the file
			resolve := func() (config.Client, error) {
				c := flagged
				if file != "" {
					fc, err := config.Load(file, config.DefaultClient())
					if err != nil {
						return c, err
					}
					config.Merge(&c, fc, cmd.Flags())
				}
				if len(args) == 1 {
					c.URL = args[0]
				}
				return c, nil
			}
			c, err := resolve()
			if err != nil {
				return err
			}
			log, err := newLogger(c.Log)
			if err != nil {
				return err
			}
			o, err := clientOptions(c, log)
			if err != nil {
				return err
			}
			var proxies *userspace.Proxies
			userspaceMode := c.Userspace
			if userspaceMode {
				if proxies, err = startUserspace(c, &o); err != nil {
					return err
				}
			}
			cl := client.New(o)
			// SIGHUP re-reads the configuration file.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					c, err := resolve()
					var o client.Options
					if err == nil {
						o, err = clientOptions(c, log)
					}
					if err == nil && c.Userspace != userspaceMode {
						err = fmt.Errorf("userspace mode cannot change on reload: restart the client")
					}
					if err == nil {
						err = cl.Reload(o)
					}
					if err != nil {
						log.Error("configuration not reloaded; the running one stays", "err", err)
					}
				}
			}()
			if proxies != nil {
				ctx, stop := context.WithCancel(cmd.Context())
				defer stop()
				served := make(chan struct{})
				go func() { proxies.Serve(ctx); close(served) }()
				defer func() { stop(); <-served }()
				log.Info("userspace mode: applications reach the tunnel through the proxy listeners", "listeners", proxies.Addrs())
			}
			return cl.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "TOML configuration file (url = \"https://...\" and the flags' keys)")
	addConnectionFlags(f, &cfg)
	f.StringSliceVar(&cfg.Routes, "route", nil, "extra prefix to route through the tunnel (repeatable)")
	f.BoolVar(&cfg.AcceptDefaultRoute, "accept-default-route", cfg.AcceptDefaultRoute, "install a default route when the server advertises itself as default router")
	f.DurationVar(&cfg.ReconnectInitial, "reconnect-initial", cfg.ReconnectInitial, "first wait of the reconnect timer")
	f.DurationVar(&cfg.ReconnectMax, "reconnect-max", cfg.ReconnectMax, "longest wait of the reconnect timer")
	f.Float64Var(&cfg.ReconnectJitter, "reconnect-jitter", cfg.ReconnectJitter, "random spread of reconnect waits, as a fraction (0.1 = ±10%)")
	f.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "time allowed to connect, for TLS, and for the server's answer")
	f.DurationVar(&cfg.RATimeout, "ra-timeout", cfg.RATimeout, "time allowed for a router advertisement with a prefix once connected")
	f.StringVar(&cfg.ControlSocket, "control-socket", "", "control socket path (default /run/iphttps/client-<interface>.sock)")
	f.StringVar(&cfg.Offload, "offload", cfg.Offload, "TUN offload (GSO/GRO): auto, on or off")
	f.BoolVar(&cfg.Userspace, "userspace", false, "rootless mode: no TUN device or routes; an in-process IPv6 stack reached through local SOCKS5/HTTP proxy listeners")
	f.StringVar(&cfg.Socks, "socks", cfg.Socks, "userspace mode: SOCKS5 listener (loopback host:port; empty: none)")
	f.StringVar(&cfg.HTTPProxy, "http-proxy", "", "userspace mode: HTTP proxy listener, CONNECT and http:// (loopback host:port; may equal --socks)")
	f.StringSliceVar(&cfg.UserspaceDNS, "userspace-dns", nil, "userspace mode: name server reached through the tunnel, tried first for host names (repeatable)")
	f.BoolVar(&cfg.UserspaceDirect, "userspace-direct", cfg.UserspaceDirect, "userspace mode: connect directly to destinations outside the tunnel's routes (false: refuse them)")
	addTeredoClientFlags(f, &cfg)
	addSixToFourClientFlags(f, &cfg)
	addPathFlags(f, &cfg)
	addLogFlags(cmd, &cfg.Log)
	return cmd
}

// addConnectionFlags declares the flags that say how the client reaches its
// server: certificates, name rule, URL rules, proxies. `iphttps diagnose`
// takes the same ones, so that it checks what the client would do.
func addConnectionFlags(f *pflag.FlagSet, cfg *config.Client) {
	f.StringVar(&cfg.CA, "ca", "", "CA bundle (PEM) to trust instead of the system roots")
	f.StringVar(&cfg.Cert, "cert", "", "client certificate (PEM), for servers in authentication mode certificates")
	f.StringVar(&cfg.Key, "key", "", "private key of the client certificate (PEM)")
	f.StringVar(&cfg.Interface, "interface", cfg.Interface, "name of the tunnel (TUN) device")
	f.StringVar(&cfg.NameRule, "name-rule", cfg.NameRule, "server certificate name check: windows (subject CN = host) or standard (SAN)")
	f.BoolVar(&cfg.AllowIPLiteral, "allow-ip-literal", false, "accept an IP address as the URL's host (Windows refuses it with 0x4be)")
	f.BoolVar(&cfg.AllowPlainHTTP, "allow-plain-http", false, "accept an http:// URL (no TLS: only on a trusted network)")
	f.StringVar(&cfg.Proxy, "proxy", "", "HTTP proxy to CONNECT through (http://host:port), or \"direct\"; default: HTTPS_PROXY/NO_PROXY from the environment")
	f.StringVar(&cfg.PAC, "pac", "", "proxy auto-configuration script (file or http(s) URL) choosing the proxy, when --proxy is not given")
	f.StringVar(&cfg.ProxyCredentials, "proxy-credentials", "", "file holding user:password for the proxy (Basic, or the Kerberos password for Negotiate)")
	f.StringVar(&cfg.ProxyAuth, "proxy-auth", cfg.ProxyAuth, "proxy authentication: auto (Negotiate when offered and Kerberos is configured, else Basic), basic or negotiate")
	f.StringVar(&cfg.ProxyKrb5Conf, "proxy-krb5-conf", "", "krb5.conf for Negotiate (Kerberos) proxy authentication; without it no Kerberos")
	f.StringVar(&cfg.ProxyKeytab, "proxy-keytab", "", "Kerberos keytab to log in with for Negotiate, instead of the password (principal: the proxy user, else the keytab's first)")
	f.StringVar(&cfg.ProxyCache, "proxy-cache", cfg.ProxyCache, "file remembering the proxy that last worked (tried first); empty: no cache")
}

// startUserspace prepares the rootless mode: the in-process IPv6 stack as
// the client's host, and the proxy listeners (opened now, so that a taken
// port is reported before anything else starts).
func startUserspace(cfg config.Client, o *client.Options) (*userspace.Proxies, error) {
	var dns []netip.Addr
	for _, s := range cfg.UserspaceDNS {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() {
			return nil, fmt.Errorf("userspace_dns %q: not an IPv6 address (name servers are reached through the tunnel)", s)
		}
		dns = append(dns, a)
	}
	stack := userspace.New(client.LinkMTU, dns, o.Log)
	d := &userspace.Dialer{Stack: stack, Direct: cfg.UserspaceDirect}
	proxies, err := userspace.Listen(cfg.Socks, cfg.HTTPProxy, d, o.Log)
	if err != nil {
		return nil, err
	}
	o.Host = func() (client.Host, error) { return stack, nil }
	o.Listeners = proxies.Addrs()
	return proxies, nil
}

func clientOptions(cfg config.Client, log *slog.Logger) (client.Options, error) {
	o := client.Options{
		Log:           log,
		Interface:     cfg.Interface,
		Backoff:       client.Backoff{Initial: cfg.ReconnectInitial, Max: cfg.ReconnectMax, Jitter: cfg.ReconnectJitter},
		ControlSocket: cfg.ControlSocket,
	}
	if o.ControlSocket == "" {
		o.ControlSocket = control.SocketPath("client", cfg.Interface)
	}
	if cfg.ReconnectInitial <= 0 || cfg.ReconnectMax < cfg.ReconnectInitial {
		return o, fmt.Errorf("reconnect timer: want 0 < reconnect_initial <= reconnect_max (got %v, %v)", cfg.ReconnectInitial, cfg.ReconnectMax)
	}
	if cfg.ConnectTimeout <= 0 || cfg.RATimeout <= 0 {
		return o, fmt.Errorf("connect_timeout and ra_timeout must be positive (got %v, %v)", cfg.ConnectTimeout, cfg.RATimeout)
	}
	if cfg.ReconnectJitter < 0 || cfg.ReconnectJitter > 0.5 {
		return o, fmt.Errorf("reconnect_jitter %v: want 0 to 0.5", cfg.ReconnectJitter)
	}
	var err error
	if o.Offload, err = tundev.ParseOffload(cfg.Offload); err != nil {
		return o, err
	}
	for _, r := range cfg.Routes {
		p, err := netip.ParsePrefix(r)
		if err != nil || !p.Addr().Is6() {
			return o, fmt.Errorf("route %q: not an IPv6 prefix", r)
		}
		o.Routes = append(o.Routes, p.Masked())
	}
	methods := 0
	for _, v := range []string{cfg.URL, cfg.TeredoServer, cfg.SixToFourRelay} {
		if v != "" {
			methods++
		}
	}
	switch {
	case methods > 1:
		sel, url, err := pathSelector(cfg, log)
		if err != nil {
			return o, err
		}
		o.Transport, o.URL = sel, url
		return o, nil
	case cfg.SixToFourRelay != "":
		t, err := sixToFourTransport(cfg, log)
		if err != nil {
			return o, err
		}
		o.Transport, o.URL = t, "6to4://"+cfg.SixToFourRelay
		return o, nil
	case cfg.TeredoServer != "":
		t, err := teredoTransport(cfg, log)
		if err != nil {
			return o, err
		}
		o.Transport, o.URL = t, "teredo://"+cfg.TeredoServer
		return o, nil
	case cfg.URL == "":
		return o, fmt.Errorf("no IP-HTTPS URL: give it as the argument or as url in the configuration file (e.g. https://da.example.com/IPHTTPS), or --teredo-server or --6to4-relay")
	}
	t, configErr, err := ipHTTPSTransport(cfg)
	if err != nil {
		return o, err
	}
	o.Transport, o.URL, o.ConfigError = t, cfg.URL, configErr
	return o, nil
}

// ipHTTPSTransport makes the IP-HTTPS transport for cfg.URL. An unusable
// URL is configErr, not err: as on Windows it is a state (the client runs,
// shows "Invalid IPHTTPS URL specified", 0x4be, and waits for a corrected
// configuration), not a crash.
func ipHTTPSTransport(cfg config.Client) (t *iphttpsclient.Transport, configErr, err error) {
	to := iphttpsclient.Options{ConnectTimeout: cfg.ConnectTimeout, RATimeout: cfg.RATimeout, AcceptDefaultRoute: cfg.AcceptDefaultRoute}
	if to.Target, err = iphttps.ParseURL(cfg.URL, cfg.AllowIPLiteral, cfg.AllowPlainHTTP); err != nil {
		to.Target, configErr = iphttps.Target{URL: cfg.URL}, err
	}
	if to.Proxy, err = proxyConfig(cfg); err != nil {
		return nil, nil, err
	}
	if configErr == nil && to.Target.HTTPS {
		if to.TLS, err = tlsConfig(cfg, to.Target.Host); err != nil {
			return nil, nil, err
		}
	}
	return iphttpsclient.New(to), configErr, nil
}

// tlsConfig is the client's TLS configuration for host: the trusted roots
// (--ca, else the system's), the client certificate, the name rule.
func tlsConfig(cfg config.Client, host string) (*tls.Config, error) {
	var roots *x509.CertPool
	if cfg.CA != "" {
		var err error
		if roots, err = pki.LoadPool(cfg.CA); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	var certs []tls.Certificate
	if cfg.Cert != "" || cfg.Key != "" {
		c, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate (cert %q, key %q): %w", cfg.Cert, cfg.Key, err)
		}
		certs = append(certs, c)
	}
	rule, err := iphttps.ParseNameRule(cfg.NameRule)
	if err != nil {
		return nil, err
	}
	return iphttps.TLSConfig(host, roots, rule, certs, nil), nil
}

// proxyConfig resolves the proxy settings; credentials come from the
// configuration file or a credentials file, never from the command line.
func proxyConfig(cfg config.Client) (proxy.Config, error) {
	pc := proxy.Config{Explicit: cfg.Proxy, User: cfg.ProxyUser, Password: cfg.ProxyPassword}
	if cfg.PAC != "" {
		pc.PAC = &proxy.PACSource{Location: cfg.PAC}
	}
	if cfg.Proxy != "" && cfg.Proxy != proxy.Direct {
		p, err := proxy.Parse(cfg.Proxy)
		if err != nil {
			return pc, err
		}
		if p.User != "" {
			return pc, fmt.Errorf("proxy %q: put credentials in a file (--proxy-credentials) or the configuration file (proxy_user, proxy_password), not in the URL on the command line", p.String())
		}
	}
	if cfg.ProxyCredentials != "" {
		u, pw, err := proxy.ReadCredentials(cfg.ProxyCredentials)
		if err != nil {
			return pc, err
		}
		pc.User, pc.Password = u, pw
	}
	if cfg.ProxyCache != "" {
		pc.Cache = &proxy.Cache{Path: cfg.ProxyCache}
	}
	auth, err := proxy.ParseAuth(cfg.ProxyAuth)
	if err != nil {
		return pc, err
	}
	pc.Auth = auth
	if cfg.ProxyKrb5Conf != "" {
		k, err := proxy.LoadKerberos(cfg.ProxyKrb5Conf, cfg.ProxyKeytab)
		if err != nil {
			return pc, err
		}
		pc.Kerberos = k
	} else if cfg.ProxyKeytab != "" || pc.Auth == proxy.AuthNegotiate {
		return pc, fmt.Errorf("proxy: Negotiate (Kerberos) needs a krb5.conf: set proxy_krb5_conf (--proxy-krb5-conf)")
	}
	return pc, nil
}
