package diagnose

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/winerr"
	"github.com/iphttps/iphttps/internal/wire"
)

// Options say what to diagnose: the settings of the client whose
// connection is diagnosed. URL, SixToFourRelay and TeredoServer name the
// methods: at least one.
type Options struct {
	// URL is the IP-HTTPS URL; empty: IP-HTTPS is not diagnosed (unless
	// no other method is given either: then the url check fails).
	URL            string
	AllowIPLiteral bool
	AllowPlainHTTP bool
	// Interface is the client's TUN device name.
	Interface string
	// Userspace: the client runs without a TUN device (--userspace); the
	// platform checks do not apply.
	Userspace bool
	// Roots are the trusted roots (nil: the system's); RootsName says
	// where they come from, for the report.
	Roots     *x509.CertPool
	RootsName string
	// RootCerts are the certificates in Roots when they can be listed (the
	// --ca file), to judge an expired chain by its signatures.
	RootCerts []*x509.Certificate
	// Certificates is the client certificate, if any.
	Certificates []tls.Certificate
	NameRule     iphttps.NameRule
	Proxy        proxy.Config
	// ControlSockets are control sockets to ask besides those in
	// ControlDirs, to find the client that owns an existing interface.
	ControlSockets []string
	// Timeout bounds each check (DefaultTimeout when 0); the 6to4 and
	// Teredo checks get at least their clients' budgets.
	Timeout time.Duration

	// SixToFourRelay, when valid, adds the 6to4 checks against this relay
	// (the DirectAccess server's public IPv4 address); SixToFourLab lets
	// the documentation ranges count as public (the client's --6to4-lab).
	SixToFourRelay netip.Addr
	SixToFourLab   bool
	// TeredoServer, when set, adds the Teredo checks against this server
	// (an IPv4 address or a name), with the client's TeredoSecondary
	// (invalid: the primary + 1), TeredoClientPort (0: any) and TeredoLab.
	// TeredoEchoHost, when valid, is an intranet host that teredo-relay
	// pings through the server.
	TeredoServer     string
	TeredoSecondary  netip.Addr
	TeredoClientPort uint16
	TeredoLab        bool
	TeredoEchoHost   netip.Addr
}

// ipHTTPS reports whether IP-HTTPS is diagnosed: a URL is given, or no
// other method (the url check then says the URL is missing).
func (o Options) ipHTTPS() bool {
	return o.URL != "" || (!o.SixToFourRelay.IsValid() && o.TeredoServer == "")
}

// Title says what is diagnosed: the first line of the text report.
func (o Options) Title() string {
	relay := ""
	if o.SixToFourRelay.IsValid() {
		relay = o.SixToFourRelay.String()
	}
	url := ""
	if o.ipHTTPS() {
		url = o.URL
	}
	return title(url, relay, o.TeredoServer)
}

func title(url, relay, teredo string) string {
	if relay == "" && teredo == "" {
		return "IP-HTTPS diagnosis of " + url
	}
	var parts []string
	if relay != "" {
		parts = append(parts, "6to4 (relay "+relay+")")
	}
	if teredo != "" {
		parts = append(parts, "Teredo (server "+teredo+")")
	}
	if url != "" {
		parts = append(parts, "IP-HTTPS ("+url+")")
	}
	return "DirectAccess diagnosis: " + strings.Join(parts, ", ")
}

// Deps are what the checks use of the system; tests replace them.
type Deps struct {
	// Resolver resolves the server name as the client does.
	Resolver *net.Resolver
	// NameServers lists the name servers (host:port) for the direct query
	// that tells a missing name from a name without address.
	NameServers func() ([]string, error)
	// Dialer opens TCP connections (to the server, to proxies) and the
	// direct DNS query.
	Dialer *net.Dialer
	// HTTP downloads CRLs.
	HTTP *http.Client
	Now  func() time.Time
	// ProcRoot is /proc, SysNet /sys/class/net, TUNPath /dev/net/tun.
	ProcRoot, SysNet, TUNPath string
	// Links lists the network interfaces.
	Links func() ([]net.Interface, error)
	// ControlDirs hold the control sockets of running daemons.
	ControlDirs []string
	// Daemons lists the running iphttps daemons (default: ask every
	// socket in ControlDirs and Options.ControlSockets).
	Daemons func(context.Context) []Daemon
	// Holders lists the processes holding a TUN device open (default:
	// a scan of ProcRoot).
	Holders func(name string) (holders []Holder, complete bool)
	// Explain explains a code (default winerr.Explain).
	Explain func(code uint32) (winerr.Explanation, bool)
	Log     *slog.Logger
}

// SystemDeps are the real system's.
func SystemDeps() Deps {
	return Deps{
		Resolver:    net.DefaultResolver,
		NameServers: func() ([]string, error) { return nameservers("/etc/resolv.conf") },
		Dialer:      &net.Dialer{},
		HTTP:        &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}},
		Now:         time.Now,
		ProcRoot:    "/proc",
		SysNet:      "/sys/class/net",
		TUNPath:     "/dev/net/tun",
		Links:       net.Interfaces,
		ControlDirs: control.Dirs(),
	}
}

// withDefaults fills what d leaves empty from SystemDeps.
func (d Deps) withDefaults(o Options) Deps {
	sys := SystemDeps()
	if d.Resolver == nil {
		d.Resolver = sys.Resolver
	}
	if d.NameServers == nil {
		d.NameServers = sys.NameServers
	}
	if d.Dialer == nil {
		d.Dialer = sys.Dialer
	}
	if d.HTTP == nil {
		d.HTTP = sys.HTTP
	}
	if d.Now == nil {
		d.Now = sys.Now
	}
	if d.ProcRoot == "" {
		d.ProcRoot = sys.ProcRoot
	}
	if d.SysNet == "" {
		d.SysNet = sys.SysNet
	}
	if d.TUNPath == "" {
		d.TUNPath = sys.TUNPath
	}
	if d.Links == nil {
		d.Links = sys.Links
	}
	if d.ControlDirs == nil {
		d.ControlDirs = sys.ControlDirs
	}
	if d.Daemons == nil {
		dirs, extra := d.ControlDirs, o.ControlSockets
		d.Daemons = func(ctx context.Context) []Daemon { return askDaemons(ctx, dirs, extra) }
	}
	if d.Holders == nil {
		proc := d.ProcRoot
		d.Holders = func(name string) ([]Holder, bool) { return tunHolders(proc, name) }
	}
	if d.Explain == nil {
		d.Explain = winerr.Explain
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return d
}

// askDaemons fetches the status of every daemon with a socket in dirs or
// among extra.
func askDaemons(ctx context.Context, dirs, extra []string) []Daemon {
	seen := map[string]bool{}
	var out []Daemon
	ask := func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if s, err := control.Fetch(ctx, p); err == nil {
			out = append(out, Daemon{Socket: p, Status: s})
		}
	}
	for _, dir := range dirs {
		socks, _ := control.Sockets(dir)
		for _, p := range socks {
			ask(p)
		}
	}
	for _, p := range extra {
		ask(p)
	}
	return out
}

// Report is the whole diagnosis.
type Report struct {
	// Schema is the version of this layout (1); it changes only when a
	// field changes meaning or goes away.
	Schema int    `json:"schema"`
	URL    string `json:"url"`
	// SixToFourRelay and TeredoServer are the other methods diagnosed
	// (absent when not).
	SixToFourRelay string    `json:"6to4_relay,omitempty"`
	TeredoServer   string    `json:"teredo_server,omitempty"`
	Start          time.Time `json:"start"`
	// Result is FAIL when a check failed, WARN when one warned, else PASS.
	Result Status `json:"result"`
	// Failed is the first failed check; Code is its code, what a Windows
	// client would report (0x0 when nothing failed), and InterfaceStatus
	// the Windows status string that goes with it.
	// InterfaceStatus is empty when the failed check is a 6to4 or Teredo
	// one, or when IP-HTTPS was not diagnosed.
	Failed          string  `json:"failed,omitempty"`
	Code            Code    `json:"code"`
	InterfaceStatus string  `json:"interface_status"`
	Checks          []Check `json:"checks"`
	// Verdict says which method would carry the traffic; present when
	// 6to4 or Teredo was diagnosed.
	Verdict  *Verdict      `json:"verdict,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Title says what was diagnosed: the first line of the text report.
func (r Report) Title() string { return title(r.URL, r.SixToFourRelay, r.TeredoServer) }

// Schema is the current Report.Schema.
const Schema = 1

// ExitCode is the command's exit status: 1 when a check failed, else 0.
func (r Report) ExitCode() int {
	if r.Result == Fail {
		return 1
	}
	return 0
}

// Check returns the check called name.
func (r Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

func newReport(o Options, start time.Time, took time.Duration, checks []Check) Report {
	r := Report{Schema: Schema, Start: start, Result: Pass, Checks: checks, Duration: took}
	if o.ipHTTPS() {
		r.URL, r.InterfaceStatus = o.URL, winerr.StatusActive
	}
	if o.SixToFourRelay.IsValid() {
		r.SixToFourRelay = o.SixToFourRelay.String()
	}
	r.TeredoServer = o.TeredoServer
	for _, c := range checks {
		switch {
		case c.Status == Fail && r.Result != Fail:
			r.Result, r.Failed, r.InterfaceStatus = Fail, c.Name, c.InterfaceStatus
			if c.Code != nil {
				r.Code = *c.Code
			}
		case c.Status == Warn && r.Result == Pass:
			r.Result = Warn
		}
	}
	if r.SixToFourRelay != "" || r.TeredoServer != "" {
		v := verdict(o, checks)
		r.Verdict = &v
	}
	return r
}

// Run diagnoses the connection o describes, calling progress (if not nil)
// after each check.
func Run(ctx context.Context, o Options, d Deps, progress func(Check)) Report {
	s := &session{o: o, d: d.withDefaults(o)}
	defer s.close()
	r := Runner{Timeout: o.Timeout, Explain: s.d.Explain, Log: s.d.Log, Progress: progress}
	start := s.d.Now()
	t0 := time.Now()
	checks := r.Run(ctx, s.steps())
	return newReport(o, start, time.Since(t0), checks)
}

// session is one diagnosis: the options, the dependencies, and what each
// check leaves for the next.
type session struct {
	o Options
	d Deps

	target     iphttps.Target
	routesDone bool
	routes     []proxy.Route
	routesErr  error
	addrs      []netip.Addr
	via        proxied
	conn       net.Conn // TCP (or the proxy tunnel); then the TLS connection
	hs         *handshake
	chains     [][]*x509.Certificate
	reader     *wire.Reader

	six sixToFourState
	ter teredoState
}

func (s *session) close() {
	s.ter.close()
	if s.conn != nil {
		s.conn.Close()
	}
	if s.via.Conn != nil {
		s.via.Conn.Close()
	}
}

// proxyRoutes evaluates the proxy settings once.
func (s *session) proxyRoutes(ctx context.Context) ([]proxy.Route, error) {
	if !s.routesDone {
		s.routes, s.routesErr = s.o.Proxy.Routes(ctx, s.target.Addr())
		s.routesDone = true
	}
	return s.routes, s.routesErr
}

func (s *session) chain() []*x509.Certificate { return s.hs.State.PeerCertificates }

// steps are the plan: the platform checks, then those of each method
// given, in DirectAccess's order: 6to4, Teredo, IP-HTTPS.
func (s *session) steps() []Step {
	steps := s.platformSteps()
	if s.o.SixToFourRelay.IsValid() {
		steps = append(steps, s.sixToFourSteps()...)
	}
	if s.o.TeredoServer != "" {
		steps = append(steps, s.teredoSteps()...)
	}
	if s.o.ipHTTPS() {
		steps = append(steps, s.ipHTTPSSteps()...)
	}
	return steps
}

// platformSteps are the checks of the host, which every method needs (a
// TUN device carries the traffic of each).
func (s *session) platformSteps() []Step {
	userspace := func() (Check, bool) {
		if s.o.Userspace {
			return notApplicable(nil, "userspace mode (--userspace): the client creates no TUN device"), true
		}
		return Check{}, false
	}
	return []Step{
		{Name: CheckIPv6, Title: "IPv6 enabled on this host", Run: func(context.Context) Check {
			if c, ok := userspace(); ok {
				return c
			}
			return checkIPv6(s.d.ProcRoot)
		}},
		{Name: CheckTUN, Title: "TUN device can be created", Run: func(context.Context) Check {
			if c, ok := userspace(); ok {
				return c
			}
			return checkTUN(s.d.TUNPath, s.d.ProcRoot)
		}},
		{Name: CheckInterface, Title: "no stale interface of the same name", Run: func(ctx context.Context) Check {
			if c, ok := userspace(); ok {
				return c
			}
			return checkInterface(ctx, s.o.Interface, s.d.Links, s.d.SysNet, s.d.Daemons, s.d.Holders)
		}},
	}
}

// ipHTTPSSteps are IP-HTTPS's checks, from the URL to the router
// advertisement.
func (s *session) ipHTTPSSteps() []Step {
	noTLS := func() (Check, bool) {
		if !s.target.HTTPS {
			return notApplicable(nil, "plain HTTP URL (--allow-plain-http): no TLS"), true
		}
		return Check{}, false
	}
	certNeeds := []string{CheckTLS}
	return []Step{
		{Name: CheckURL, Title: "IP-HTTPS URL", Run: func(context.Context) Check {
			c, t := checkURL(s.o.URL, s.o.AllowIPLiteral, s.o.AllowPlainHTTP)
			s.target = t
			return c
		}},
		{Name: CheckDNS, Title: "server name resolves", Needs: []string{CheckURL}, Run: func(ctx context.Context) Check {
			via := ""
			if routes, err := s.proxyRoutes(ctx); err == nil && len(routes) > 0 && routes[0].Proxy.URL != nil {
				via = routes[0].Proxy.String()
			}
			c, addrs := checkDNS(ctx, s.d.Resolver, newRawQuery(s.d.Dialer, s.d.NameServers), s.target.Host, via)
			s.addrs = addrs
			return c
		}},
		{Name: CheckProxy, Title: "proxy in effect", Needs: []string{CheckURL}, Run: func(ctx context.Context) Check {
			routes, err := s.proxyRoutes(ctx)
			c, via := checkProxy(ctx, s.o.Proxy, routes, err, s.d.Dialer, s.target.Addr())
			s.via = via
			return c
		}},
		{Name: CheckTCP, Title: "TCP connection to the server's port", Needs: []string{CheckDNS, CheckProxy}, Run: func(ctx context.Context) Check {
			c, conn := checkTCP(ctx, s.d.Dialer, s.addrs, s.target.Port, s.via)
			if conn != nil {
				s.via.Conn = nil // owned by s.conn now
				s.conn = conn
			}
			return c
		}},
		{Name: CheckTLS, Title: "TLS handshake", Needs: []string{CheckTCP}, Run: func(ctx context.Context) Check {
			if c, ok := noTLS(); ok {
				return c
			}
			c, hs := checkTLS(ctx, s.conn, s.target.Host, s.o.NameRule, s.o.Certificates)
			if hs != nil {
				s.hs, s.conn = hs, hs.Conn
			}
			return c
		}},
		{Name: CheckCertChain, Title: "certificate chains to a trusted root", Needs: certNeeds, Run: func(context.Context) Check {
			if c, ok := noTLS(); ok {
				return c
			}
			via := ""
			if s.via.Route != proxy.Direct {
				via = s.via.Route
			}
			c, chains := checkCertChain(s.chain(), s.o.Roots, s.o.RootCerts, s.o.RootsName, via, s.d.Now())
			s.chains = chains
			return c
		}},
		{Name: CheckCertValidity, Title: "certificate within its validity period", Needs: certNeeds, Run: func(context.Context) Check {
			if c, ok := noTLS(); ok {
				return c
			}
			return checkCertValidity(s.chain(), s.d.Now())
		}},
		{Name: CheckCertName, Title: "certificate name matches the URL host", Needs: certNeeds, Run: func(context.Context) Check {
			if c, ok := noTLS(); ok {
				return c
			}
			return checkCertName(s.chain()[0], s.target.Host, s.o.NameRule)
		}},
		{Name: CheckCertUsage, Title: "certificate allows server authentication", Needs: certNeeds, Run: func(context.Context) Check {
			if c, ok := noTLS(); ok {
				return c
			}
			return checkCertUsage(s.chain(), s.o.Roots, len(s.chains) > 0, s.d.Now())
		}},
		{Name: CheckCertRevocation, Title: "certificate revocation list reachable", Needs: certNeeds, Run: func(ctx context.Context) Check {
			if c, ok := noTLS(); ok {
				return c
			}
			return checkRevocation(ctx, s.d.HTTP, s.chain(), s.chains, s.d.Now())
		}},
		{Name: CheckPOST, Title: "IP-HTTPS request answered 200",
			Needs: []string{CheckTLS, CheckCertChain, CheckCertValidity, CheckCertName, CheckCertUsage},
			Run: func(ctx context.Context) Check {
				c, r := checkPOST(ctx, s.conn, s.target, s.hs)
				s.reader = r
				return c
			}},
		{Name: CheckRA, Title: "router advertisement with a /64 prefix", Needs: []string{CheckPOST}, Run: func(ctx context.Context) Check {
			timeout := s.o.Timeout
			if timeout <= 0 {
				timeout = DefaultTimeout
			}
			return checkRA(ctx, s.conn, s.reader, timeout)
		}},
	}
}

// ReadRoots reads a PEM bundle of CA certificates (the client's --ca) as a
// pool and as a list.
func ReadRoots(path string) (*x509.CertPool, []*x509.Certificate, error) {
	certs, err := pki.LoadCerts(path)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}
