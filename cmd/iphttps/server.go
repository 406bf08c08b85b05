package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/server"
)

func newServerCmd() *cobra.Command {
	cfg := config.DefaultServer()
	var file string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an IP-HTTPS server",
		Long: `Run an IP-HTTPS server. It accepts HTTPS connections, answers the IP-HTTPS POST on the
configured path (case-insensitive, as HTTP.sys does) and becomes the router of the IP-HTTPS
link: it answers router solicitations with the /64 prefix, defends addresses for duplicate
address detection, drops packets whose source a client does not own, and forwards between
clients and, through the TUN device, the host's IPv6 routing (IPv6 forwarding is enabled).

Authentication modes ([MS-IPHTTPS] 3.2.1):
  none          any TLS client may connect; the link filters ND and multicast strictly
  certificates  clients must present a certificate issued by --client-ca

Settings come from the TOML file given with --config (keys as the flags, with "_" for "-")
and from flags, which win. Needs CAP_NET_ADMIN (TUN, addresses, routes) and
CAP_NET_BIND_SERVICE for ports below 1024.

Limits: a connection has --handshake-timeout for TLS and --head-timeout for the request
head; at most --max-pending connections (--max-pending-per-source from one address) may be
in those phases at once, at most --max-clients sessions (--max-clients-per-source from one
address) held. What goes over is refused and counted (refused_* in show statistics); the
sessions already up are not touched. Behind a load balancer that sends the PROXY protocol
(--proxy-protocol), the address in the header is the client's for logs and limits.

Signals: SIGHUP reads the configuration file again (flags given on the command line keep
winning) and applies certificate, key (re-read from their files), client CA, CRLs, TLS
version, limits, timeouts, path, Server header and client isolation without dropping
sessions; a changed auth_mode disconnects every client ([MS-IPHTTPS] 3.2.5); settings
that shape the link or the sockets need a restart (the log names them).
SIGTERM or SIGINT: stop accepting, tell every client goodbye (TLS close_notify, within
--shutdown-timeout), remove the TUN device and exit 0.

Metrics: --metrics-listen 127.0.0.1:9443 serves Prometheus metrics on /metrics
(iphttps_server_*: sessions, bytes and packets, drops by reason, handshake failures by
Windows code, refusals by reason), on a listener of its own.`,
		Example: `  iphttps server --self-signed da.example.test --prefix 2001:db8:1::/64
  iphttps server --cert /etc/iphttps/server.pem --key /etc/iphttps/server.key \
      --prefix 2001:db8:1::/64 --route 2001:db8:c0::/48
  iphttps server --config /etc/iphttps/server.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfgAtStart := cfg // the flags over the defaults, before the file
			if file != "" {
				fc, err := config.Load(file, config.DefaultServer())
				if err != nil {
					return err
				}
				config.Merge(&cfg, fc, cmd.Flags())
			}
			log, err := newLogger(cfg.Log)
			if err != nil {
				return err
			}
			// SIGHUP re-reads the configuration file (flags given on the
			// command line keep winning); caught from here on, so a reload
			// sent while the server starts is not fatal.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			o, err := server.FromConfig(cfg, log)
			if err != nil {
				return err
			}
			s, err := server.New(o)
			if err != nil {
				return err
			}
			load := func() (config.Server, error) {
				c := cfgAtStart
				if file != "" {
					fc, err := config.Load(file, config.DefaultServer())
					if err != nil {
						return c, err
					}
					config.Merge(&c, fc, cmd.Flags())
				}
				return c, nil
			}
			go func() {
				for range hup {
					if err := s.ReloadFrom(load); err != nil {
						log.Error("configuration not reloaded; the running one stays", "err", err)
					}
				}
			}()
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "TOML configuration file")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "TCP address to listen on (host:port)")
	f.StringVar(&cfg.Path, "path", cfg.Path, "URL path of the IP-HTTPS endpoint (matched case-insensitively)")
	f.StringVar(&cfg.Cert, "cert", "", "server certificate (PEM, with intermediates); its subject CN must be the URL's host name")
	f.StringVar(&cfg.Key, "key", "", "private key of the server certificate (PEM)")
	f.StringVar(&cfg.SelfSigned, "self-signed", "", "for trials: make a self-signed certificate for this name (its PEM is written next to the control socket)")
	f.StringVar(&cfg.AuthMode, "auth-mode", cfg.AuthMode, "client authentication: none or certificates")
	f.StringVar(&cfg.ClientCA, "client-ca", "", "CA bundle (PEM) that client certificates must chain to (auth mode certificates)")
	f.StringVar(&cfg.Prefix, "prefix", "", "the IP-HTTPS link's /64 prefix, advertised to clients (required)")
	f.StringVar(&cfg.HostAddress, "host-address", "", "the server's own address in the prefix (default: prefix::1)")
	f.StringSliceVar(&cfg.Routes, "route", nil, "prefix reachable through this server, advertised as a route (repeatable)")
	f.BoolVar(&cfg.AdvertiseDefaultRoute, "advertise-default-route", false, "offer the server as the clients' default router (force tunneling)")
	f.BoolVar(&cfg.PublishPrefix, "publish-prefix", cfg.PublishPrefix, "advertise the prefix to clients (false: Windows' publish=no, clients connect but get no address; for troubleshooting)")
	f.StringVar(&cfg.Interface, "interface", cfg.Interface, "name of the server's TUN device")
	f.BoolVar(&cfg.PlainHTTP, "plain-http", false, "serve IP-HTTPS over plain HTTP, for a server behind a TLS terminator in TCP mode")
	f.StringVar(&cfg.ServerHeader, "server-header", cfg.ServerHeader, "value of the Server header in the 200 OK")
	f.BoolVar(&cfg.IsolateClients, "isolate-clients", false, "forbid client-to-client traffic")
	f.IntVar(&cfg.MaxClients, "max-clients", cfg.MaxClients, "most clients connected at once")
	f.StringVar(&cfg.ControlSocket, "control-socket", "", "control socket path (default /run/iphttps/server-<interface>.sock)")
	f.StringVar(&cfg.Offload, "offload", cfg.Offload, "TUN offload (GSO/GRO): auto, on or off")
	f.StringVar(&cfg.TLSMinVersion, "tls-min-version", cfg.TLSMinVersion, "lowest TLS version accepted: 1.0 (Windows 7 clients), 1.1, 1.2 or 1.3")
	f.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "time allowed for the TLS handshake (and the PROXY header)")
	f.DurationVar(&cfg.HeadTimeout, "head-timeout", cfg.HeadTimeout, "time allowed for the HTTP request head after the TLS handshake")
	f.IntVar(&cfg.MaxClientsPerSource, "max-clients-per-source", cfg.MaxClientsPerSource, "most sessions from one client address (0: no limit; many clients may share a NAT's address)")
	f.IntVar(&cfg.MaxPending, "max-pending", cfg.MaxPending, "most connections in their TLS handshake or request head at once")
	f.IntVar(&cfg.MaxPendingPerSource, "max-pending-per-source", cfg.MaxPendingPerSource, "most connections in their handshake from one client address (0: no limit)")
	f.BoolVar(&cfg.ProxyProtocol, "proxy-protocol", false, "every connection starts with a PROXY protocol v1/v2 header from a load balancer (HAProxy send-proxy-v2); its address is the client's")
	f.StringSliceVar(&cfg.ProxyProtocolFrom, "proxy-protocol-from", nil, "addresses or CIDR prefixes of the load balancers allowed to connect with --proxy-protocol (default: any)")
	f.StringSliceVar(&cfg.CRL, "crl", nil, "certificate revocation list(s) of the client CA (PEM or DER; auth mode certificates; re-read on SIGHUP)")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9443); off by default")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "on SIGTERM, time allowed for telling the clients goodbye")
	f.DurationVar(&cfg.RAInterval, "ra-interval", cfg.RAInterval, "interval of unsolicited router advertisements")
	f.BoolVar(&cfg.SetForwarding, "set-forwarding", cfg.SetForwarding, "enable net.ipv6.conf.all.forwarding at start")
	f.StringVar(&cfg.Teredo, "teredo", "", "also be a Teredo server and relay on UDP 3544 of this public IPv4 address and the next one (a DirectAccess server's two consecutive addresses)")
	f.StringVar(&cfg.TeredoSecondary, "teredo-secondary", "", "the Teredo server's second IPv4 address when it is not --teredo plus one")
	f.BoolVar(&cfg.TeredoLab, "teredo-lab", false, "treat the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) as public, for labs and tests")
	f.StringVar(&cfg.SixToFour, "6to4", "", "also be a 6to4 relay on this public IPv4 address: take IPv6 in IPv4 protocol 41 from 6to4 clients (2002::/16) and send the intranet's replies back to them")
	f.BoolVar(&cfg.SixToFourLab, "6to4-lab", false, "treat the documentation ranges as public for 6to4, for labs and tests")
	addLogFlags(cmd, &cfg.Log)
	return cmd
}

func addLogFlags(cmd *cobra.Command, l *config.Log) {
	cmd.Flags().StringVar(&l.Level, "log-level", l.Level, "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&l.Format, "log-format", l.Format, "log format: text or json")
}
