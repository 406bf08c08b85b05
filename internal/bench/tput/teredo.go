package tput

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/bench/netbench"
)

// The Teredo sections: the same iperf3 and ping set through iphttps'
// Teredo client and its server+relay, and through Miredo's client, server
// and relay (the peer to beat), on the benchmark's veth. The client has a
// public address there (no NAT), so both qualify with "no NAT" and the
// data goes client <-> relay directly; the target is an address of the
// server namespace that only the tunnel reaches.
const (
	teredoPrimary   = "192.0.2.10" // Teredo server, primary (iphttps or Miredo)
	teredoSecondary = "192.0.2.11"
	miredoRelayAddr = "192.0.2.12" // Miredo's relay (RelayType cone)
	miredoRelayPort = "3545"
	teredoTarget    = "2001:db8:7::1" // on the server namespace's loopback
	teredoTargetNet = "2001:db8:7::/64"
	miredoCliDev    = "ipbt-mt0" // Miredo's TUN devices
	miredoRelayDev  = "ipbt-mr0"
)

// teredoAddresses gives the server namespace the Teredo addresses and the
// target (idempotent: ip addr replace).
func (b *bench) teredoAddresses(ctx context.Context) error {
	for _, a := range []string{teredoPrimary, teredoSecondary, miredoRelayAddr} {
		if _, err := netbench.Output(ctx, NSSrv, 5*time.Second, "ip", "addr", "replace", a+"/24", "dev", DevSrv); err != nil {
			return err
		}
	}
	_, err := netbench.Output(ctx, NSSrv, 5*time.Second, "ip", "-6", "addr", "replace", teredoTarget+"/128", "dev", "lo")
	return err
}

// runTeredo measures iphttps' Teredo: `iphttps server --teredo` (server and
// relay in one process) and `iphttps client --teredo-server`.
func (b *bench) runTeredo(ctx context.Context, run int) {
	b.runRelayed(ctx, run, SecTeredo, "iphttps Teredo",
		[]string{"--teredo", teredoPrimary, "--teredo-lab"},
		[]string{"--teredo-server", teredoPrimary, "--teredo-lab"})
}

// runSixToFour measures iphttps' 6to4: `iphttps server --6to4` on the
// server's veth address and `iphttps client --6to4-relay` towards it.
func (b *bench) runSixToFour(ctx context.Context, run int) {
	host := b.pair.Srv4.Addr().String()
	b.runRelayed(ctx, run, SecSixToFour, "iphttps 6to4",
		[]string{"--6to4", host, "--6to4-lab"},
		[]string{"--6to4-relay", host, "--6to4-lab"})
}

// runRelayed measures one of iphttps' relayed transports: the IP-HTTPS
// server with srvArgs (its relay on), a client with cliArgs, the tests to
// an address of the server namespace that only the tunnel reaches.
func (b *bench) runRelayed(ctx context.Context, run int, sec, name string, srvArgs, cliArgs []string) {
	sess := Session{Run: run, Section: sec}
	defer func() { b.res.Sessions = append(b.res.Sessions, sess) }()
	fail := b.sessionFail(&sess, name)
	if err := b.teredoAddresses(ctx); err != nil {
		fail(err)
		return
	}
	srvSock := filepath.Join(b.work, sec+"-srv.sock")
	cliSock := filepath.Join(b.work, sec+"-cli.sock")
	for _, f := range []string{srvSock, cliSock} {
		_ = os.Remove(f)
	}
	life := b.sectionLifetime()
	srvLog := filepath.Join(b.logs, fmt.Sprintf("run%d-%s-server.log", run, sec))
	cliLog := filepath.Join(b.logs, fmt.Sprintf("run%d-%s-client.log", run, sec))
	host := b.pair.Srv4.Addr().String()
	srv, err := netbench.Start(ctx, name+" server", netbench.Spec{
		NS: NSSrv, Lifetime: life, Log: srvLog,
		Argv: append([]string{b.opts.IPHTTPS, "server", "--listen", host + ":443", "--prefix", iphttpsPrefix,
			"--route", teredoTargetNet, "--self-signed", host,
			"--control-socket", srvSock, "--log-level", "warn"}, srvArgs...),
	})
	if err != nil {
		fail(err)
		return
	}
	defer stopLogged(b, srv)
	if err := waitFor(ctx, name+" server ready", 15*time.Second, func() bool { return exists(srvSock) }, srv); err != nil {
		fail(err, srvLog)
		return
	}
	start := time.Now()
	cli, err := netbench.Start(ctx, name+" client", netbench.Spec{
		NS: NSCli, Lifetime: life, Log: cliLog,
		Argv: append([]string{b.opts.IPHTTPS, "client", "--route", teredoTargetNet,
			"--control-socket", cliSock, "--log-level", "warn"}, cliArgs...),
	})
	if err != nil {
		fail(err)
		return
	}
	defer stopLogged(b, cli)
	if err := waitFor(ctx, "ping through "+name+" to "+teredoTarget, 30*time.Second, func() bool {
		return answers(ctx, teredoTarget)
	}, srv, cli); err != nil {
		fail(err, srvLog, cliLog)
		return
	}
	sess.SetupSeconds = time.Since(start).Seconds()
	b.log.Info(name+" up", "run", run, "after", time.Since(start).Round(time.Millisecond))
	if mtu, err := linkMTU(ctx, NSCli, iphttpsCliDev); err == nil {
		b.res.Machine.MTU[sec] = mtu
	}
	daemons := []daemon{{"server", srv}, {"client", cli}}
	b.measureTunnel(ctx, run, sec, teredoTarget, daemons, b.tunnelCounters(srvSock, cliSock, false), &sess)
	if !daemonsRunning(daemons) {
		fail(fmt.Errorf("a daemon exited during the tests"), srvLog, cliLog)
	}
}

// runMiredo measures Miredo 1.2: miredo-server, a Miredo relay (RelayType
// cone) and a Miredo client, as a DirectAccess-like path needs them (Miredo
// cannot be server and relay in one process).
func (b *bench) runMiredo(ctx context.Context, run int) {
	sess := Session{Run: run, Section: SecMiredo}
	defer func() { b.res.Sessions = append(b.res.Sessions, sess) }()
	fail := b.sessionFail(&sess, "Miredo")
	if err := b.teredoAddresses(ctx); err != nil {
		fail(err)
		return
	}
	conf := func(name, body string) (string, error) {
		p := filepath.Join(b.work, name)
		return p, os.WriteFile(p, []byte(body), 0o644)
	}
	srvConf, err := conf("miredo-server.conf", "ServerBindAddress "+teredoPrimary+"\n")
	if err == nil {
		var relayConf, cliConf string
		relayConf, err = conf("miredo-relay.conf", strings.Join([]string{"RelayType cone", "InterfaceName " + miredoRelayDev,
			"BindAddress " + miredoRelayAddr, "BindPort " + miredoRelayPort}, "\n")+"\n")
		if err == nil {
			cliConf, err = conf("miredo-client.conf", strings.Join([]string{"RelayType client",
				"ServerAddress " + teredoPrimary, "InterfaceName " + miredoCliDev}, "\n")+"\n")
		}
		if err == nil {
			b.miredoSession(ctx, run, &sess, fail, srvConf, relayConf, cliConf)
			return
		}
	}
	fail(err)
}

func (b *bench) miredoSession(ctx context.Context, run int, sess *Session, fail func(error, ...string), srvConf, relayConf, cliConf string) {
	life := b.sectionLifetime()
	logOf := func(what string) string { return filepath.Join(b.logs, fmt.Sprintf("run%d-%s.log", run, what)) }
	pid := func(what string) string { return filepath.Join(b.work, what+".pid") }
	start := func(name, ns string, argv ...string) (*netbench.Proc, error) {
		return netbench.Start(ctx, name, netbench.Spec{NS: ns, Lifetime: life, Log: logOf(name), Argv: argv})
	}
	// Stop Miredo by SIGTERM to its top-level process: it stops its
	// privileged helper itself.
	stop := func(p *netbench.Proc) {
		if err := p.StopTree(10 * time.Second); err != nil {
			b.log.Error("stop", "process", p.Name, "err", err)
		}
	}
	srv, err := start("miredo-server", NSSrv, "miredo-server", "-f", "-c", srvConf, "-p", pid("miredo-server"), "-u", "miredo-server")
	if err != nil {
		fail(err)
		return
	}
	defer stop(srv)
	relay, err := start("miredo-relay", NSSrv, "miredo", "-f", "-c", relayConf, "-p", pid("miredo-relay"), "-u", "miredo")
	if err != nil {
		fail(err)
		return
	}
	defer stop(relay)
	if err := waitFor(ctx, "Miredo relay routing 2001::/32", 15*time.Second, func() bool {
		out, err := netbench.Output(ctx, NSSrv, 5*time.Second, "ip", "-6", "route", "show", "dev", miredoRelayDev)
		return err == nil && strings.Contains(string(out), "2001::/32")
	}, srv, relay); err != nil {
		fail(err, logOf("miredo-server"), logOf("miredo-relay"))
		return
	}
	began := time.Now()
	cli, err := start("miredo-client", NSCli, "miredo", "-f", "-c", cliConf, "-p", pid("miredo-client"), "-u", "miredo")
	if err != nil {
		fail(err)
		return
	}
	defer stop(cli)
	if err := waitFor(ctx, "ping through Miredo to "+teredoTarget, 30*time.Second, func() bool {
		return answers(ctx, teredoTarget)
	}, srv, relay, cli); err != nil {
		fail(err, logOf("miredo-server"), logOf("miredo-relay"), logOf("miredo-client"))
		return
	}
	sess.SetupSeconds = time.Since(began).Seconds()
	b.log.Info("Miredo up", "run", run, "after", time.Since(began).Round(time.Millisecond))
	if mtu, err := linkMTU(ctx, NSCli, miredoCliDev); err == nil {
		b.res.Machine.MTU[SecMiredo] = mtu
	}
	counters := func(ctx context.Context) map[string]uint64 {
		out := map[string]uint64{}
		if err := devCounters(ctx, out, "client dev", NSCli, miredoCliDev); err != nil {
			b.log.Warn("Miredo client device statistics", "err", err)
		}
		if err := devCounters(ctx, out, "relay dev", NSSrv, miredoRelayDev); err != nil {
			b.log.Warn("Miredo relay device statistics", "err", err)
		}
		return out
	}
	daemons := []daemon{{"server", srv}, {"relay", relay}, {"client", cli}}
	b.measureTunnel(ctx, run, SecMiredo, teredoTarget, daemons, counters, sess)
	if !daemonsRunning(daemons) {
		fail(fmt.Errorf("a daemon exited during the tests"), logOf("miredo-client"), logOf("miredo-relay"))
	}
}
