package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// `iphttps lab --scenario NAME`: the DirectAccess lab. The server runs
// IP-HTTPS, Teredo and 6to4 (the 6to4 lab's StartDAServer); every client
// is configured with all three and must choose the method a DirectAccess
// client in its place chooses, then reach the intranet host.

// labScenario is one of --scenario's names and its clients.
type labScenario struct {
	name    string
	clients []lab.SixToFourKind
	about   string
}

var labScenarios = []labScenario{
	{"directaccess", []lab.SixToFourKind{lab.SixToFourPublic, lab.SixToFourPrivateNAT, lab.SixToFourHotel, lab.SixToFourNAT},
		"the four clients below, cli1 to cli4, together"},
	{"public", []lab.SixToFourKind{lab.SixToFourPublic}, "a public IPv4 address: 6to4"},
	{"nat", []lab.SixToFourKind{lab.SixToFourPrivateNAT}, "behind a NAT with a private address: Teredo"},
	{"hotel", []lab.SixToFourKind{lab.SixToFourHotel}, "a public address where protocol 41 and UDP are blocked: IP-HTTPS"},
	{"pseudo-public", []lab.SixToFourKind{lab.SixToFourNAT}, "a public-looking address behind a NAT: not 6to4, Teredo"},
}

func labScenarioNames() []string {
	names := make([]string, len(labScenarios))
	for i, s := range labScenarios {
		names[i] = s.name
	}
	return names
}

func labScenarioHelp() string {
	var b strings.Builder
	for _, s := range labScenarios {
		fmt.Fprintf(&b, "  %-14s %s\n", s.name, s.about)
	}
	return b.String()
}

// labScenarioWait is how long a scenario waits for each client's method
// by default: the hotel's client gives up on 6to4 and Teredo first.
const labScenarioWait = 60 * time.Second

// labExpectedMethod is the method a client of kind k must choose.
func labExpectedMethod(k lab.SixToFourKind) string {
	switch k {
	case lab.SixToFourPublic:
		return "6to4"
	case lab.SixToFourHotel:
		return "IP-HTTPS"
	}
	return "Teredo"
}

// labClientPlace says where lab client i is.
func labClientPlace(l *lab.SixToFourLab, i int) string {
	a := l.ClientIPv4(i)
	switch l.Kind(i) {
	case lab.SixToFourPublic:
		return fmt.Sprintf("public address %s", a)
	case lab.SixToFourPrivateNAT:
		return fmt.Sprintf("behind a NAT, private address %s", a)
	case lab.SixToFourHotel:
		return fmt.Sprintf("hotel: public address %s, protocol 41 and UDP 3544 blocked", a)
	case lab.SixToFourNAT:
		return fmt.Sprintf("pseudo-public: %s behind a NAT, seen as %s", a, l.ClientPublicIPv4(i))
	}
	return fmt.Sprintf("%s address %s", l.Kind(i), a)
}

// labDA runs a scenario's demonstration and collects what failed.
type labDA struct {
	out      io.Writer
	l        *lab.SixToFourLab
	failures []string
}

func (d *labDA) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.failures = append(d.failures, msg)
	fmt.Fprintf(d.out, "FAILED: %s\n", indentAfterFirst(msg, "  "))
}

func runLabScenario(ctx context.Context, out, errOut io.Writer, f labFlags) (err error) {
	var sc *labScenario
	for i := range labScenarios {
		if labScenarios[i].name == f.scenario {
			sc = &labScenarios[i]
		}
	}
	if sc == nil {
		return fmt.Errorf("lab: --scenario %q: want one of %s", f.scenario, strings.Join(labScenarioNames(), ", "))
	}
	if err := lab.CheckRoot(); err != nil {
		return errors.New(labRootMessage)
	}
	if err := lab.CheckSixToFourTools(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	e, stop, err := labSetup(ctx, out, errOut, f)
	if err != nil {
		return err
	}
	defer stop()
	ctx = e.ctx
	wait := labScenarioWait
	if f.waitSet {
		wait = f.waitTimeout
	}

	began := time.Now()
	fmt.Fprintf(out, "Building the DirectAccess lab, scenario %s (namespaces %s*, files in %s) ...\n", sc.name, f.prefix, e.dir)
	l, err := lab.SixToFourUp(ctx, lab.SixToFourOptions{Prefix: f.prefix, Clients: sc.clients, Dir: e.dir, Binary: e.bin, Log: e.logW})
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer func() {
		fmt.Fprintln(out, "\nRemoving the lab ...")
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("lab: tear-down: %w", derr))
			return
		}
		fmt.Fprintf(out, "Lab removed (logs kept in %s; %s in all).\n", e.dir, time.Since(began).Round(100*time.Millisecond))
	}()
	if err := l.SaveState(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}

	d := &labDA{out: out, l: l}
	d.topology()
	if d.start(ctx) {
		d.exercise(ctx, wait)
	}
	if err := l.SaveState(); err != nil {
		d.fail("%v", err)
	}
	return labFinish(ctx, out, e.dir, d.failures, f.keep, d.explore,
		"All checks passed: each client chose its method and reaches the intranet.")
}

// topology prints the map of the lab.
func (d *labDA) topology() {
	l := d.l
	fmt.Fprintf(d.out, "\n== The lab\n")
	fmt.Fprintf(d.out, "  %-16s the DirectAccess server %s: IP-HTTPS https://%s/IPHTTPS, Teredo server, 6to4 relay\n",
		l.NS(lab.SixToFourRoleServer), lab.SixToFourServerIPv4, lab.ServerName)
	fmt.Fprintf(d.out, "  %-16s intranet host %s (web server), behind the server\n", l.NS(lab.SixToFourRoleCorp), lab.SixToFourIntranetHost)
	fmt.Fprintf(d.out, "  %-16s the \"Internet\": a router\n", l.NS(lab.SixToFourRoleInet))
	for i := 1; i <= l.Clients(); i++ {
		fmt.Fprintf(d.out, "  %-16s %s (should choose %s)\n", l.ClientNS(i), labClientPlace(l, i), labExpectedMethod(l.Kind(i)))
	}
}

// start starts the server and the clients, each with all three methods;
// false if the server did not start.
func (d *labDA) start(ctx context.Context) bool {
	l := d.l
	fmt.Fprintf(d.out, "\n== Starting the server (IP-HTTPS, Teredo, 6to4) and the clients (all three methods)\n")
	if err := l.StartDAServer(ctx); err != nil {
		d.fail("server: %v", err)
		return false
	}
	fmt.Fprintf(d.out, "  server  pid %-7d log %s\n", l.PID(lab.IPHTTPSServerName), l.LogFile(lab.IPHTTPSServerName))
	for i := 1; i <= l.Clients(); i++ {
		if err := l.StartDAClient(i, ""); err != nil {
			d.fail("%s: %v", lab.SixToFourClientRole(i), err)
			continue
		}
		fmt.Fprintf(d.out, "  %-6s  pid %-7d log %s\n", lab.SixToFourClientRole(i), l.PID(lab.DAClientName(i)), l.LogFile(lab.DAClientName(i)))
	}
	if err := l.SaveState(); err != nil {
		d.fail("%v", err)
	}
	return true
}

// exercise waits for every client's method (together, each up to wait),
// then pings the intranet host and fetches its page from each, and prints
// one line per client and its paths.
func (d *labDA) exercise(ctx context.Context, wait time.Duration) {
	l := d.l
	type result struct {
		paths []status.Path
		after time.Duration
		err   error
	}
	res := make([]result, l.Clients()+1)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 1; i <= l.Clients(); i++ {
		if l.PID(lab.DAClientName(i)) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps, err := l.WaitDAClientMethod(ctx, i, labExpectedMethod(l.Kind(i)), wait)
			res[i] = result{ps, time.Since(start), err}
		}()
	}
	wg.Wait()
	fmt.Fprintf(d.out, "\n== The method each client chose, and why (iphttps show paths)\n")
	for i := 1; i <= l.Clients() && ctx.Err() == nil; i++ {
		if l.PID(lab.DAClientName(i)) == 0 {
			continue
		}
		d.client(ctx, i, res[i].paths, res[i].after, res[i].err)
	}
}

// client checks and prints lab client i: its method (err from waiting for
// the expected one), a ping and a web page, and its paths.
func (d *labDA) client(ctx context.Context, i int, ps []status.Path, after time.Duration, waitErr error) {
	l := d.l
	role, want := lab.SixToFourClientRole(i), labExpectedMethod(l.Kind(i))
	ns, host := l.ClientNS(i), lab.SixToFourIntranetHost
	method := lab.ActivePath(ps)
	var line string
	switch {
	case waitErr == nil:
		line = fmt.Sprintf("%s — carries the traffic after %.1f s", method, after.Seconds())
	case method == "":
		line = fmt.Sprintf("no method carries the traffic after %.0f s (want %s)", after.Seconds(), want)
	default:
		line = fmt.Sprintf("%s — carries the traffic, but want %s", method, want)
	}
	const pings = 3
	pout, _ := l.ExecContext(ctx, ns, "ping", "-6", "-n", "-c", fmt.Sprint(pings), "-i", "0.2", "-W", "2", host)
	answered := strings.Count(string(pout), "bytes from "+host)
	web := "web page OK"
	url := "http://[" + host + "]/"
	if st, _, err := lab.HTTPGet(ctx, ns, url); err != nil {
		web = "web page FAILED: " + err.Error()
	} else if !strings.HasSuffix(st, "200 OK") {
		web = "web page FAILED: " + st
	}
	fmt.Fprintf(d.out, "\n%s (%s): %s; ping %d/%d, %s\n", role, labClientPlace(l, i), line, answered, pings, web)
	d.paths(ctx, i)
	if waitErr != nil {
		d.fail("%s: %s does not carry the traffic: %v", role, want, waitErr)
	}
	if answered != pings {
		d.fail("%s: ping %s: %d of %d answered\n%s", role, host, answered, pings, strings.TrimSpace(string(pout)))
	}
	if web != "web page OK" {
		d.fail("%s: GET %s: %s", role, url, strings.TrimPrefix(web, "web page FAILED: "))
	}
}

// paths prints client i's `iphttps show paths`.
func (d *labDA) paths(ctx context.Context, i int) {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := control.Fetch(fctx, d.l.DAClientSocket(i))
	if err != nil {
		d.fail("%s: status: %v", lab.SixToFourClientRole(i), err)
		return
	}
	var b bytes.Buffer
	if err := status.WritePaths(&b, []status.Interface{st}); err != nil {
		d.fail("%s: show paths: %v", lab.SixToFourClientRole(i), err)
		return
	}
	fmt.Fprintf(d.out, "  %s\n", indentAfterFirst(strings.TrimRight(b.String(), "\n"), "  "))
}

// explore tells how to look around in a lab that stays up.
func (d *labDA) explore(dir string) {
	l := d.l
	fmt.Fprintf(d.out, `
The lab stays up. Explore it from another terminal:
  # a shell on client 1 (try: ping -6 %[2]s; curl 'http://[%[2]s]/')
  sudo ip netns exec %[1]s bash
  # client 1's methods, and the server's status
  sudo iphttps show paths --socket %[3]s
  sudo iphttps show interfaces --socket %[4]s
  # the daemons' logs
  ls %[5]s/*.log
To remove the lab: Ctrl-C here, or '%[6]s'.
`, l.ClientNS(1), lab.SixToFourIntranetHost, l.DAClientSocket(1), l.ServerSocket(), dir, labDownCommand(dir))
}
