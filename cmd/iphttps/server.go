package main

import (
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
CAP_NET_BIND_SERVICE for ports below 1024.`,
		Example: `  iphttps server --self-signed da.example.test --prefix 2001:db8:1::/64
  iphttps server --cert /etc/iphttps/server.pem --key /etc/iphttps/server.key \
      --prefix 2001:db8:1::/64 --route 2001:db8:c0::/48
  iphttps server --config /etc/iphttps/server.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			o, err := server.FromConfig(cfg, log)
			if err != nil {
				return err
			}
			s, err := server.New(o)
			if err != nil {
				return err
			}
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
	f.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "time allowed for the TLS handshake")
	f.DurationVar(&cfg.RAInterval, "ra-interval", cfg.RAInterval, "interval of unsolicited router advertisements")
	f.BoolVar(&cfg.SetForwarding, "set-forwarding", cfg.SetForwarding, "enable net.ipv6.conf.all.forwarding at start")
	addLogFlags(cmd, &cfg.Log)
	return cmd
}

func addLogFlags(cmd *cobra.Command, l *config.Log) {
	cmd.Flags().StringVar(&l.Level, "log-level", l.Level, "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&l.Format, "log-format", l.Format, "log format: text or json")
}
