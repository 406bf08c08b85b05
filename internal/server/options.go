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
	MaxClients       int
	HandshakeTimeout time.Duration
	RAInterval       time.Duration
	SetForwarding    bool
	Offload          tundev.Offload
	ControlSocket    string
	Log              *slog.Logger
}

// FromConfig validates c and turns it into Options. Every error is one line
// naming the setting and the fix, with the Windows code where one applies.
func FromConfig(c config.Server, log *slog.Logger) (Options, error) {
	o := Options{
		Listen:           c.Listen,
		ServerHeader:     c.ServerHeader,
		Interface:        c.Interface,
		MaxClients:       c.MaxClients,
		HandshakeTimeout: c.HandshakeTimeout,
		RAInterval:       c.RAInterval,
		SetForwarding:    c.SetForwarding,
		ControlSocket:    c.ControlSocket,
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
	if o.MaxClients <= 0 {
		return bad("max_clients must be positive")
	}
	if o.HandshakeTimeout <= 0 {
		return bad("handshake_timeout must be positive (got %v)", o.HandshakeTimeout)
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

	if c.PlainHTTP {
		if c.Cert != "" || c.SelfSigned != "" || mode == router.ModeCertificates {
			return bad("plain_http serves IP-HTTPS without TLS (behind a TLS terminator): it cannot use a certificate or auth_mode certificates")
		}
		return o, nil
	}
	o.TLS, err = serverTLS(c, mode, log)
	return o, err
}

func serverTLS(c config.Server, mode router.Mode, log *slog.Logger) (*tls.Config, error) {
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
	} else if c.ClientCA != "" {
		log.Warn("client_ca is ignored in auth_mode none")
	}
	return tc, nil
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
