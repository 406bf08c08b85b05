package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/bench/scale"
	"github.com/iphttps/iphttps/internal/loadgen"
)

// Sizes of a --smoke run.
const (
	smokeSessions   = 200
	smokeHandshakes = 200
	smokeTrickle    = 50
	smokeTime       = 3 * time.Second
)

func newScaleCmd() *cobra.Command {
	o := scale.Options{
		Sessions:        10000,
		Handshakes:      3000,
		Concurrency:     64,
		TrickleSessions: 1000,
		TrickleRate:     10,
		Time:            10 * time.Second,
		Sources:         2,
		ResultsDir:      "bench/results",
		MaxTime:         30 * time.Minute,
		QuietWait:       2 * time.Minute,
	}
	var smoke bool
	var logLevel string
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Many sessions on one server: memory and CPU per idle session, handshake rate, loss and added latency",
		Long: `scale runs one iphttps server in network namespace ipbs-srv, a load generator process in
ipbs-cli (many IP-HTTPS sessions in one process, no TUN, the real wire protocol: TCP, TLS,
POST, 200, RS/RA, DAD) and an intranet host in ipbs-int behind the server, joined by veth
pairs on documentation addresses (198.51.100.0/24, 2001:db8:5::/64, link prefix
2001:db8:6::/64, intranet 2001:db8:7::/64). The load generator is this program's hidden
"scale loadgen" subcommand, a separate process so that its CPU and memory are measured
apart from the server's. Three phases:

  idle       --sessions held at once: server RSS per session, server CPU over --time,
             the load generator's RSS and CPU, sessions_active from the control socket
  handshake  --handshakes opened with --concurrency, each closed after its RA: rate, p50/p99
  trickle    --trickle-sessions each send --rate echo requests/s for --time to the intranet
             host: loss, RTT p50/p99, and the added latency against the same pings sent
             at the same time without the tunnel

It prints a markdown table (each target met or not), writes scale.json, scale.md and the
logs to --results/<UTC timestamp>/, and with --doc replaces the text between
<!-- scale:begin --> and <!-- scale:end --> in that file. The exit status is 1 when
sessions fail to come up or are dropped, or packets are lost; targets not met are only
reported. Before the handshake and trickle phases it waits (--quiet-wait) for the machine
to be quiet, since other work there distorts rates, latency and even loss.

Run as root. A lock (/run/iphttps-bench-scale.lock) keeps runs apart; leftover ipbs-*
namespaces of an aborted run are removed first; every process it starts is killed and
every namespace removed at the end, on error and on SIGINT/SIGTERM.`,
		Example: `  iphttps-bench scale --smoke --iphttps ./iphttps
  iphttps-bench scale --iphttps ./iphttps --doc docs/performance.md
  iphttps-bench scale --iphttps ./iphttps --sessions 20000 --handshakes 5000 --time 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: %w", logLevel, err)
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			o.Out = cmd.OutOrStdout()
			if smoke {
				f := cmd.Flags()
				setUnlessChanged := func(name string, p *int, v int) {
					if !f.Changed(name) {
						*p = v
					}
				}
				setUnlessChanged("sessions", &o.Sessions, smokeSessions)
				setUnlessChanged("handshakes", &o.Handshakes, smokeHandshakes)
				setUnlessChanged("trickle-sessions", &o.TrickleSessions, smokeTrickle)
				if !f.Changed("time") {
					o.Time = smokeTime
				}
				o.Smoke = true
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this program for the load generator: %w", err)
			}
			o.Loadgen = []string{self, "scale", "loadgen"}
			res, err := scale.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if n := len(res.Failures); n > 0 {
				return fmt.Errorf("%d failure(s): %v", n, errors.Join(stringErrors(res.Failures)...))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.IPHTTPS, "iphttps", "", "the iphttps binary to benchmark (required)")
	f.IntVar(&o.Sessions, "sessions", o.Sessions, "idle sessions held at once")
	f.IntVar(&o.Handshakes, "handshakes", o.Handshakes, "sessions opened in the handshake-rate phase")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "handshakes in progress at once (all phases)")
	f.StringVar(&o.KeyExchange, "key-exchange", loadgen.KeyExchangeWindows, "TLS key exchange the sessions offer: windows (X25519, P-256, as the Windows IP-HTTPS client) or go (Go's default, X25519MLKEM768 first, as a Linux iphttps client)")
	f.IntVar(&o.TrickleSessions, "trickle-sessions", o.TrickleSessions, "sessions sending echo requests in the trickle phase")
	f.Float64Var(&o.TrickleRate, "rate", o.TrickleRate, "echo requests per second per trickle session")
	f.DurationVar(&o.Time, "time", o.Time, "idle CPU measurement window and trickle duration")
	f.IntVar(&o.Sources, "sources", o.Sources, "client source addresses (198.51.100.2 upwards) the sessions connect from")
	f.StringVar(&o.ResultsDir, "results", o.ResultsDir, "directory for the per-run result directories")
	f.StringVar(&o.Doc, "doc", "", "markdown file whose scale section (between the scale markers) gets the results")
	f.BoolVar(&smoke, "smoke", false, fmt.Sprintf("small run: %d sessions, %d handshakes, %d trickle sessions for %v (explicit flags win)",
		smokeSessions, smokeHandshakes, smokeTrickle, smokeTime))
	f.DurationVar(&o.MaxTime, "max-time", o.MaxTime, "bound of the whole run")
	f.DurationVar(&o.QuietWait, "quiet-wait", o.QuietWait, "before the handshake and trickle phases, wait at most this long for other work on the machine to calm down (0: don't)")
	f.StringVar(&logLevel, "log-level", "info", "progress log level on standard error: debug, info, warn or error")
	cmd.MarkFlagRequired("iphttps")
	cmd.AddCommand(newLoadgenCmd())
	return cmd
}

// stringErrors turns messages into errors for errors.Join.
func stringErrors(msgs []string) []error {
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		errs[i] = errors.New(m)
	}
	return errs
}
