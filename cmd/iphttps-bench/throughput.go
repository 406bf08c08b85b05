package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/bench/docsection"
	"github.com/iphttps/iphttps/internal/bench/tput"
)

func newThroughputCmd() *cobra.Command {
	var (
		seconds   int
		runs      int
		smoke     bool
		only      []string
		iphttps   string
		results   string
		doc       string
		check     bool
		quietMax  float64
		quietWait time.Duration
		logLevel  string
	)
	cmd := &cobra.Command{
		Use:   "throughput",
		Short: "Tunnel throughput, latency and CPU: iphttps against its ceilings and ocserv CSTP",
		Long: `Measure, in one run, iphttps against its ceilings and against ocserv, and print a
Markdown table with the ratios the project's targets are stated in.

Two namespaces, ipbt-srv and ipbt-cli, are joined by a veth (192.0.2.1/24 and
192.0.2.2/24, 2001:db8:1::1/64 and ::2). In them, section by section:

  veth     plain TCP over the veth: iperf3 1 and 4 streams, both directions; idle ping
  tls      one TLS 1.3 stream (Go crypto/tls, ECDSA P-256, AES-128-GCM expected) written
           in 256 KiB blocks, goodput counted by the receiver
  iphttps  iphttps server and client (--self-signed); iperf3 1 and 4 streams both ways
           over the tunnel (IPv6 inside), ping idle and under load, CPU of both daemons,
           drop counters (iphttps show statistics, TUN devices)
  ocserv   ocserv and openconnect --no-dtls (CSTP: IP over TLS over TCP), TLS 1.3
           AES-128-GCM only: the same tests, CPU of ocserv's process tree and openconnect
  teredo   iphttps' Teredo: server and relay (--teredo 192.0.2.10, second address .11) and
           client (--teredo-server) with no NAT between them; the same tests to an address
           of the server namespace reached only through the tunnel
  miredo   Miredo 1.2, the Teredo peer: miredo-server on the same addresses, a Miredo relay
           (RelayType cone) on 192.0.2.12:3545 and a Miredo client; the same tests
  6to4     iphttps' 6to4: the server's relay (--6to4 192.0.2.1) and a client with
           --6to4-relay (IPv6 in IPv4 protocol 41 on raw sockets); the same tests

Each test lasts --time seconds; the set is repeated --runs times and medians are
reported. Before each test the benchmark waits (at most --quiet-wait) for the machine to
be quiet (busy below --quiet-max % of one CPU) and records it when it was not. Results:
a table on stdout, and bench/results/<UTC time>/throughput.{json,md} (every run, the
medians, the machine, the TLS suites), with the daemons' logs and iperf3 reports in
logs/.

Targets (reported; --check makes a missed one exit 1): 1-stream tunnel throughput at
least 40% of the TLS stream and 5x ocserv CSTP; ping under load at most 1/3 of ocserv's;
idle round-trip overhead over the veth at most 0.2 ms; 1-stream Teredo throughput at
least 2x Miredo's and 1.5x the IP-HTTPS tunnel's; 1-stream 6to4 throughput at least 1.5x
the IP-HTTPS tunnel's. --smoke runs neither peer (ocserv,
Miredo).

Needs root, iproute2, iputils-ping, iperf3, ocserv, openconnect and Miredo: bench/run
installs them and builds both binaries. The exit status is 0 when everything ran, 1 when a part
did not (or, with --check, a target was missed).`,
		Example: `  bench/run throughput
  bench/run throughput --smoke
  bench/run throughput --only iphttps,tls --runs 1 --time 5
  bench/run throughput --doc docs/performance.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("own binary: %w", err)
			}
			if iphttps == "" {
				iphttps = findIPHTTPS(self)
			}
			if iphttps != "" {
				if abs, err := filepath.Abs(iphttps); err == nil {
					iphttps = abs
				}
			}
			var sections []string
			for _, s := range only {
				if s = strings.TrimSpace(s); s != "" {
					sections = append(sections, s)
				}
			}
			res, runErr := tput.Run(cmd.Context(), tput.Options{
				IPHTTPS: iphttps, Self: self, Time: time.Duration(seconds) * time.Second, Runs: runs,
				Smoke: smoke, Sections: sections, ResultsDir: results,
				QuietMax: quietMax, QuietWait: quietWait, Log: log,
			})
			if res == nil {
				return runErr
			}
			md := tput.Markdown(res)
			fmt.Print(md)
			if doc != "" {
				if runErr != nil {
					log.Error("not updating the document from an incomplete run", "doc", doc)
				} else if err := docsection.UpdateFile(doc, tput.DocSection, md, tput.DocTemplate); err != nil {
					return err
				} else {
					log.Info("document updated", "doc", doc, "section", tput.DocSection)
				}
			}
			if runErr != nil {
				return runErr
			}
			if check {
				if unmet := tput.Unmet(res.Ratios); len(unmet) > 0 {
					return errors.New("targets not met: " + strings.Join(unmet, "; "))
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&seconds, "time", 10, "seconds per iperf3 test and TLS stream")
	f.IntVar(&runs, "runs", 3, "repetitions of the whole set; medians are reported")
	f.BoolVar(&smoke, "smoke", false, "CI check: 1 run of 2 s tests, 1 stream only (veth, TLS, iphttps, idle pings), no ocserv; fails if a tunnel carries no traffic")
	f.StringSliceVar(&only, "only", nil, "sections to run, comma-separated: veth,tls,iphttps,ocserv,teredo,miredo,6to4 (default all)")
	f.StringVar(&iphttps, "iphttps", "", "iphttps binary to test (default: iphttps next to this binary, then in PATH)")
	f.StringVar(&results, "results", "bench/results", "directory for the result directories")
	f.StringVar(&doc, "doc", "", "also write the table into this Markdown file between <!-- throughput:begin --> and <!-- throughput:end --> (created if missing)")
	f.BoolVar(&check, "check", false, "exit 1 when a target is missed")
	f.Float64Var(&quietMax, "quiet-max", 20, "busy % of one CPU under which the machine counts as quiet before a test")
	f.DurationVar(&quietWait, "quiet-wait", 15*time.Second, "longest wait for a quiet machine before a test")
	f.StringVar(&logLevel, "log-level", "info", "progress log level on stderr: debug, info, warn or error")
	cmd.AddCommand(newTLSPumpCmd())
	return cmd
}

// findIPHTTPS looks for the iphttps binary next to the benchmark's own,
// then in PATH; empty if neither has one.
func findIPHTTPS(self string) string {
	next := filepath.Join(filepath.Dir(self), "iphttps")
	if st, err := os.Stat(next); err == nil && !st.IsDir() {
		return next
	}
	if p, err := exec.LookPath("iphttps"); err == nil {
		return p
	}
	return ""
}
