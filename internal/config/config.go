// Package config holds the configuration of the iphttps daemons: defaults,
// TOML files (unknown keys are errors), and command-line flags, which win
// over the file. A flag is named like its TOML key with "-" for "_".
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// Log configures logging.
type Log struct {
	Level  string `toml:"log_level"`
	Format string `toml:"log_format"`
}

// Server is the configuration of `iphttps server`.
type Server struct {
	Listen                string        `toml:"listen"`
	Path                  string        `toml:"path"`
	Cert                  string        `toml:"cert"`
	Key                   string        `toml:"key"`
	SelfSigned            string        `toml:"self_signed"`
	AuthMode              string        `toml:"auth_mode"`
	ClientCA              string        `toml:"client_ca"`
	Prefix                string        `toml:"prefix"`
	HostAddress           string        `toml:"host_address"`
	Routes                []string      `toml:"route"`
	AdvertiseDefaultRoute bool          `toml:"advertise_default_route"`
	PublishPrefix         bool          `toml:"publish_prefix"`
	Interface             string        `toml:"interface"`
	PlainHTTP             bool          `toml:"plain_http"`
	ServerHeader          string        `toml:"server_header"`
	IsolateClients        bool          `toml:"isolate_clients"`
	MaxClients            int           `toml:"max_clients"`
	ControlSocket         string        `toml:"control_socket"`
	Offload               string        `toml:"offload"`
	TLSMinVersion         string        `toml:"tls_min_version"`
	HandshakeTimeout      time.Duration `toml:"handshake_timeout"`
	HeadTimeout           time.Duration `toml:"head_timeout"`
	MaxClientsPerSource   int           `toml:"max_clients_per_source"`
	MaxPending            int           `toml:"max_pending"`
	MaxPendingPerSource   int           `toml:"max_pending_per_source"`
	ProxyProtocol         bool          `toml:"proxy_protocol"`
	ProxyProtocolFrom     []string      `toml:"proxy_protocol_from"`
	CRL                   []string      `toml:"crl"`
	MetricsListen         string        `toml:"metrics_listen"`
	ShutdownTimeout       time.Duration `toml:"shutdown_timeout"`
	RAInterval            time.Duration `toml:"ra_interval"`
	SetForwarding         bool          `toml:"set_forwarding"`
	// Teredo server and relay: the primary IPv4 address ("" off), the
	// secondary (default primary+1), documentation addresses as global.
	Teredo          string `toml:"teredo"`
	TeredoSecondary string `toml:"teredo_secondary"`
	TeredoLab       bool   `toml:"teredo_lab"`
	// 6to4 relay: the server's public IPv4 address ("" off), and
	// documentation addresses as public.
	SixToFour    string `toml:"6to4"`
	SixToFourLab bool   `toml:"6to4_lab"`
	Log
}

// DefaultServer returns the server defaults.
func DefaultServer() Server {
	return Server{
		Listen:           ":443",
		Path:             "/IPHTTPS",
		AuthMode:         "none",
		Interface:        "iphttps-srv",
		ServerHeader:     "Microsoft-HTTPAPI/2.0",
		MaxClients:       10000,
		Offload:          "auto",
		TLSMinVersion:    "1.2",
		HandshakeTimeout: 10 * time.Second,
		HeadTimeout:      10 * time.Second,
		// Many clients may share one address (a NAT); a single source
		// must not take the whole table, nor every handshake slot.
		MaxClientsPerSource: 256,
		MaxPending:          4096,
		MaxPendingPerSource: 64,
		ShutdownTimeout:     5 * time.Second,
		RAInterval:          200 * time.Second,
		SetForwarding:       true,
		PublishPrefix:       true,
		Log:                 Log{Level: "info", Format: "text"},
	}
}

// Client is the configuration of `iphttps client`.
type Client struct {
	URL                string        `toml:"url"`
	CA                 string        `toml:"ca"`
	Cert               string        `toml:"cert"`
	Key                string        `toml:"key"`
	Interface          string        `toml:"interface"`
	Routes             []string      `toml:"route"`
	AcceptDefaultRoute bool          `toml:"accept_default_route"`
	ReconnectInitial   time.Duration `toml:"reconnect_initial"`
	ReconnectMax       time.Duration `toml:"reconnect_max"`
	ReconnectJitter    float64       `toml:"reconnect_jitter"`
	ConnectTimeout     time.Duration `toml:"connect_timeout"`
	RATimeout          time.Duration `toml:"ra_timeout"`
	NameRule           string        `toml:"name_rule"`
	AllowIPLiteral     bool          `toml:"allow_ip_literal"`
	AllowPlainHTTP     bool          `toml:"allow_plain_http"`
	Proxy              string        `toml:"proxy"`             // "", "direct" or a URL
	PAC                string        `toml:"pac"`               // PAC script: file or http(s) URL
	ProxyCredentials   string        `toml:"proxy_credentials"` // file with user:password
	ProxyUser          string        `toml:"proxy_user"`        // config file only: never a flag
	ProxyPassword      string        `toml:"proxy_password"`    // config file only: never a flag
	ProxyCache         string        `toml:"proxy_cache"`
	ProxyAuth          string        `toml:"proxy_auth"`      // auto, basic or negotiate
	ProxyKrb5Conf      string        `toml:"proxy_krb5_conf"` // krb5.conf for Negotiate (Kerberos)
	ProxyKeytab        string        `toml:"proxy_keytab"`    // Kerberos keytab instead of the password
	ControlSocket      string        `toml:"control_socket"`
	Offload            string        `toml:"offload"`
	Userspace          bool          `toml:"userspace"`        // in-process IPv6 stack, no TUN, no root
	Socks              string        `toml:"socks"`            // userspace: SOCKS5 listener
	HTTPProxy          string        `toml:"http_proxy"`       // userspace: HTTP proxy listener
	UserspaceDNS       []string      `toml:"userspace_dns"`    // userspace: name servers through the tunnel
	UserspaceDirect    bool          `toml:"userspace_direct"` // userspace: other destinations connect directly
	// Teredo instead of IP-HTTPS: the server (IPv4 address or name; ""
	// IP-HTTPS), its second address (default the first plus one), the
	// client's UDP port (0: random), the refresh interval, and
	// documentation addresses counted as global (labs, tests).
	TeredoServer          string        `toml:"teredo_server"`
	TeredoSecondary       string        `toml:"teredo_secondary"`
	TeredoClientPort      int           `toml:"teredo_client_port"`
	TeredoRefreshInterval time.Duration `toml:"teredo_refresh_interval"`
	TeredoLab             bool          `toml:"teredo_lab"`
	// 6to4 instead of IP-HTTPS: the relay (the DirectAccess server's
	// public IPv4 address; "" off), documentation addresses counted as
	// public, how often a working path is tested again.
	SixToFourRelay        string        `toml:"6to4_relay"`
	SixToFourLab          bool          `toml:"6to4_lab"`
	SixToFourTestInterval time.Duration `toml:"6to4_test_interval"`
	// Several methods (more than one of url, teredo_server and
	// 6to4_relay): the order they are tried in, and how often the better
	// ones are tried again while a worse one carries the traffic.
	PathsOrder   []string      `toml:"paths_order"`
	PathsRecheck time.Duration `toml:"paths_recheck"`
	Log
}

// DefaultClient returns the client defaults; the reconnect timer is the one
// [MS-IPHTTPS] 3.1.2.1 specifies (30 s, then the time since the first
// failure, at most 15 minutes).
func DefaultClient() Client {
	return Client{
		Interface:          "iphttps0",
		AcceptDefaultRoute: true,
		ReconnectInitial:   30 * time.Second,
		ReconnectMax:       15 * time.Minute,
		ReconnectJitter:    0.1,
		ConnectTimeout:     20 * time.Second,
		RATimeout:          10 * time.Second,
		NameRule:           "windows",
		ProxyCache:         DefaultProxyCache(),
		ProxyAuth:          "auto",
		Offload:            "auto",
		Socks:              "127.0.0.1:1080",
		UserspaceDirect:    true,
		// Windows' default Client Refresh Interval.
		TeredoRefreshInterval: 30 * time.Second,
		SixToFourTestInterval: time.Minute,
		PathsOrder:            []string{"6to4", "teredo", "ip-https"},
		PathsRecheck:          5 * time.Minute,
		Log:                   Log{Level: "info", Format: "text"},
	}
}

// DefaultProxyCache is where the client remembers the proxy that worked:
// /var/lib/iphttps for root, the user's state directory otherwise
// ($XDG_STATE_HOME/iphttps, or ~/.local/state/iphttps).
func DefaultProxyCache() string {
	const name = "proxy-cache.json"
	if os.Geteuid() == 0 {
		return filepath.Join("/var/lib/iphttps", name)
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "iphttps", name)
	}
	if h, err := os.UserHomeDir(); err == nil && h != "/" && h != "" {
		return filepath.Join(h, ".local", "state", "iphttps", name)
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("iphttps-%d", os.Geteuid()), name)
}

// Load reads the TOML file at path into a copy of base and returns it; keys
// the file does not know are an error naming them.
func Load[T any](path string, base T) (T, error) {
	md, err := toml.DecodeFile(path, &base)
	if err != nil {
		return base, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return base, fmt.Errorf("config %s: unknown key(s) %s", path, strings.Join(keys, ", "))
	}
	return base, nil
}

// Merge resolves file and flag values: cur holds the flag-bound values (flags
// parsed over the defaults); for every field whose flag was not given on the
// command line, the value from file wins. Fields are matched to flags by
// their TOML key with "_" replaced by "-".
func Merge[T any](cur *T, file T, fs *pflag.FlagSet) {
	merge(reflect.ValueOf(cur).Elem(), reflect.ValueOf(file), fs)
}

func merge(dst, src reflect.Value, fs *pflag.FlagSet) {
	t := dst.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			merge(dst.Field(i), src.Field(i), fs)
			continue
		}
		key := strings.Split(f.Tag.Get("toml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		if fl := fs.Lookup(strings.ReplaceAll(key, "_", "-")); fl != nil && fl.Changed {
			continue
		}
		dst.Field(i).Set(src.Field(i))
	}
}
