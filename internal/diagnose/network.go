package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/iphttps/iphttps/internal/dnsquery"
	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/winerr"
)

// message is err's text without the code an outer winerr.Error adds (the
// code is reported on its own).
func message(err error) string {
	var e *winerr.Error
	if errors.As(err, &e) && e == err {
		return e.Err.Error()
	}
	return err.Error()
}

// codeOf is the code the client would report for err.
func codeOf(err error) uint32 { return winerr.Classify(err) }

// checkURL validates the URL with the client's own rules.
func checkURL(raw string, allowIP, allowHTTP bool) (Check, iphttps.Target) {
	var saw Facts
	saw.Add("url", raw)
	t, err := iphttps.ParseURL(raw, allowIP, allowHTTP)
	if err != nil {
		fix := "write the URL as https://<the server's DNS name>[:port]/<path>, e.g. https://da.example.com/IPHTTPS"
		if u, perr := url.Parse(raw); perr == nil {
			if _, aerr := netip.ParseAddr(u.Hostname()); aerr == nil {
				saw.Add("host", u.Hostname()+" (an IP address)")
				fix = "use the DNS name that is the server certificate's subject CN instead of the address (Windows refuses IP literals with 0x4be); --allow-ip-literal accepts it anyway"
			} else if u.Scheme != "" && !strings.EqualFold(u.Scheme, "https") {
				saw.Add("scheme", u.Scheme)
				fix = "use https:// (plain http:// only behind a TLS terminator on a trusted network, with --allow-plain-http)"
			} else if u.Path == "" || u.Path == "/" {
				fix = "add the IP-HTTPS path, usually /IPHTTPS (the server's --path)"
			}
		}
		return fail(codeOf(err), saw, message(err), fix), t
	}
	scheme := "https"
	if !t.HTTPS {
		scheme = "http (plain, --allow-plain-http)"
	}
	saw.Add("scheme", scheme)
	saw.Add("host", t.Host)
	saw.Add("port", t.Port)
	saw.Add("path", t.Path)
	saw.Add("host header", t.HostHeader)
	var notes []string
	if !strings.EqualFold(t.Path, "/IPHTTPS") {
		notes = append(notes, fmt.Sprintf("the path %s is not the DirectAccess default /IPHTTPS: the server must be configured with it", t.Path))
	}
	if t.HTTPS && t.Port != "443" {
		notes = append(notes, fmt.Sprintf("non-standard port %s: the firewalls on the way must allow it", t.Port))
	}
	return pass(saw, strings.Join(notes, "; ")), t
}

// dnsAnswer and the raw queries live in package dnsquery, shared with the
// client, which tells NXDOMAIN from "no address record" the same way.
type dnsAnswer = dnsquery.Answer

func rcodeName(r dnsmessage.RCode) string { return dnsquery.RCodeName(r) }

func nameservers(path string) ([]string, error) { return dnsquery.Nameservers(path) }

func newRawQuery(d *net.Dialer, servers func() ([]string, error)) rawQuery {
	return func(ctx context.Context, name string, typ dnsmessage.Type) (dnsAnswer, error) {
		return dnsquery.Query(ctx, d, servers, name, typ)
	}
}

// rawQuery sends one query to a name server, to tell a name that does not
// exist (NXDOMAIN) from a name without an address record (NOERROR, no
// data): Go's resolver reports both as "no such host".
type rawQuery func(ctx context.Context, name string, typ dnsmessage.Type) (dnsAnswer, error)

// checkDNS resolves host as the client does (res), and when that finds
// nothing asks a name server directly (query) why. viaProxy names the proxy
// the client goes through, which resolves the name itself: then a local
// failure is only a warning.
func checkDNS(ctx context.Context, res *net.Resolver, query rawQuery, host, viaProxy string) (Check, []netip.Addr) {
	var saw Facts
	saw.Add("name", host)
	if a, err := netip.ParseAddr(host); err == nil {
		saw.Add("addresses", a.String()+" (IP literal, nothing to resolve)")
		return pass(saw, ""), []netip.Addr{a}
	}
	start := time.Now()
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	elapsed := took(time.Since(start))
	if err == nil && len(addrs) > 0 {
		for i, a := range addrs {
			addrs[i] = a.Unmap()
		}
		saw.Add("addresses", joinAddrs(addrs))
		saw.Add("lookup time", elapsed)
		note := ""
		if viaProxy != "" {
			note = fmt.Sprintf("the client goes through proxy %s, which resolves the name itself", viaProxy)
		}
		return pass(saw, note), addrs
	}
	if err == nil {
		err = &net.DNSError{Err: "no address", Name: host, IsNotFound: true}
	}
	saw.Add("lookup", fmt.Sprintf("%v (after %v)", err, elapsed))
	var code uint32
	var cause, fix string
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		ans, qerr := query(ctx, host, dnsmessage.TypeA)
		switch {
		case qerr != nil:
			saw.Add("direct query", qerr)
			code = winerr.HostNotFound
			cause = fmt.Sprintf("the name %s does not resolve (NXDOMAIN or no address record; a direct query to tell them apart failed)", host)
			fix = "check the public DNS record of the IP-HTTPS name: `dig " + host + "`"
		case ans.RCode == dnsmessage.RCodeNameError:
			saw.Add("direct query", fmt.Sprintf("%s: NXDOMAIN (the name does not exist)", ans.Server))
			code = winerr.HostNotFound
			cause = fmt.Sprintf("the name %s does not exist (NXDOMAIN)", host)
			fix = "publish the IP-HTTPS name in public DNS (an A or AAAA record for the server's public address), or correct the name in the URL; if a split-DNS/NRPT-like resolver answers for this domain, exempt the public name from it"
		case ans.RCode == dnsmessage.RCodeSuccess:
			saw.Add("direct query", fmt.Sprintf("%s: NOERROR with %d A records (the name exists)", ans.Server, ans.Answers))
			code = winerr.NoData
			cause = fmt.Sprintf("the name %s exists but has no address record (A or AAAA)", host)
			fix = "add an A (and/or AAAA) record for " + host + " pointing at the server's public address"
		default:
			saw.Add("direct query", fmt.Sprintf("%s: %s", ans.Server, rcodeName(ans.RCode)))
			code = winerr.NoData
			cause = fmt.Sprintf("the name server answers %s for %s", rcodeName(ans.RCode), host)
			fix = "check the name servers of this host (/etc/resolv.conf) and the zone of " + host
		}
	case errors.As(err, &de) && de.IsTimeout:
		code = winerr.NoData
		cause = "no answer from the name servers (timeout): they are unreachable from here, or drop the query"
		fix = "check /etc/resolv.conf and that the name servers answer (`dig " + host + "`); a resolver that is reachable only inside another network (an NRPT-like split DNS) does not work from outside"
	default:
		code = winerr.NoData
		cause = fmt.Sprintf("name resolution failed: %v", err)
		fix = "check /etc/resolv.conf and the name servers (`dig " + host + "`)"
		if ans, qerr := query(ctx, host, dnsmessage.TypeA); qerr == nil {
			saw.Add("direct query", fmt.Sprintf("%s: %s", ans.Server, rcodeName(ans.RCode)))
			cause = fmt.Sprintf("the name server answers %s for %s (not a definite answer: the name is neither found nor known not to exist)", rcodeName(ans.RCode), host)
			fix = "check that the name servers of this host (/etc/resolv.conf) can resolve public names: they refuse or fail the query"
		}
	}
	if viaProxy != "" {
		return warn(code, saw,
			cause+fmt.Sprintf("; the client goes through proxy %s, which resolves the name itself, so this matters only without the proxy", viaProxy), fix), nil
	}
	return fail(code, saw, cause, fix), nil
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// proxied is the way to the server the proxy check found.
type proxied struct {
	Route  string   // "direct", or the proxy URL
	Source string   // where the route came from
	Conn   net.Conn // the tunnel through the proxy; nil for direct
}

// statusRE finds an HTTP status ("407 Proxy Authentication Required") in a
// proxy error's text.
var statusRE = regexp.MustCompile(`\b([1-5][0-9][0-9]) [A-Z][A-Za-z -]*[a-z]`)

// describeProxyConfig lists where the proxy settings come from.
func describeProxyConfig(saw *Facts, pc proxy.Config) {
	getenv := pc.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	switch {
	case pc.Explicit == proxy.Direct:
		saw.Add("configured", "direct (--proxy direct)")
	case pc.Explicit != "":
		saw.Add("configured", proxy.Redact(pc.Explicit)+" (--proxy / proxy)")
	case pc.PAC != nil:
		saw.Add("configured", "PAC script "+pc.PAC.Location+" (--pac)")
	default:
		saw.Add("configured", "nothing: the environment decides")
	}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		if v := getenv(k); v != "" {
			saw.Add(k, proxy.Redact(v))
		}
	}
	if pc.Cache == nil {
		saw.Add("proxy cache", "none")
		return
	}
	e, err := pc.Cache.Read()
	switch {
	case err != nil:
		saw.Add("proxy cache", fmt.Sprintf("%s: %v", pc.Cache.Path, err))
	case e.Proxy == "":
		saw.Add("proxy cache", pc.Cache.Path+": empty")
	default:
		saw.Add("proxy cache", fmt.Sprintf("%s: %s for %s (worked at %s)", pc.Cache.Path, e.Proxy, e.Server, e.Saved.Local().Format(time.DateTime)))
	}
}

// checkProxy shows the proxy settings in effect and, when they name a
// proxy, opens the CONNECT tunnel the client would open (routes in order:
// the cached proxy first, as the client tries them).
func checkProxy(ctx context.Context, pc proxy.Config, routes []proxy.Route, rerr error, d *net.Dialer, target string) (Check, proxied) {
	var saw Facts
	describeProxyConfig(&saw, pc)
	if rerr != nil {
		return fail(winerr.HostNotFound, saw,
			fmt.Sprintf("the proxy settings cannot be evaluated: %s", message(rerr)),
			"check --proxy, HTTPS_PROXY, or the PAC script (--pac: reachable, and returning PROXY host:port or DIRECT for the server)"), proxied{}
	}
	names := make([]string, len(routes))
	for i, rt := range routes {
		names[i] = rt.Proxy.String()
		if rt.Source != "" {
			names[i] += " (" + rt.Source + ")"
		}
	}
	saw.Add("routes in order", strings.Join(names, ", then "))
	var failures []string
	var lastErr error
	for i, rt := range routes {
		if rt.Proxy.URL == nil {
			saw.Add("route in use", "direct")
			if lastErr != nil {
				return warn(codeOf(lastErr), saw,
					fmt.Sprintf("%s; the client falls back to a direct connection", strings.Join(failures, "; ")),
					proxyFix(lastErr, target)), proxied{Route: proxy.Direct}
			}
			return pass(saw, "no proxy: the client connects directly"), proxied{Route: proxy.Direct}
		}
		start := time.Now()
		rctx, cancel := shareTime(ctx, len(routes)-i)
		conn, err := iphttps.Connect(rctx, d, rt, target, nil)
		cancel()
		via := rt.Proxy.String()
		if err == nil {
			saw.Add("CONNECT via "+via, fmt.Sprintf("%s answered 2xx in %v", target, took(time.Since(start))))
			saw.Add("route in use", fmt.Sprintf("%s (%s)", via, rt.Source))
			res := proxied{Route: via, Source: rt.Source, Conn: conn}
			if lastErr != nil {
				fix := proxyFix(lastErr, target)
				if routes[0].Source == "cache" {
					fix = "the cached proxy no longer works: `iphttps proxy reset` forgets it (the Linux form of clearing the ProxyMgr cache); " + fix
				}
				return warn(codeOf(lastErr), saw,
					fmt.Sprintf("%s; the client then tries %s, which works", strings.Join(failures, "; "), via), fix), res
			}
			return pass(saw, fmt.Sprintf("the client reaches the server through proxy %s", via)), res
		}
		saw.Add("CONNECT via "+via, fmt.Sprintf("%s (%s)", message(err), winerr.Hex(codeOf(err))))
		if m := statusRE.FindString(err.Error()); m != "" {
			saw.Add("proxy answer", m)
		}
		failures = append(failures, message(err))
		lastErr = err
	}
	if lastErr == nil {
		return fail(winerr.HostNotFound, saw, "the proxy settings give no way to the server", "check --proxy, HTTPS_PROXY or the PAC script"), proxied{}
	}
	return fail(codeOf(lastErr), saw, strings.Join(failures, "; "), proxyFix(lastErr, target)), proxied{}
}

// proxyFix suggests what to do about a proxy failure.
func proxyFix(err error, target string) string {
	s := err.Error()
	st := statusRE.FindStringSubmatch(s)
	switch {
	case codeOf(err) == winerr.HostNotFound:
		return "the proxy cannot be reached: check its host and port (--proxy, HTTPS_PROXY, the PAC script) and that it runs; `--proxy direct` tries without it"
	case st != nil && st[1] == "407":
		return "the proxy wants credentials: give them with --proxy-credentials FILE (one line user:password) or proxy_user/proxy_password in the configuration file (Basic only; NTLM and Negotiate are not supported)"
	case st != nil && st[1] == "403":
		return fmt.Sprintf("the proxy's policy forbids CONNECT to %s: ask its administrators to allow it (squid: CONNECT to port 443 is allowed by the SSL_ports rule; other ports need their own)", target)
	case st != nil && st[1][0] == '5':
		return fmt.Sprintf("the proxy could not reach %s: check the server from the proxy's side (its DNS, firewall), or whether the server is up", target)
	}
	return "check the proxy's logs for the refused CONNECT"
}

// shareTime gives one of n attempts left its share of the time ctx has
// left, as net.Dialer does for several addresses.
func shareTime(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && n > 1 {
		return context.WithTimeout(ctx, time.Until(dl)/time.Duration(n))
	}
	return context.WithCancel(ctx)
}

// checkTCP connects to the server's port as the client does
// (iphttps.Connect): to each address in turn, as the client's dialer does,
// or reports the connection the proxy made.
func checkTCP(ctx context.Context, d *net.Dialer, addrs []netip.Addr, port string, via proxied) (Check, net.Conn) {
	var saw Facts
	if via.Conn != nil {
		saw.Add("through proxy", via.Route)
		saw.Add("connection", fmt.Sprintf("%v -> %v (the proxy)", via.Conn.LocalAddr(), via.Conn.RemoteAddr()))
		return pass(saw, fmt.Sprintf("the proxy opened the TCP connection to port %s (its CONNECT succeeded)", port)), via.Conn
	}
	if len(addrs) == 0 {
		return fail(winerr.HostNotFound, saw, "no address to connect to", "see the dns check"), nil
	}
	var first error
	for i, a := range addrs {
		target := net.JoinHostPort(a.String(), port)
		actx, cancel := shareTime(ctx, len(addrs)-i)
		start := time.Now()
		var dialErr error // the net package's, as it came
		tr := &iphttps.Trace{ConnectDone: func(_ string, err error) { dialErr = err }}
		conn, err := iphttps.Connect(actx, d, proxy.Route{}, target, tr)
		cancel()
		elapsed := took(time.Since(start))
		if err == nil {
			saw.Add(target, fmt.Sprintf("connected in %v (from %v)", elapsed, conn.LocalAddr()))
			note := ""
			if first != nil {
				note = "an earlier address failed; the client gets through on a later one"
			}
			return pass(saw, note), conn
		}
		if dialErr == nil {
			// No attempt was made (no time was left). proxy.Connect's
			// error names the target, which the check names already.
			if dialErr = errors.Unwrap(err); dialErr == nil {
				dialErr = err
			}
		}
		saw.Add(target, fmt.Sprintf("%v after %v (%s)", dialErr, elapsed, winerr.Hex(codeOf(dialErr))))
		if first == nil {
			first = dialErr
		}
	}
	code := codeOf(first)
	var cause, fix string
	switch code {
	case winerr.ConnRefused:
		cause = fmt.Sprintf("the connection to port %s was refused: nothing listens there (the server is down, or listens on another address or port), or a firewall rejects it", port)
		fix = fmt.Sprintf("start the IP-HTTPS server, check it listens on port %s (`ss -ltn` on the server, its --listen), and that the name points at it", port)
	case winerr.TimedOut:
		cause = fmt.Sprintf("no answer to the TCP connection on port %s: a firewall or NAT drops it, the DNS record points at the wrong address, or the server is down", port)
		fix = fmt.Sprintf("allow TCP port %s to the server in every firewall on the way and forward it through NAT; check the public DNS record", port)
	case winerr.NetUnreach, winerr.HostUnreach:
		cause = "no route to the server from this host"
		fix = "check this host's routes and Internet access (`ip route get <address>`)"
	default:
		cause = fmt.Sprintf("TCP to port %s failed: %v", port, first)
		fix = "check the network path to the server"
	}
	return fail(code, saw, cause, fix), nil
}
