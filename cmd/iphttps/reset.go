package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/cleanup"
	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/control"
)

func newResetCmd() *cobra.Command {
	var (
		o          cleanup.Options
		interfaces []string
		keepCache  bool
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove interfaces, sockets and state that iphttps left behind",
		Long: `Remove what iphttps left behind on this machine, and say what was removed and why:

  - network devices iphttps created (it marks them: "alias iphttps pid N" in ip link show)
    whose process is gone: the Linux form of the ghost IP-HTTPS adapter in Device Manager.
    Kernel TUN devices normally vanish with their process; a device that outlived it (kept by
    another holder of the file descriptor, or made persistent) is removed here.
  - control sockets in /run/iphttps (and $XDG_RUNTIME_DIR/iphttps) that nobody answers on, and
    the certificate a --self-signed server left there.
  - the client's proxy cache (the counterpart of clearing the IP Helper's ProxyMgr cache),
    unless --keep-proxy-cache.

It never touches what iphttps did not create: a device named like an iphttps interface (the
defaults iphttps0 and iphttps-srv, and --interface) but without the mark is reported with the
command to remove it yourself; anything of a running iphttps daemon is kept. Devices are looked
for in the current network namespace (use ip netns exec NS iphttps reset for another one).
IPv6 forwarding, which a server turns on, is left as it is. --dry-run only reports.`,
		Example: `  iphttps reset --dry-run
  iphttps reset --interface corp0
  ip netns exec blue iphttps reset --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Devices = []string{config.DefaultClient().Interface, config.DefaultServer().Interface}
			for _, n := range interfaces {
				if !slices.Contains(o.Devices, n) {
					o.Devices = append(o.Devices, n)
				}
			}
			if len(o.SocketDirs) == 0 {
				o.SocketDirs = control.Dirs()
			}
			if keepCache {
				o.ProxyCache = ""
			}
			found, err := cleanup.Run(cmd.Context(), o)
			if asJSON {
				e := json.NewEncoder(os.Stdout)
				e.SetIndent("", "  ")
				if jerr := e.Encode(struct {
					DryRun   bool              `json:"dry_run"`
					Findings []cleanup.Finding `json:"findings"`
				}{o.DryRun, found}); jerr != nil {
					return jerr
				}
			} else {
				printFindings(found)
			}
			if err != nil {
				return fmt.Errorf("reset: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.DryRun, "dry-run", "n", false, "only report what would be removed")
	f.StringSliceVar(&interfaces, "interface", nil, "also report on a device of this name (repeatable; the defaults iphttps0 and iphttps-srv always)")
	f.StringSliceVar(&o.SocketDirs, "socket-dir", nil, "directory of control sockets (default /run/iphttps, and $XDG_RUNTIME_DIR/iphttps for other users)")
	f.StringVar(&o.ProxyCache, "proxy-cache", config.DefaultProxyCache(), "the client's proxy cache file")
	f.BoolVar(&keepCache, "keep-proxy-cache", false, "leave the proxy cache alone")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printFindings(found []cleanup.Finding) {
	if len(found) == 0 {
		fmt.Println("Nothing left behind by iphttps: nothing to do.")
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tKIND\tNAME\tWHY")
	for _, f := range found {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Action, f.Kind, f.Name, f.Reason)
	}
	tw.Flush()
}
