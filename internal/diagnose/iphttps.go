package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/winerr"
	"github.com/iphttps/iphttps/internal/wire"
)

// checkPOST sends the IP-HTTPS request the client sends and reads the
// answer (iphttps.Open): it must be 200. h is the TLS handshake (nil for
// plain HTTP).
func checkPOST(ctx context.Context, conn net.Conn, t iphttps.Target, h *handshake) (Check, *wire.Reader) {
	var saw Facts
	saw.Add("request", fmt.Sprintf("POST %s HTTP/1.1, Content-Length: %s, Host: %s", t.Path, wire.MaxContentLength, t.HostHeader))
	tlsFail := func(err error) Check {
		if h != nil {
			if c := tlsFailure(err, saw, h.Asked, h.HaveCert); c.Code != nil && uint32(*c.Code) == winerr.IncompleteCredentials {
				return c
			}
		}
		code := codeOf(err)
		cause := fmt.Sprintf("the server closed the connection without answering the IP-HTTPS request: %v", err)
		if code == winerr.TimedOut {
			cause = "the server did not answer the IP-HTTPS request in time"
		}
		return fail(code, saw, cause,
			"check the server's log: it may refuse this client (too many clients, client certificate), or something on the way cuts the connection")
	}
	var (
		sendErr, answerErr error // wire.Open's, as they came
		resp               *wire.Response
	)
	tr := &iphttps.Trace{
		WroteRequest: func(err error) { sendErr = err },
		GotResponse:  func(r *wire.Response, err error) { resp, answerErr = r, err },
	}
	r, _ := iphttps.Open(ctx, conn, t, iphttps.ReaderSize, tr)
	if sendErr != nil {
		saw.Add("send", sendErr)
		return tlsFail(sendErr), nil
	}
	if answerErr != nil {
		var he *wire.HeadError
		saw.Add("answer", answerErr)
		if errors.As(answerErr, &he) {
			return fail(winerr.NoData, saw,
				fmt.Sprintf("the server's answer is not an HTTP response head (%s): this is not an IP-HTTPS server", he.Reason),
				"check the URL's host and port"), nil
		}
		return tlsFail(answerErr), nil
	}
	saw.Add("status line", strings.TrimSpace(fmt.Sprintf("%s %d %s", resp.Proto, resp.Status, resp.Reason)))
	for _, k := range []string{"Server", "Date", "Content-Length", "Transfer-Encoding", "Connection"} {
		if v := resp.Get(k); v != "" {
			saw.Add(k, v)
		}
	}
	if resp.Status != http.StatusOK {
		cause := fmt.Sprintf("the server answered %d %s to POST %s: ", resp.Status, resp.Reason, t.Path)
		switch resp.Status {
		case http.StatusNotFound:
			cause += "there is no IP-HTTPS endpoint at that path (a wrong path in the URL, or IP-HTTPS disabled on the server, which still answers HTTPS)"
		case http.StatusMethodNotAllowed:
			cause += "the path does not take POST: a web server answers there, not IP-HTTPS (wrong path, or IP-HTTPS disabled on the server)"
		case http.StatusBadRequest, http.StatusLengthRequired, http.StatusRequestEntityTooLarge:
			cause += "an HTTP front end (reverse proxy or load balancer in HTTP mode) rejected the endless Content-Length of the IP-HTTPS request"
		case http.StatusUnauthorized, http.StatusForbidden:
			cause += "a front end refuses access"
		default:
			cause += "the server answered, but not as an IP-HTTPS server"
		}
		fix := "use the server's IP-HTTPS path in the URL (iphttps server --path, default /IPHTTPS) and make sure IP-HTTPS is enabled on the server (`iphttps show interfaces` there; on Windows, the IP-HTTPS entry of the Remote Access Operations Status)"
		if resp.Status == http.StatusBadRequest || resp.Status == http.StatusLengthRequired || resp.Status == http.StatusRequestEntityTooLarge {
			fix = "run the TLS terminator or load balancer in front of the server in TCP (stream) mode, not HTTP mode"
		}
		return fail(winerr.NoData, saw, cause, fix), nil
	}
	var notes []string
	if resp.Get("Server") == "" || resp.Get("Date") == "" {
		notes = append(notes, "the 200 answer lacks the Server or Date header [MS-IPHTTPS] 3.2.5.1 requires")
	}
	if resp.Get("Content-Length") != "" || resp.Get("Transfer-Encoding") != "" {
		notes = append(notes, "the 200 answer has a Content-Length or Transfer-Encoding: IP-HTTPS answers have neither (an HTTP intermediary may have rewritten it)")
	}
	if len(notes) > 0 {
		return warn(winerr.Success, saw, strings.Join(notes, "; "), "check what answers in front of the IP-HTTPS server"), r
	}
	return pass(saw, ""), r
}

func lifetime(d time.Duration) string {
	if d == ndp.Infinity {
		return "infinite"
	}
	return d.String()
}

// describeRA adds what an advertisement offers to saw.
func describeRA(saw *Facts, src netip.Addr, ra *ndp.RouterAdvertisement) {
	saw.Add("router", src)
	var prefixes, routes, dns []string
	mtu := "not advertised (the IP-HTTPS link MTU is 1280)"
	for _, o := range ra.Options {
		switch o := o.(type) {
		case *ndp.PrefixInformation:
			var flags []string
			if o.AutonomousAddressConfiguration {
				flags = append(flags, "autonomous")
			}
			if o.OnLink {
				flags = append(flags, "on-link")
			}
			prefixes = append(prefixes, fmt.Sprintf("%s (%s; valid %s, preferred %s)",
				netip.PrefixFrom(o.Prefix, int(o.PrefixLength)), strings.Join(flags, ", "), lifetime(o.ValidLifetime), lifetime(o.PreferredLifetime)))
		case *ndp.RouteInformation:
			routes = append(routes, fmt.Sprintf("%s (lifetime %s)", netip.PrefixFrom(o.Prefix, int(o.PrefixLength)), lifetime(o.RouteLifetime)))
		case *ndp.MTU:
			mtu = fmt.Sprint(o.MTU)
		case *ndp.RecursiveDNSServer:
			for _, s := range o.Servers {
				dns = append(dns, s.String())
			}
		}
	}
	if len(prefixes) == 0 {
		saw.Add("prefix", "none")
	} else {
		saw.Add("prefix", strings.Join(prefixes, "; "))
	}
	saw.Add("MTU", mtu)
	if len(routes) > 0 {
		saw.Add("routes", strings.Join(routes, ", "))
	}
	if ra.RouterLifetime == 0 {
		saw.Add("router lifetime", "0 (not a default router: routes only)")
	} else {
		saw.Add("router lifetime", fmt.Sprintf("%s (default router)", ra.RouterLifetime))
	}
	if len(dns) > 0 {
		saw.Add("DNS servers", strings.Join(dns, ", "))
	}
}

// checkRA sends a router solicitation from :: (the client has no address
// yet) through the IP-HTTPS connection and waits for an advertisement with a
// /64 prefix (iphttps.Solicit), as the client does before it calls the
// interface active.
func checkRA(ctx context.Context, conn net.Conn, r *wire.Reader, timeout time.Duration) Check {
	var saw Facts
	packets, ras := 0, 0
	var (
		last    *ndp.RouterAdvertisement
		sent    bool
		sendErr error
	)
	tr := &iphttps.Trace{
		WroteRouterSolicitation: func(err error) {
			sent, sendErr = true, err
			if err != nil {
				saw.Add("router solicitation", err)
			} else {
				saw.Add("router solicitation", "sent from :: to ff02::2")
			}
		},
		GotPacket: func([]byte) { packets++ },
		GotRouterAdvertisement: func(a iphttps.Advertisement, err error) {
			if err != nil {
				saw.Add("invalid advertisement", err)
				return
			}
			ras++
			last = a.RA
			describeRA(&saw, a.From, a.RA)
		},
	}
	start := time.Now()
	a, err := iphttps.Solicit(ctx, conn, r, netip.IPv6Unspecified(), tr)
	switch {
	case !sent:
		return fail(winerr.NoData, saw, fmt.Sprintf("cannot build a router solicitation: %v", err), "")
	case sendErr != nil:
		return fail(codeOf(sendErr), saw, fmt.Sprintf("the connection failed when sending the router solicitation: %v", sendErr), "check the server's log")
	case err != nil:
		saw.Add("packets received", packets)
		saw.Add("router advertisements", ras)
		if last == nil && ctx.Err() == nil && !isTimeout(err) {
			return fail(codeOf(err), saw,
				fmt.Sprintf("the server ended the IP-HTTPS connection before advertising a prefix: %v", err),
				"check the server's log (it closes sessions that send non-IPv6 data, or when it has too many clients)")
		}
		if last != nil {
			return fail(winerr.NoData, saw,
				"the server advertises no usable prefix (a /64 for address autoconfiguration): the client gets no address",
				"publish the clients' /64 on the server: iphttps server --prefix <a /64>; on a Windows server, publish the IP-HTTPS route (New-NetRoute ... -Publish Yes) and enable advertising on the IP-HTTPS interface (netsh int ipv6 set int <idx> advertise=enabled)")
		}
		return fail(winerr.NoData, saw,
			fmt.Sprintf("no router advertisement within %v: the server publishes no prefix (router advertisements are disabled on its IP-HTTPS interface)", timeout),
			"make the server advertise the clients' /64 (iphttps server --prefix; on Windows: the published IP-HTTPS route and advertise=enabled on the IP-HTTPS interface)")
	}
	saw.Add("time to advertisement", took(time.Since(start)))
	for _, o := range a.RA.Options {
		if m, ok := o.(*ndp.MTU); ok && m.MTU < 1280 {
			return warn(winerr.Success, saw, fmt.Sprintf("the advertised MTU %d is below the IPv6 minimum of 1280", m.MTU), "advertise MTU 1280 on the IP-HTTPS link")
		}
	}
	return pass(saw, "")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
