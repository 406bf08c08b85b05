// Command iphttps-bench measures iphttps against its ceilings and a peer VPN,
// in network namespaces on this machine: tunnel throughput, latency and CPU
// (throughput), and many sessions on one server (scale). Run it as root,
// through bench/run, which installs what it needs.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:   "iphttps-bench",
		Short: "Benchmarks of iphttps: throughput against its ceilings and ocserv, and scale",
		Long: `iphttps-bench builds network namespaces joined by a veth pair on this machine and
measures iphttps there. Everything it starts lives in namespaces it creates and
removes; traffic goes only to documentation addresses inside them.

  iphttps-bench throughput   plain TCP and TLS ceilings, iphttps and ocserv (iperf3, ping, CPU)
  iphttps-bench scale        many sessions on one server: memory, CPU, handshake rate, loss`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newThroughputCmd(), newScaleCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "iphttps-bench: %v\n", err)
		os.Exit(1)
	}
}
