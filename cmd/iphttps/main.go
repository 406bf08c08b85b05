// Command iphttps is an IP-HTTPS (Microsoft [MS-IPHTTPS]) server and client
// for Linux: IPv6 carried in an HTTPS POST, as DirectAccess clients use it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, the next one ends the process at once.
	context.AfterFunc(ctx, stop)
	root := newRootCmd()
	var prof profiler
	prof.addFlags(root)
	err := root.ExecuteContext(ctx)
	prof.stop()
	if err != nil {
		// Errors that map to a Windows code print it: "... (0x2740)".
		fmt.Fprintf(os.Stderr, "iphttps: %v\n", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "iphttps",
		Short: "IP-HTTPS server and client: IPv6 over HTTPS, compatible with Windows DirectAccess",
		Long: `iphttps implements Microsoft's IP-HTTPS protocol ([MS-IPHTTPS]) on Linux: IPv6 packets
carried in one endless HTTPS POST, so IPv6 reaches networks that let only HTTPS out.

  iphttps server   run an IP-HTTPS server (the router of the IP-HTTPS link)
  iphttps client   connect to an IP-HTTPS server and bring up a tunnel interface
  iphttps show     show the state of the daemons running on this machine
  iphttps proxy    show or reset the proxy settings and cache of the client
  iphttps lab      build a whole deployment in network namespaces and exercise it

Status and errors use the strings and codes Windows prints (netsh interface
httpstunnel show interfaces), so Windows troubleshooting guides apply.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(newServerCmd(), newClientCmd(), newShowCmd(), newProxyCmd(), newLabCmd())
	root.AddCommand(newErrcodeCmd(), newResetCmd())
	root.AddCommand(newDiagnoseCmd())
	return root
}
