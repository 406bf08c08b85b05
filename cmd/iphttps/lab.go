package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// labDefaultDir is where `iphttps lab` keeps its PKI, logs, sockets and
// state file.
const labDefaultDir = "/run/iphttps-lab"

// labRootMessage is what `iphttps lab` says to an unprivileged user.
const labRootMessage = "iphttps lab must run as root (it creates network namespaces and TUN devices); try: sudo iphttps lab"

// labFlags are the options of `iphttps lab`.
type labFlags struct {
	keep        bool
	clients     int
	dir         string
	prefix      string
	verbose     bool
	waitTimeout time.Duration
	waitSet     bool   // --wait was given
	scenario    string // --scenario: the DirectAccess lab (lab_da.go)
}

func newLabCmd() *cobra.Command {
	var f labFlags
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a whole IP-HTTPS deployment in network namespaces and show it working",
		Long: `Build an IP-HTTPS deployment on this machine, in network namespaces, and
exercise it: an "Internet" router with a DNS server, an IP-HTTPS server
(https://da.example.test/IPHTTPS, prefix 2001:db8:1::/64), an intranet host
2001:db8:c0::10 behind it, and clients that connect through the tunnel.

The lab pings the intranet host and the other client from cli1, fetches a web
page from the intranet host, prints every daemon's status, and removes
everything again. With --keep it stays up for you to explore until Ctrl-C
(or 'iphttps lab down' from another terminal).

With --scenario NAME it builds a DirectAccess deployment instead: the server
with IP-HTTPS, Teredo and 6to4, and clients configured with all three, each
choosing one as a DirectAccess client does. NAME is one of:
` + labScenarioHelp() + `
Each client reaches the intranet host (ping and web page) and the lab prints
the method it chose and, from 'show paths', why.

Needs root and the Debian packages iproute2, dnsmasq-base and iputils-ping
(--scenario: iproute2, nftables and iputils-ping).`,
		Example: `  sudo iphttps lab
  sudo iphttps lab --keep
  sudo iphttps lab --scenario directaccess
  sudo iphttps lab --scenario hotel --keep
  sudo iphttps lab down`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.waitSet = cmd.Flags().Changed("wait")
			if f.scenario != "" {
				return runLabScenario(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
			}
			return runLab(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.keep, "keep", false, "stay up after the demonstration, until Ctrl-C or 'iphttps lab down'")
	fl.IntVar(&f.clients, "clients", 2, "number of client namespaces (1 to 30)")
	fl.StringVar(&f.dir, "dir", labDefaultDir, "directory for the lab's certificates, logs, control sockets and state")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log each step of building and removing the lab on stderr")
	fl.StringVar(&f.prefix, "prefix", lab.DefaultPrefix, "namespace name prefix (for tests running beside a lab)")
	fl.DurationVar(&f.waitTimeout, "wait", 30*time.Second, "how long to wait for each client to come up (--scenario: 60s)")
	fl.StringVar(&f.scenario, "scenario", "", "build a DirectAccess lab with all three methods instead: "+strings.Join(labScenarioNames(), ", "))
	_ = fl.MarkHidden("prefix")
	_ = fl.MarkHidden("wait")
	cmd.AddCommand(newLabDownCmd())
	return cmd
}

func newLabDownCmd() *cobra.Command {
	var dir, prefix string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove a lab left running (by another terminal, or after a crash)",
		Long: `Remove the lab recorded in DIR/state.json: ask the lab process to stop, stop
the daemons it started, delete its network namespaces and /etc/netns
directories. Only processes recorded in the state file and namespaces named
with the lab's prefix are touched. Without a state file, namespaces named like
a lab's (prefix iphttps-) are removed.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLabDown(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dir, prefix)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", labDefaultDir, "the lab's directory")
	cmd.Flags().StringVar(&prefix, "prefix", lab.DefaultPrefix, "namespace name prefix to clean up when there is no state file")
	_ = cmd.Flags().MarkHidden("prefix")
	return cmd
}

// labPreflight checks root and the external tools.
func labPreflight() error {
	if err := lab.CheckRoot(); err != nil {
		return errors.New(labRootMessage)
	}
	if err := lab.CheckTools(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

func runLabDown(ctx context.Context, out, errOut io.Writer, dir, prefix string) error {
	if err := lab.CheckRoot(); err != nil {
		return errors.New(labRootMessage)
	}
	log := slog.New(slog.NewTextHandler(errOut, nil))
	err := lab.Destroy(ctx, dir, log)
	if err == nil {
		fmt.Fprintf(out, "Lab in %s removed.\n", dir)
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab down: %w", err)
	}
	all, err := lab.ListNetns(ctx)
	if err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	var names []string // the default lab's and a --scenario lab's
	for _, n := range all {
		if lab.IsLabNamespace(prefix, n) || lab.IsSixToFourLabNamespace(prefix, n) {
			names = append(names, n)
		}
	}
	if err := lab.RemoveStale(ctx, prefix, log); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	if err := lab.RemoveStaleSixToFour(ctx, prefix); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	if len(names) == 0 {
		fmt.Fprintf(out, "No lab state in %s and no namespace named %s*: nothing to remove.\n", dir, prefix)
		return nil
	}
	fmt.Fprintf(out, "No lab state in %s; removed the namespaces %s.\n", dir, strings.Join(names, ", "))
	return nil
}

// labDemo runs the demonstration and counts what failed.
type labDemo struct {
	out      io.Writer
	l        *lab.Lab
	failures []string
}

func (d *labDemo) heading(s string) { fmt.Fprintf(d.out, "\n== %s\n", s) }

func (d *labDemo) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.failures = append(d.failures, msg)
	fmt.Fprintf(d.out, "FAILED: %s\n", indentAfterFirst(msg, "  "))
}

// labEnv is what every kind of lab needs before it is built.
type labEnv struct {
	ctx  context.Context // ends on Ctrl-C (SIGINT) or SIGTERM
	bin  string          // this executable, run as the daemons
	dir  string          // --dir, absolute
	logW io.Writer       // the lab's progress (stderr with --verbose)
}

// labSetup prepares a lab in f.dir: it catches Ctrl-C and SIGTERM (call
// stop when done), finds the binary, and removes a stale lab recorded in
// the directory (refusing if its process still runs).
func labSetup(ctx context.Context, out, errOut io.Writer, f labFlags) (e labEnv, stop func(), err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	e.ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if e.bin, err = os.Executable(); err != nil {
		return e, stop, fmt.Errorf("lab: find own executable: %w", err)
	}
	if e.dir, err = filepath.Abs(f.dir); err != nil {
		return e, stop, fmt.Errorf("lab: --dir: %w", err)
	}
	e.logW = io.Discard
	if f.verbose {
		e.logW = errOut
	}
	if s, err := lab.ReadState(e.dir); err == nil {
		if s.Running() {
			return e, stop, fmt.Errorf("lab: a lab is already running (pid %d, namespaces %s*); stop it with: sudo iphttps lab down --dir %s", s.LabPID, s.Prefix, e.dir)
		}
		fmt.Fprintf(out, "Removing a stale lab left in %s ...\n", e.dir)
		if err := lab.Destroy(e.ctx, e.dir, slog.New(slog.NewTextHandler(e.logW, nil))); err != nil {
			return e, stop, fmt.Errorf("lab: remove stale lab: %w", err)
		}
	}
	return e, stop, nil
}

func runLab(ctx context.Context, out, errOut io.Writer, f labFlags) (err error) {
	if err := labPreflight(); err != nil {
		return err
	}
	if f.clients < 1 || f.clients > 30 {
		return fmt.Errorf("lab: --clients %d: want 1 to 30", f.clients)
	}
	e, stop, err := labSetup(ctx, out, errOut, f)
	if err != nil {
		return err
	}
	defer stop()
	ctx, bin, dir, logW := e.ctx, e.bin, e.dir, e.logW

	fmt.Fprintf(out, "Building the lab (namespaces %s*, files in %s) ...\n", f.prefix, dir)
	l, err := lab.Up(ctx, lab.Options{Prefix: f.prefix, Clients: f.clients, Dir: dir, Binary: bin, Log: logW})
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer func() {
		fmt.Fprintln(out, "\nRemoving the lab ...")
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("lab: tear-down: %w", derr))
			return
		}
		fmt.Fprintf(out, "Lab removed (logs kept in %s).\n", dir)
	}()

	d := &labDemo{out: out, l: l}
	d.topology()
	addrs := d.start(ctx, f.waitTimeout)
	if ctx.Err() == nil {
		d.exercise(ctx, addrs)
	}
	if ctx.Err() == nil {
		d.statuses(ctx)
	}
	return labFinish(ctx, out, dir, d.failures, f.keep, d.explore,
		"All checks passed: the clients reach the intranet and each other through IP-HTTPS.")
}

// labFinish ends a lab's demonstration: interrupted, or the failed checks
// (an error) or passed, then with keep the directions to explore (explore)
// and a wait for Ctrl-C or 'iphttps lab down'.
func labFinish(ctx context.Context, out io.Writer, dir string, failures []string, keep bool, explore func(dir string), passed string) error {
	if ctx.Err() != nil {
		return errors.New("lab: interrupted")
	}
	var err error
	if len(failures) > 0 {
		fmt.Fprintf(out, "\n%d check(s) FAILED:\n", len(failures))
		for _, m := range failures {
			fmt.Fprintf(out, "  - %s\n", firstLine(m))
		}
		fmt.Fprintf(out, "The daemons' logs are in %s.\n", dir)
		err = fmt.Errorf("lab: %d check(s) failed", len(failures))
	} else {
		fmt.Fprintln(out, "\n"+passed)
	}
	if keep {
		explore(dir)
		<-ctx.Done()
	}
	return err
}

// topology prints the map of the lab.
func (d *labDemo) topology() {
	l := d.l
	d.heading("The lab")
	for i := 1; i <= l.Clients(); i++ {
		fmt.Fprintf(d.out, "  %-16s client %d, Internet address %s, DNS %s\n", l.ClientNS(i), i, lab.ClientIPv4(i), lab.DNSAddr)
	}
	fmt.Fprintf(d.out, "  %-16s the \"Internet\": router, DNS server (%s = %s)\n", l.NS(lab.RoleInet), lab.ServerName, lab.ServerIPv4)
	fmt.Fprintf(d.out, "  %-16s IP-HTTPS server %s, link prefix %s\n", l.NS(lab.RoleEdge), lab.ServerURL, lab.LinkPrefix)
	fmt.Fprintf(d.out, "  %-16s intranet host %s (web server), behind the server\n", l.NS(lab.RoleCorp), lab.IntranetHost)
}

// start runs the server and the clients and waits for the clients; it
// returns the tunnel address of each client that came up (index i-1).
func (d *labDemo) start(ctx context.Context, wait time.Duration) []string {
	l := d.l
	addrs := make([]string, l.Clients())
	d.heading("Starting the IP-HTTPS server and clients")
	if err := l.StartServer(); err != nil {
		d.fail("server: %v", err)
		return addrs
	}
	fmt.Fprintf(d.out, "  server  pid %-7d log %s\n", l.PID("server"), l.LogFile("server"))
	for i := 1; i <= l.Clients(); i++ {
		if err := l.StartClient(i); err != nil {
			d.fail("%s: %v", lab.ClientName(i), err)
			continue
		}
		fmt.Fprintf(d.out, "  %-6s  pid %-7d log %s\n", lab.ClientName(i), l.PID(lab.ClientName(i)), l.LogFile(lab.ClientName(i)))
	}
	d.heading("Tunnel addresses (from " + lab.LinkPrefix + ")")
	for i := 1; i <= l.Clients(); i++ {
		if !l.Running(lab.ClientName(i)) && l.PID(lab.ClientName(i)) == 0 {
			continue
		}
		began := time.Now()
		s, err := l.WaitClientActive(ctx, i, wait)
		if err != nil {
			d.fail("%s did not come up: %v", lab.ClientName(i), err)
			continue
		}
		a, _ := lab.LinkAddr(s)
		addrs[i-1] = a.String()
		fmt.Fprintf(d.out, "  %-6s %-28s (%s, up after %s)\n", lab.ClientName(i), a, s.InterfaceStatus, time.Since(began).Round(10*time.Millisecond))
	}
	return addrs
}

// exercise pings and fetches over the tunnel from cli1.
func (d *labDemo) exercise(ctx context.Context, addrs []string) {
	l := d.l
	cli1 := l.ClientNS(1)
	if addrs[0] == "" {
		d.fail("cli1 is not up: skipping the pings and the web page")
		return
	}
	d.ping(ctx, cli1, lab.IntranetHost, "cli1 -> intranet host")
	for i := 2; i <= l.Clients(); i++ {
		if addrs[i-1] == "" {
			d.fail("%s is not up: cannot ping it", lab.ClientName(i))
			continue
		}
		d.ping(ctx, cli1, addrs[i-1], "cli1 -> "+lab.ClientName(i))
	}
	url := "http://[" + lab.IntranetHost + "]/"
	d.heading("HTTP GET " + url + " from cli1, over the tunnel")
	line, body, err := l.HTTPGet(ctx, cli1, url)
	if err != nil {
		d.fail("HTTP GET %s: %v", url, err)
		return
	}
	fmt.Fprintf(d.out, "  %s\n", line)
	fmt.Fprintf(d.out, "  %s\n", indentAfterFirst(strings.TrimRight(string(body), "\n"), "  "))
	if !strings.HasSuffix(line, "200 OK") {
		d.fail("HTTP GET %s: %s", url, line)
	}
}

// ping runs the real ping(8) in ns and shows its output.
func (d *labDemo) ping(ctx context.Context, ns, dst, what string) {
	args := []string{"ping", "-6", "-c", "3", "-W", "2", dst}
	d.heading(fmt.Sprintf("%s: ip netns exec %s %s", what, ns, strings.Join(args, " ")))
	out, err := d.l.ExecContext(ctx, ns, args...)
	fmt.Fprintf(d.out, "  %s\n", indentAfterFirst(strings.TrimRight(string(out), "\n"), "  "))
	if err != nil {
		d.fail("%s: ping %s: %v", what, dst, err)
	}
}

// statuses prints every daemon's status in the netsh layout.
func (d *labDemo) statuses(ctx context.Context) {
	l := d.l
	d.heading("Status (layout of netsh interface httpstunnel show interfaces)")
	names := []string{"server"}
	for i := 1; i <= l.Clients(); i++ {
		names = append(names, lab.ClientName(i))
	}
	for _, n := range names {
		if !l.Running(n) {
			continue
		}
		s, err := l.Status(ctx, n)
		if err != nil {
			d.fail("status of %s: %v", n, err)
			continue
		}
		ns := l.NS(lab.RoleEdge)
		if n != "server" {
			ns = l.NS(n)
		}
		fmt.Fprintf(d.out, "\n-- %s (namespace %s, socket %s)", n, ns, l.SocketFile(n))
		if err := status.WriteNetsh(d.out, []status.Interface{s}); err != nil {
			d.fail("status of %s: %v", n, err)
		}
	}
}

// explore tells how to look around in a lab that stays up.
func (d *labDemo) explore(dir string) {
	l := d.l
	fmt.Fprintf(d.out, `
The lab stays up. Explore it from another terminal:
  # a shell on client 1 (try: ping -6 %[2]s; ip -6 addr show dev %[3]s; curl 'http://[%[2]s]/')
  sudo ip netns exec %[1]s bash
  # the status of client 1 and of the server
  sudo iphttps show interfaces --socket %[4]s
  sudo iphttps show interfaces --socket %[5]s
  # the daemons' logs
  ls %[6]s/*.log
To remove the lab: Ctrl-C here, or '%[7]s'.
`, l.ClientNS(1), lab.IntranetHost, lab.ClientDevice, l.SocketFile("cli1"), l.SocketFile("server"), dir, labDownCommand(dir))
}

// labDownCommand is the command that removes the lab in dir.
func labDownCommand(dir string) string {
	if dir != labDefaultDir {
		return "sudo iphttps lab down --dir " + dir
	}
	return "sudo iphttps lab down"
}

// indentAfterFirst indents every line but the first.
func indentAfterFirst(s, indent string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}

// firstLine is the first line of s.
func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
