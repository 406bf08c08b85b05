package tput

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/bench/iperf"
	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/bench/procstat"
	"github.com/iphttps/iphttps/internal/bench/tlspump"
	"github.com/iphttps/iphttps/internal/lab"
)

// sectionLifetime bounds a section's daemons: every test of the section,
// each with its quiet wait, its timeout and one retry, and a margin.
func (b *bench) sectionLifetime() time.Duration {
	perTest := b.opts.QuietWait + b.opts.Time + 45*time.Second
	return 2*5*perTest + 2*time.Minute
}

// startIperfServer starts the iperf3 server in the server namespace, for
// the whole benchmark.
func (b *bench) startIperfServer(ctx context.Context) error {
	life := time.Duration(b.opts.Runs*len(AllSections))*b.sectionLifetime() + 5*time.Minute
	p, err := netbench.Start(ctx, "iperf3 server", netbench.Spec{
		NS: NSSrv, Argv: iperf.ServerArgs(), Lifetime: life,
		Log: filepath.Join(b.logs, "iperf3-server.log"),
	})
	if err != nil {
		return err
	}
	b.iperf = p
	return waitFor(ctx, "iperf3 server listening", 10*time.Second, func() bool { return listening(ctx, NSSrv, iperf.Port) }, p)
}

func (b *bench) restartIperfServer(ctx context.Context) error {
	if b.iperf != nil {
		if err := b.iperf.Stop(5 * time.Second); err != nil {
			return err
		}
	}
	return b.startIperfServer(ctx)
}

// runVeth measures plain TCP over the veth: the throughput ceiling and the
// baseline round trip.
func (b *bench) runVeth(ctx context.Context, run int) {
	target := b.pair.Srv6.Addr().String()
	b.add(b.idlePing(ctx, run, SecVeth, target))
	for _, t := range b.iperfTests() {
		if ctx.Err() != nil {
			return
		}
		b.add(b.iperfTest(ctx, run, SecVeth, target, t.streams, t.dir, nil, nil))
	}
}

// runTLS measures one TLS 1.3 stream: tlspump (this binary, re-executed) as
// the receiver in the server namespace and the sender in the client's.
func (b *bench) runTLS(ctx context.Context, run int) Measurement {
	m := Measurement{Test: stream(SecTLS, 1, "fwd"), Run: run}
	addr := net.JoinHostPort(b.pair.Srv4.Addr().String(), strconv.Itoa(tlsPort))
	life := b.opts.Time + time.Minute
	m.Quiet = b.waitQuiet(ctx)

	var recvOut, sendOut bytes.Buffer
	recv, err := netbench.Start(ctx, "TLS receiver", netbench.Spec{
		NS: NSSrv, Lifetime: life, Stdout: &recvOut,
		Log: filepath.Join(b.logs, fmt.Sprintf("run%d-tls-receiver.log", run)),
		Argv: []string{b.opts.Self, "throughput", "tlspump", "server", "--listen", addr,
			"--cert", b.cert.CertFile, "--key", b.cert.KeyFile, "--timeout", (b.opts.Time + 45*time.Second).String()},
	})
	if err != nil {
		m.Error = err.Error()
		return m
	}
	defer func() { _ = recv.Stop(2 * time.Second) }()
	if err := waitFor(ctx, "TLS receiver listening", 10*time.Second, func() bool { return listening(ctx, NSSrv, tlsPort) }, recv); err != nil {
		m.Error = err.Error()
		return m
	}
	mach0, _ := procstat.ReadMachine()
	m.Start = time.Now()
	send, err := netbench.Start(ctx, "TLS sender", netbench.Spec{
		NS: NSCli, Lifetime: life, Stdout: &sendOut,
		Log: filepath.Join(b.logs, fmt.Sprintf("run%d-tls-sender.log", run)),
		Argv: []string{b.opts.Self, "throughput", "tlspump", "client", "--connect", addr, "--ca", b.cert.CertFile,
			"--server-name", b.pair.Srv4.Addr().String(), "--time", b.opts.Time.String(),
			"--chunk", strconv.Itoa(tlspump.DefaultChunk)},
	})
	if err != nil {
		m.Error = err.Error()
		return m
	}
	defer func() { _ = send.Stop(2 * time.Second) }()
	wctx, cancel := context.WithTimeout(ctx, b.opts.Time+30*time.Second)
	defer cancel()
	sendErr := send.Wait(wctx)
	recvErr := recv.Wait(wctx)
	mach1, _ := procstat.ReadMachine()
	m.Seconds = time.Since(m.Start).Seconds()
	m.MachineBusy = procstat.BusyPercent(mach0, mach1, runtime.NumCPU())
	if sendErr != nil || recvErr != nil {
		m.Error = fmt.Sprintf("TLS pump failed: sender: %v [%s]; receiver: %v [%s]",
			sendErr, logTail(filepath.Join(b.logs, fmt.Sprintf("run%d-tls-sender.log", run))),
			recvErr, logTail(filepath.Join(b.logs, fmt.Sprintf("run%d-tls-receiver.log", run))))
		return m
	}
	var rr, sr tlspump.Report
	if err := json.Unmarshal(recvOut.Bytes(), &rr); err != nil {
		m.Error = fmt.Sprintf("TLS receiver report: %v", err)
		return m
	}
	if err := json.Unmarshal(sendOut.Bytes(), &sr); err != nil {
		m.Error = fmt.Sprintf("TLS sender report: %v", err)
		return m
	}
	m.TLS, m.TLSSender = &rr, &sr
	m.Mbps = rr.Mbps
	m.CPU = map[string]float64{"server": rr.CPUPct, "client": sr.CPUPct}
	b.res.Machine.Suites[SecTLS] = rr.Version + " " + rr.Suite
	b.res.Machine.ServerKeys[SecTLS] = sr.ServerKey
	if rr.Mbps < minMbps {
		m.Error = fmt.Sprintf("no traffic: %.3f Mbit/s", rr.Mbps)
	}
	return m
}

// runIPHTTPS starts the iphttps server and client, waits for the tunnel
// and measures it.
func (b *bench) runIPHTTPS(ctx context.Context, run int) {
	sess := Session{Run: run, Section: SecIPHTTPS}
	defer func() { b.res.Sessions = append(b.res.Sessions, sess) }()
	srvSock := filepath.Join(b.work, "srv.sock")
	cliSock := filepath.Join(b.work, "cli.sock")
	host := b.pair.Srv4.Addr().String()
	pemFile := filepath.Join(b.work, "self-signed-"+host+".pem")
	for _, f := range []string{srvSock, cliSock, pemFile} {
		_ = os.Remove(f)
	}
	life := b.sectionLifetime()
	srvLog := filepath.Join(b.logs, fmt.Sprintf("run%d-iphttps-server.log", run))
	cliLog := filepath.Join(b.logs, fmt.Sprintf("run%d-iphttps-client.log", run))
	fail := b.sessionFail(&sess, "iphttps")

	srv, err := netbench.Start(ctx, "iphttps server", netbench.Spec{
		NS: NSSrv, Lifetime: life, Log: srvLog,
		Argv: []string{b.opts.IPHTTPS, "server", "--listen", net.JoinHostPort(host, "443"),
			"--prefix", iphttpsPrefix, "--self-signed", host, "--control-socket", srvSock, "--log-level", "warn"},
	})
	if err != nil {
		fail(err)
		return
	}
	defer stopLogged(b, srv)
	if err := waitFor(ctx, "iphttps server ready", 15*time.Second, func() bool {
		return exists(srvSock) && exists(pemFile) && listening(ctx, NSSrv, 443)
	}, srv); err != nil {
		fail(err, srvLog)
		return
	}
	start := time.Now()
	cli, err := netbench.Start(ctx, "iphttps client", netbench.Spec{
		NS: NSCli, Lifetime: life, Log: cliLog,
		Argv: []string{b.opts.IPHTTPS, "client", "https://" + host + "/IPHTTPS", "--allow-ip-literal",
			"--ca", pemFile, "--control-socket", cliSock, "--proxy", "direct", "--proxy-cache", "", "--log-level", "warn"},
	})
	if err != nil {
		fail(err)
		return
	}
	defer stopLogged(b, cli)
	if err := waitFor(ctx, "ping through the iphttps tunnel to "+iphttpsHost, 30*time.Second, func() bool {
		return answers(ctx, iphttpsHost)
	}, srv, cli); err != nil {
		fail(err, srvLog, cliLog)
		return
	}
	sess.SetupSeconds = time.Since(start).Seconds()
	b.log.Info("iphttps tunnel up", "run", run, "after", time.Since(start).Round(time.Millisecond))
	b.describeIPHTTPS(ctx, pemFile, []string{srvSock, cliSock})

	daemons := []daemon{{"server", srv}, {"client", cli}}
	b.measureTunnel(ctx, run, SecIPHTTPS, iphttpsHost, daemons, b.tunnelCounters(srvSock, cliSock, true), &sess)
	if !daemonsRunning(daemons) {
		fail(fmt.Errorf("a daemon exited during the tests"), srvLog, cliLog)
	}
}

// tunnelCounters reads, for measureTunnel, the iphttps daemons' statistics
// and, with devices, their TUN devices' counters.
func (b *bench) tunnelCounters(srvSock, cliSock string, devices bool) func(context.Context) map[string]uint64 {
	return func(ctx context.Context) map[string]uint64 {
		out := map[string]uint64{}
		if ctx.Err() != nil {
			return out
		}
		if err := b.iphttpsCounters(ctx, out, srvSock, cliSock); err != nil {
			b.log.Warn("iphttps statistics", "err", err)
		}
		if !devices {
			return out
		}
		if err := devCounters(ctx, out, "client dev", NSCli, iphttpsCliDev); err != nil {
			b.log.Warn("client device statistics", "err", err)
		}
		if err := devCounters(ctx, out, "server dev", NSSrv, iphttpsSrvDev); err != nil {
			b.log.Warn("server device statistics", "err", err)
		}
		return out
	}
}

// sessionFail returns the function that records why a tunnel session
// failed, with the tails of the logs named.
func (b *bench) sessionFail(sess *Session, tunnel string) func(err error, logs ...string) {
	return func(err error, logs ...string) {
		sess.Error = err.Error()
		for _, l := range logs {
			sess.Error += " [" + filepath.Base(l) + ": " + logTail(l) + "]"
		}
		b.log.Error(tunnel+" did not come up", "run", sess.Run, "err", sess.Error)
	}
}

// measureTunnel runs the test set through a tunnel that is up: the idle
// ping, then every iperf3 test, and records the drop counters that moved.
func (b *bench) measureTunnel(ctx context.Context, run int, sec, target string, daemons []daemon, counters counterFunc, sess *Session) {
	before := counters(ctx)
	b.add(b.idlePing(ctx, run, sec, target))
	for _, t := range b.iperfTests() {
		if ctx.Err() != nil {
			break
		}
		b.add(b.iperfTest(ctx, run, sec, target, t.streams, t.dir, daemons, counters))
	}
	sess.Drops = moved(before, counters(ctx))
	sess.Up = true
}

// iphttpsCounters adds the daemons' drop and error counters, from
// `iphttps show statistics --json`, to out as "server drop_x" and
// "client drop_y".
func (b *bench) iphttpsCounters(ctx context.Context, out map[string]uint64, sockets ...string) error {
	args := []string{b.opts.IPHTTPS, "show", "statistics", "--json"}
	for _, s := range sockets {
		args = append(args, "--socket", s)
	}
	js, err := netbench.Output(ctx, "", 10*time.Second, args...)
	if err != nil {
		return err
	}
	return parseStatistics(js, out)
}

// parseStatistics reads `iphttps show statistics --json` (role/device to
// counters) into out, keeping the drop and error counters.
func parseStatistics(js []byte, out map[string]uint64) error {
	var stats map[string]map[string]uint64
	if err := json.Unmarshal(js, &stats); err != nil {
		return fmt.Errorf("iphttps statistics: %w", err)
	}
	for who, cs := range stats {
		role, _, _ := strings.Cut(who, "/")
		for k, v := range cs {
			if isDropCounter(k) {
				out[role+" "+k] = v
			}
		}
	}
	return nil
}

// describeIPHTTPS records, once, the server certificate's key type, the
// TLS version and suite a Go client negotiates with the server, the tunnel
// MTU and whether the daemons use TUN offload.
func (b *bench) describeIPHTTPS(ctx context.Context, pemFile string, sockets []string) {
	mach := &b.res.Machine
	if _, done := mach.Suites[SecIPHTTPS]; done {
		return
	}
	if kt, err := tlspump.CertFileKeyType(pemFile); err == nil {
		mach.ServerKeys[SecIPHTTPS] = kt + " (--self-signed)"
	} else {
		b.log.Warn("iphttps certificate", "err", err)
	}
	host := b.pair.Srv4.Addr().String()
	var probe tlspump.Report
	err := lab.Do(NSCli, func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		probe, err = tlspump.Probe(pctx, net.JoinHostPort(host, "443"), host)
		return err
	})
	if err != nil {
		b.log.Warn("TLS probe of the iphttps server", "err", err)
	} else {
		mach.Suites[SecIPHTTPS] = probe.Version + " " + probe.Suite + " (Go client probe)"
	}
	if mtu, err := linkMTU(ctx, NSCli, iphttpsCliDev); err == nil {
		mach.MTU[SecIPHTTPS] = mtu
	}
	args := []string{b.opts.IPHTTPS, "show", "interfaces", "--json"}
	for _, s := range sockets {
		args = append(args, "--socket", s)
	}
	if js, err := netbench.Output(ctx, "", 10*time.Second, args...); err == nil {
		var ifs []struct {
			Role    string `json:"role"`
			Offload bool   `json:"offload"`
		}
		if json.Unmarshal(js, &ifs) == nil {
			for _, i := range ifs {
				mach.Offload[i.Role] = i.Offload
			}
		}
	}
}

// runOcserv starts ocserv and openconnect (CSTP only), waits for the
// tunnel and measures it.
func (b *bench) runOcserv(ctx context.Context, run int) {
	sess := Session{Run: run, Section: SecOcserv}
	defer func() { b.res.Sessions = append(b.res.Sessions, sess) }()
	srvLog := filepath.Join(b.logs, fmt.Sprintf("run%d-ocserv.log", run))
	cliLog := filepath.Join(b.logs, fmt.Sprintf("run%d-openconnect.log", run))
	fail := b.sessionFail(&sess, "ocserv")
	if b.oc == nil {
		oc, err := writeOcservFiles(ctx, b.work, b.cert, b.pair.Srv4.Addr().String())
		if err != nil {
			fail(err)
			return
		}
		b.oc = oc
	}
	life := b.sectionLifetime()
	srv, err := netbench.Start(ctx, "ocserv", netbench.Spec{
		NS: NSSrv, Lifetime: life, Log: srvLog,
		Argv: []string{"ocserv", "--foreground", "--config", b.oc.Config},
	})
	if err != nil {
		fail(err)
		return
	}
	defer func() {
		if err := srv.StopTree(10 * time.Second); err != nil {
			b.log.Error("stop", "process", srv.Name, "err", err)
		}
	}()
	if err := waitFor(ctx, "ocserv listening", 15*time.Second, func() bool { return listening(ctx, NSSrv, ocservPort) }, srv); err != nil {
		fail(err, srvLog)
		return
	}
	start := time.Now()
	cli, err := netbench.Start(ctx, "openconnect", netbench.Spec{
		NS: NSCli, Lifetime: life, Log: cliLog, Stdin: strings.NewReader(b.oc.Password + "\n"),
		Argv: b.oc.clientArgs(b.pair.Srv4.Addr().String(), b.cert.Pin),
	})
	if err != nil {
		fail(err)
		return
	}
	defer stopLogged(b, cli)
	var srvDev, target string
	if err := waitFor(ctx, "ocserv tunnel address", 30*time.Second, func() bool {
		srvDev, target = ocservServerAddr(ctx)
		return target != "" && answers(ctx, target)
	}, srv, cli); err != nil {
		fail(err, srvLog, cliLog)
		return
	}
	sess.SetupSeconds = time.Since(start).Seconds()
	b.log.Info("ocserv tunnel up", "run", run, "after", time.Since(start).Round(time.Millisecond), "server", target)
	if _, done := b.res.Machine.Suites[SecOcserv]; !done {
		if log, err := os.ReadFile(cliLog); err == nil {
			if s := parseOpenconnectSuite(string(log)); s != "" {
				b.res.Machine.Suites[SecOcserv] = s
			}
		}
		b.res.Machine.ServerKeys[SecOcserv] = "ECDSA P-256 (benchmark certificate)"
		if mtu, err := linkMTU(ctx, NSCli, ocservCliDev); err == nil {
			b.res.Machine.MTU[SecOcserv] = mtu
		}
	}
	counters := func(ctx context.Context) map[string]uint64 {
		out := map[string]uint64{}
		if ctx.Err() != nil {
			return out
		}
		if err := devCounters(ctx, out, "client dev", NSCli, ocservCliDev); err != nil {
			b.log.Warn("openconnect device statistics", "err", err)
		}
		if err := devCounters(ctx, out, "server dev", NSSrv, srvDev); err != nil {
			b.log.Warn("ocserv device statistics", "err", err)
		}
		return out
	}
	daemons := []daemon{{"server", srv}, {"client", cli}}
	b.measureTunnel(ctx, run, SecOcserv, target, daemons, counters, &sess)
	if !daemonsRunning(daemons) {
		fail(fmt.Errorf("a daemon exited during the tests"), srvLog, cliLog)
	}
}

// stopLogged stops p (SIGTERM, 10 s grace) and logs a failure to.
func stopLogged(b *bench, p *netbench.Proc) {
	if err := p.Stop(10 * time.Second); err != nil {
		b.log.Error("stop", "process", p.Name, "err", err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
