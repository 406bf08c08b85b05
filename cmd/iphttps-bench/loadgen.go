package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/bench/procstat"
	"github.com/iphttps/iphttps/internal/loadgen"
	"github.com/iphttps/iphttps/internal/pki"
)

// loadgenFlags are the settings of `iphttps-bench loadgen`.
type loadgenFlags struct {
	server, ca, host, path string
	keyExchange            string
	sources                []string
	mode                   string
	sessions, concurrency  int
	timeout, hold          time.Duration
	stdinStop              bool
	rate                   float64
	duration, grace        time.Duration
	target                 string
	payload                int
	baselineTarget         string
	baselineRate           float64
	progress, maxTime      time.Duration
	logLevel               string
	cpuProfile             string
}

// newLoadgenCmd is the hidden subcommand the scale benchmark runs in the
// client namespace, so that its CPU and memory are measured apart from the
// server's.
func newLoadgenCmd() *cobra.Command {
	var f loadgenFlags
	cmd := &cobra.Command{
		Use:    "loadgen",
		Short:  "Run many IP-HTTPS client sessions in one process (used by scale)",
		Hidden: true,
		Long: `loadgen opens many IP-HTTPS sessions to one server from this process, without a TUN
device: TCP, TLS (trusting --ca), the POST, the 200 head, a Router Solicitation and its
Router Advertisement, an address from the prefix registered by duplicate address detection.

  --mode idle       hold the sessions, reading and discarding, for --hold (or until standard
                    input closes, with --stdin-stop)
  --mode handshake  open --sessions as fast as --concurrency allows, closing each when done
  --mode trickle    each session sends --rate echo requests per second to --target for
                    --duration and matches the replies; --baseline-target adds the same trickle
                    from a raw ICMPv6 socket outside the tunnel (needs CAP_NET_RAW)

It writes JSON lines on standard output: {"event":"progress"...} while sessions open,
{"event":"up"...} when all were tried, and {"event":"done","report":{...}} at the end.
Logs go to standard error. The whole run is bounded by --max-time.`,
		Example: `  iphttps-bench scale loadgen --server 198.51.100.1:443 --ca srv.pem --mode handshake --sessions 3000 --concurrency 64
  iphttps-bench scale loadgen --server 198.51.100.1:443 --ca srv.pem --mode trickle --sessions 1000 \
      --rate 10 --duration 10s --target 2001:db8:7::2 --baseline-target 2001:db8:7::2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLoadgen(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "server address, IP:port (required)")
	fl.StringVar(&f.ca, "ca", "", "PEM file of the CA (or self-signed certificate) the server's certificate must chain to (required)")
	fl.StringVar(&f.host, "host", "", "Host header and TLS server name (default: the server's IP)")
	fl.StringVar(&f.path, "path", loadgen.DefaultPath, "request path")
	fl.StringVar(&f.keyExchange, "key-exchange", loadgen.KeyExchangeWindows, "TLS key exchange offered: windows (X25519, P-256, as the Windows IP-HTTPS client) or go (Go's default, X25519MLKEM768 first)")
	fl.StringSliceVar(&f.sources, "source", nil, "local address to connect from (repeatable; sessions use them in turn)")
	fl.StringVar(&f.mode, "mode", string(loadgen.ModeIdle), "idle, handshake or trickle")
	fl.IntVar(&f.sessions, "sessions", 100, "number of sessions")
	fl.IntVar(&f.concurrency, "concurrency", 64, "handshakes in progress at once")
	fl.DurationVar(&f.timeout, "timeout", loadgen.DefaultTimeout, "bound of one session's handshake (TCP, TLS, POST, 200, RS/RA)")
	fl.DurationVar(&f.hold, "hold", time.Minute, "idle: hold the sessions this long once all are up")
	fl.BoolVar(&f.stdinStop, "stdin-stop", false, "idle: end the hold early when standard input closes")
	fl.Float64Var(&f.rate, "rate", 10, "trickle: echo requests per second per session")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "trickle: how long each session sends")
	fl.DurationVar(&f.grace, "grace", loadgen.DefaultGrace, "trickle: wait for replies this long after the last request")
	fl.StringVar(&f.target, "target", "", "trickle: IPv6 address the echo requests go to (required for trickle)")
	fl.IntVar(&f.payload, "payload", loadgen.DefaultEchoPayload, "trickle: echo payload bytes")
	fl.StringVar(&f.baselineTarget, "baseline-target", "", "trickle: also ping this IPv6 address from a raw socket, outside the tunnel")
	fl.Float64Var(&f.baselineRate, "baseline-rate", 10, "trickle: baseline echo requests per second")
	fl.DurationVar(&f.progress, "progress", 500*time.Millisecond, "interval of progress events while sessions open (0: none)")
	fl.DurationVar(&f.maxTime, "max-time", 10*time.Minute, "hard bound of the whole run; the process exits soon after")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level on standard error: debug, info, warn or error")
	fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile of the run to this file (go tool pprof)")
	cmd.MarkFlagRequired("server")
	cmd.MarkFlagRequired("ca")
	return cmd
}

func runLoadgen(ctx context.Context, f loadgenFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", f.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	d, o, err := loadgenSetup(f)
	if err != nil {
		return err
	}
	if f.maxTime <= 0 {
		return errors.New("--max-time must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, f.maxTime)
	defer cancel()
	// Should closing the sessions hang, the process still ends.
	kill := time.AfterFunc(f.maxTime+15*time.Second, func() {
		log.Error("run exceeded --max-time; exiting", "max_time", f.maxTime)
		os.Exit(3)
	})
	defer kill.Stop()
	if f.stdinStop {
		stop := make(chan struct{})
		go func() {
			io.Copy(io.Discard, os.Stdin)
			close(stop)
		}()
		o.Stop = stop
	}

	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	enc := json.NewEncoder(os.Stdout)
	var werr error
	emit := func(e loadgen.Event) {
		if cpu, err := procstat.CPUTime(os.Getpid()); err == nil {
			e.CPUSeconds = cpu.Seconds()
		}
		if rss, err := procstat.RSS(os.Getpid()); err == nil {
			e.RSSBytes = rss
		}
		switch e.Event {
		case "progress":
			log.Debug("opening sessions", "opened", e.Opened, "failed", e.Failed)
		default:
			log.Info(e.Event, "opened", e.Opened, "failed", e.Failed)
		}
		if err := enc.Encode(e); err != nil && werr == nil {
			werr = fmt.Errorf("writing the report: %w", err)
		}
	}
	log.Info("starting", "mode", o.Mode, "sessions", o.Sessions, "concurrency", o.Concurrency, "server", f.server)
	if _, err := loadgen.Run(ctx, d, o, emit); err != nil {
		return err
	}
	return werr
}

// loadgenSetup turns the flags into a dialer and run options.
func loadgenSetup(f loadgenFlags) (*loadgen.Dialer, loadgen.RunOptions, error) {
	var o loadgen.RunOptions
	server, err := netip.ParseAddrPort(f.server)
	if err != nil {
		return nil, o, fmt.Errorf("--server %q: want IP:port: %w", f.server, err)
	}
	roots, err := pki.LoadPool(f.ca)
	if err != nil {
		return nil, o, fmt.Errorf("--ca: %w", err)
	}
	cfg := loadgen.Config{Server: server, Host: f.host, Path: f.path, Roots: roots, Timeout: f.timeout, KeyExchange: f.keyExchange}
	for _, s := range f.sources {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, o, fmt.Errorf("--source %q: %w", s, err)
		}
		cfg.Sources = append(cfg.Sources, a)
	}
	d, err := loadgen.NewDialer(cfg)
	if err != nil {
		return nil, o, err
	}
	mode, err := loadgen.ParseMode(f.mode)
	if err != nil {
		return nil, o, err
	}
	o = loadgen.RunOptions{Mode: mode, Sessions: f.sessions, Concurrency: f.concurrency, Hold: f.hold, Progress: f.progress}
	if mode != loadgen.ModeTrickle {
		return d, o, nil
	}
	if o.Echo, err = echoOptions("--target", f.target, f.rate, f.duration, f.payload, f.grace); err != nil {
		return nil, o, err
	}
	if f.baselineTarget != "" {
		b, err := echoOptions("--baseline-target", f.baselineTarget, f.baselineRate, f.duration, f.payload, f.grace)
		if err != nil {
			return nil, o, err
		}
		o.Baseline = &b
	}
	return d, o, nil
}

// echoOptions makes a trickle of rate requests per second for duration.
func echoOptions(flag, target string, rate float64, duration time.Duration, payload int, grace time.Duration) (loadgen.EchoOptions, error) {
	a, err := netip.ParseAddr(target)
	if err != nil {
		return loadgen.EchoOptions{}, fmt.Errorf("%s %q: want an IPv6 address: %w", flag, target, err)
	}
	if rate <= 0 || rate > 1000 {
		return loadgen.EchoOptions{}, fmt.Errorf("rate %v: want more than 0 and at most 1000 requests per second", rate)
	}
	count := int(rate*duration.Seconds() + 0.5)
	if count < 1 {
		return loadgen.EchoOptions{}, fmt.Errorf("rate %v for %v sends no request", rate, duration)
	}
	return loadgen.EchoOptions{
		Target:   a,
		Interval: time.Duration(float64(time.Second) / rate),
		Count:    count,
		Payload:  payload,
		Grace:    grace,
	}, nil
}
