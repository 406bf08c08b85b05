package iphttps

import (
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/iphttps/iphttps/internal/winerr"
)

// Target is a validated IP-HTTPS URL.
type Target struct {
	URL   string // as configured, shown verbatim in the status (as Windows does)
	HTTPS bool
	Host  string // name (or literal, when allowed) used for TLS
	Port  string
	// HostHeader is the URL's host as written (with a port when the URL
	// names one, brackets around an IPv6 literal), for the Host header.
	HostHeader string
	Path       string
}

// Addr is host:port for dialing.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, t.Port) }

// ParseURL validates an IP-HTTPS URL the way a Windows client does: https, a
// host name (an IP literal is error 0x4BE "Invalid IPHTTPS URL specified"
// unless allowIP), a path. http:// is accepted only with allowHTTP (a server
// behind a TLS terminator on a trusted network).
func ParseURL(raw string, allowIP, allowHTTP bool) (Target, error) {
	invalid := func(format string, a ...any) (Target, error) {
		return Target{}, winerr.Errorf(winerr.InvalidNetName, format, a...)
	}
	if raw == "" {
		return invalid("no IP-HTTPS URL given (e.g. https://da.example.com/IPHTTPS)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid("IP-HTTPS URL %q: %v", raw, err)
	}
	t := Target{URL: raw, Path: u.EscapedPath()}
	switch strings.ToLower(u.Scheme) {
	case "https":
		t.HTTPS, t.Port = true, "443"
	case "http":
		if !allowHTTP {
			return invalid("IP-HTTPS URL %q uses http: IP-HTTPS needs https (allow plain HTTP explicitly with --allow-plain-http)", raw)
		}
		t.Port = "80"
	default:
		return invalid("IP-HTTPS URL %q: the scheme must be https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return invalid("IP-HTTPS URL %q: user info, query and fragment are not allowed", raw)
	}
	t.Host, t.HostHeader = u.Hostname(), u.Host
	if t.Host == "" {
		return invalid("IP-HTTPS URL %q has no host", raw)
	}
	if p := u.Port(); p != "" {
		t.Port = p
	}
	if _, err := netip.ParseAddr(t.Host); err == nil && !allowIP {
		return invalid("IP-HTTPS URL %q uses an IP address, which Windows clients refuse; use the DNS name in the server certificate's subject (or --allow-ip-literal)", raw)
	}
	if t.Path == "" || t.Path == "/" {
		return invalid("IP-HTTPS URL %q has no path; the usual one is /IPHTTPS", raw)
	}
	return t, nil
}
