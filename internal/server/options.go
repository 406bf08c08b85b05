package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
)

// LinkMTU is the MTU of the IP-HTTPS link; [MS-IPHTTPS] 3.2.3.1 requires 1280.
const LinkMTU = 1280

// Options is a validated server configuration.
type Options struct {
	Listen           string
	Path             string
	URL              string      // for status: https://+:443/IPHTTPS
	TLS              *tls.Config // nil: plain HTTP behind a TLS terminator
	ServerHeader     string
	Router           router.Config
	Interface        string
	Limits           Limits
	HandshakeTimeout time.Duration
	HeadTimeout      time.Duration
	RAInterval       time.Duration
	SetForwarding    bool
	Offload          tundev.Offload
	ControlSocket    string
	// ProxyProtocol: every connection starts with a PROXY v1/v2 header
	// from a load balancer; ProxyFrom (empty: any) are the peers allowed
	// to send one.
	ProxyProtocol bool
	ProxyFrom     []netip.Prefix
	MetricsListen string
	// ShutdownTimeout bounds the goodbye to clients on shutdown.
	ShutdownTimeout time.Duration
	SelfSigned      string // the name of a self-signed certificate in use
	LogSettings     string // log level and format, as configured (they apply at start)
	Teredo          TeredoOptions
	SixToFour       SixToFourOptions
	Log             *slog.Logger
}

// SixToFourOptions turn on the 6to4 relay next to IP-HTTPS.
type SixToFourOptions struct {
	Address netip.Addr // invalid: 6to4 off
	Lab     bool
}

// TeredoOptions turn on the Teredo server and relay next to IP-HTTPS.
type TeredoOptions struct {
	Primary, Secondary netip.Addr // Primary invalid: Teredo off
	Lab                bool
}

// Limits bound what clients may take of the server. The per-source limits
// count by the client's address (the one in a PROXY header when that is
// on); zero there means no limit.
type Limits struct {
	MaxClients          int // sessions in the client table
	MaxClientsPerSource int
	MaxPending          int // connections in the TLS handshake or the request head
	MaxPendingPerSource int
}

// FromConfig validates c and turns it into Options. Every error is one line
// naming the setting and the fix, with the Windows code where one applies.
func FromConfig(c config.Server, log *slog.Logger) (Options, error) {
	return fromConfig(c, log, nil)
}

// ReloadConfig is FromConfig for a running server whose options are cur: a
// self-signed certificate of the same name is kept, not made anew.
func ReloadConfig(c config.Server, log *slog.Logger, cur Options) (Options, error) {
	var keep *tls.Certificate
	if c.SelfSigned != "" && c.SelfSigned == cur.SelfSigned && cur.TLS != nil && len(cur.TLS.Certificates) > 0 {
		keep = &cur.TLS.Certificates[0]
	}
	return fromConfig(c, log, keep)
}

func fromConfig(c config.Server, log *slog.Logger, keep *tls.Certificate) (Options, error) {
	o := Options{
		Listen:       c.Listen,
		ServerHeader: c.ServerHeader,
		Interface:    c.Interface,
		Limits: Limits{
			MaxClients:          c.MaxClients,
			MaxClientsPerSource: c.MaxClientsPerSource,
			MaxPending:          c.MaxPending,
			MaxPendingPerSource: c.MaxPendingPerSource,
		},
		HandshakeTimeout: c.HandshakeTimeout,
		HeadTimeout:      c.HeadTimeout,
		RAInterval:       c.RAInterval,
		SetForwarding:    c.SetForwarding,
		ControlSocket:    c.ControlSocket,
		ProxyProtocol:    c.ProxyProtocol,
		MetricsListen:    c.MetricsListen,
		ShutdownTimeout:  c.ShutdownTimeout,
		SelfSigned:       c.SelfSigned,
		LogSettings:      c.Log.Level + "/" + c.Log.Format,
		Log:              log,
	}
	bad := func(format string, a ...any) (Options, error) {
		return o, winerr.Errorf(winerr.InvalidParameter, format, a...)
	}
	if strings.ContainsAny(c.ServerHeader, "\r\n") || strings.ContainsAny(c.Path, " \r\n") {
		return bad("server_header and path must not contain spaces (path), CR or LF")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen %q: want host:port, e.g. :443 or 203.0.113.10:443", c.Listen)
	}
	o.Path = "/" + strings.Trim(c.Path, "/")
	if o.Path == "/" {
		return bad("path %q: the IP-HTTPS URL needs a path such as /IPHTTPS", c.Path)
	}
	scheme := "https"
	if c.PlainHTTP {
		scheme = "http"
	}
	_, port, _ := net.SplitHostPort(c.Listen)
	o.URL = fmt.Sprintf("%s://+:%s%s", scheme, port, o.Path)
	if o.ControlSocket == "" {
		o.ControlSocket = control.SocketPath("server", c.Interface)
	}
	var err error
	if o.Offload, err = tundev.ParseOffload(c.Offload); err != nil {
		return bad("%v", err)
	}
	if o.Limits.MaxClients <= 0 {
		return bad("max_clients must be positive")
	}
	if o.Limits.MaxPending <= 0 {
		return bad("max_pending must be positive: connections allowed in the TLS handshake or the request head at once")
	}
	if o.Limits.MaxClientsPerSource < 0 || o.Limits.MaxPendingPerSource < 0 {
		return bad("max_clients_per_source and max_pending_per_source must be 0 (no limit) or positive")
	}
	if o.HandshakeTimeout <= 0 {
		return bad("handshake_timeout must be positive (got %v)", o.HandshakeTimeout)
	}
	if o.HeadTimeout <= 0 {
		return bad("head_timeout must be positive (got %v)", o.HeadTimeout)
	}
	if o.ShutdownTimeout <= 0 {
		return bad("shutdown_timeout must be positive (got %v)", o.ShutdownTimeout)
	}
	for _, f := range c.ProxyProtocolFrom {
		p, err := parsePrefixOrAddr(f)
		if err != nil {
			return bad("proxy_protocol_from %q: want an address or a prefix (CIDR) of the load balancer", f)
		}
		o.ProxyFrom = append(o.ProxyFrom, p)
	}
	if len(o.ProxyFrom) > 0 && !o.ProxyProtocol {
		return bad("proxy_protocol_from is set but proxy_protocol is off: add --proxy-protocol")
	}
	if o.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(o.MetricsListen); err != nil {
			return bad("metrics_listen %q: want host:port, e.g. 127.0.0.1:9443", o.MetricsListen)
		}
	}
	if o.RAInterval < 3*time.Second {
		return bad("ra_interval %v: use at least 3s (RFC 4861 MinRtrAdvInterval)", o.RAInterval)
	}

	// The link and its router.
	if c.Prefix == "" {
		return bad("no prefix: give the IP-HTTPS link's /64 with --prefix, e.g. --prefix 2001:db8:1::/64")
	}
	pfx, err := netip.ParsePrefix(c.Prefix)
	if err != nil || !pfx.Addr().Is6() || pfx.Addr().Is4In6() {
		return bad("prefix %q: not an IPv6 prefix", c.Prefix)
	}
	if pfx.Bits() != 64 {
		return bad("prefix %s: the IP-HTTPS link prefix must be a /64 (clients form addresses by SLAAC)", pfx)
	}
	if pfx != pfx.Masked() {
		return bad("prefix %s: host bits set; did you mean %s?", pfx, pfx.Masked())
	}
	host := pfx.Addr().Next() // prefix::1
	if c.HostAddress != "" {
		if host, err = netip.ParseAddr(c.HostAddress); err != nil || !pfx.Contains(host) {
			return bad("host_address %q must be an address inside %s", c.HostAddress, pfx)
		}
	}
	mode, err := router.ParseMode(c.AuthMode)
	if err != nil {
		return bad("auth_mode %q: want none or certificates", c.AuthMode)
	}
	rc := router.Config{
		Mode:           mode,
		Prefix:         pfx,
		LinkLocal:      netip.MustParseAddr("fe80::1"),
		HostAddrs:      []netip.Addr{host},
		DefaultRoute:   c.AdvertiseDefaultRoute,
		Unpublished:    !c.PublishPrefix,
		IsolateClients: c.IsolateClients,
		MTU:            LinkMTU,
	}
	for _, r := range c.Routes {
		p, err := netip.ParsePrefix(r)
		if err != nil || !p.Addr().Is6() {
			return bad("route %q: not an IPv6 prefix", r)
		}
		rc.Routes = append(rc.Routes, p.Masked())
	}
	o.Router = rc
	if o.Teredo, err = teredoOptions(c); err != nil {
		return o, err
	}
	if c.SixToFour != "" {
		if o.SixToFour.Address, err = netip.ParseAddr(c.SixToFour); err != nil || !o.SixToFour.Address.Is4() {
			return bad("6to4 %q: want the server's public IPv4 address, e.g. 203.0.113.10", c.SixToFour)
		}
		o.SixToFour.Lab = c.SixToFourLab
	}

	if c.PlainHTTP {
		if c.Cert != "" || c.SelfSigned != "" || mode == router.ModeCertificates {
			return bad("plain_http serves IP-HTTPS without TLS (behind a TLS terminator): it cannot use a certificate or auth_mode certificates")
		}
		return o, nil
	}
	o.TLS, err = serverTLS(c, mode, log, keep)
	return o, err
}

// teredoOptions checks the Teredo settings.
func teredoOptions(c config.Server) (TeredoOptions, error) {
	var t TeredoOptions
	if c.Teredo == "" {
		if c.TeredoSecondary != "" {
			return t, winerr.Errorf(winerr.InvalidParameter, "teredo_secondary %q given without teredo (the primary address)", c.TeredoSecondary)
		}
		return t, nil
	}
	var err error
	if t.Primary, err = netip.ParseAddr(c.Teredo); err != nil || !t.Primary.Is4() {
		return t, winerr.Errorf(winerr.InvalidParameter, "teredo %q: want the server's first public IPv4 address, e.g. 203.0.113.10", c.Teredo)
	}
	if c.TeredoSecondary != "" {
		if t.Secondary, err = netip.ParseAddr(c.TeredoSecondary); err != nil || !t.Secondary.Is4() || t.Secondary == t.Primary {
			return t, winerr.Errorf(winerr.InvalidParameter, "teredo_secondary %q: want a second IPv4 address of this server, other than teredo", c.TeredoSecondary)
		}
	}
	t.Lab = c.TeredoLab
	return t, nil
}

func serverTLS(c config.Server, mode router.Mode, log *slog.Logger, keep *tls.Certificate) (*tls.Config, error) {
	var cert tls.Certificate
	switch {
	case c.Cert != "" && c.SelfSigned != "":
		return nil, winerr.Errorf(winerr.InvalidParameter, "give either cert/key or self_signed, not both")
	case c.Cert != "":
		if c.Key == "" {
			return nil, winerr.Errorf(winerr.InvalidParameter, "cert %s given without key: add --key FILE", c.Cert)
		}
		var err error
		cert, err = tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			code := winerr.CertUnknown
			if errors.Is(err, os.ErrNotExist) {
				code = winerr.FileNotFound
			}
			return nil, winerr.Errorf(code, "the server certificate cannot be loaded (cert %s, key %s): %v", c.Cert, c.Key, err)
		}
		leaf := cert.Leaf
		if time.Now().After(leaf.NotAfter) {
			log.Warn("the server certificate has expired: Windows clients will fail with 0x800b0101", "not_after", leaf.NotAfter)
		}
		if !hasServerAuth(leaf) {
			log.Warn("the server certificate lacks the Server Authentication EKU (1.3.6.1.5.5.7.3.1): Windows clients will refuse it")
		}
	case c.SelfSigned != "" && keep != nil:
		cert = *keep
	case c.SelfSigned != "":
		sc, err := pki.Server(nil, pki.Options{CommonName: c.SelfSigned})
		if err != nil {
			return nil, err
		}
		cert = sc.TLS()
		dir := filepath.Dir(c.ControlSocket)
		if c.ControlSocket == "" {
			dir = control.DefaultDir
		}
		path := filepath.Join(dir, "self-signed-"+c.SelfSigned+".pem")
		err = os.MkdirAll(dir, 0o750)
		if err == nil {
			err = os.WriteFile(path, sc.CertPEM(), 0o644)
		}
		if err != nil {
			return nil, winerr.Errorf(winerr.FileNotFound, "self-signed certificate: cannot write %s for clients to trust: %v", path, err)
		}
		log.Warn("using a self-signed certificate for trials; clients must trust it explicitly",
			"name", c.SelfSigned, "sha256", sc.Fingerprint(), "pem", path)
	default:
		return nil, winerr.Errorf(winerr.InvalidParameter, "no server certificate: give --cert FILE --key FILE, or --self-signed NAME for a trial, or --plain-http behind a TLS terminator")
	}
	min, err := tlsVersion(c.TLSMinVersion)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: min}
	if mode == router.ModeCertificates {
		if c.ClientCA == "" {
			return nil, winerr.Errorf(winerr.InvalidParameter, "auth_mode certificates needs client_ca: the CA bundle client certificates must chain to (--client-ca FILE)")
		}
		pool, err := pki.LoadPool(c.ClientCA)
		if err != nil {
			code := winerr.CertUnknown
			if errors.Is(err, os.ErrNotExist) {
				code = winerr.FileNotFound
			}
			return nil, winerr.Errorf(code, "client_ca: %v", err)
		}
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.ClientCAs = pool
		if len(c.CRL) > 0 {
			rev, err := loadRevocation(c.CRL, c.ClientCA, time.Now(), log)
			if err != nil {
				return nil, err
			}
			tc.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
				return rev.check(chains)
			}
		}
	} else if c.ClientCA != "" || len(c.CRL) > 0 {
		log.Warn("client_ca and crl are ignored in auth_mode none")
	}
	return tc, nil
}

// parsePrefixOrAddr parses "192.0.2.10" or "192.0.2.0/24".
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func hasServerAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true // no EKU extension: any usage
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func tlsVersion(s string) (uint16, error) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, winerr.Errorf(winerr.InvalidParameter, "tls_min_version %q: want 1.0, 1.1, 1.2 or 1.3 (1.0 admits Windows 7 clients)", s)
}
