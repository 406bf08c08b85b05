package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/status"
)

func newShowCmd() *cobra.Command {
	var (
		sockets []string
		asJSON  bool
	)
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the state of the iphttps daemons on this machine",
		Long: `Show the state of the running iphttps daemons, read from their control sockets
(every socket in /run/iphttps, or those given with --socket). The default layout is that of
"netsh interface httpstunnel show interfaces"; --json prints the same data for scripts.`,
	}
	show.PersistentFlags().StringSliceVar(&sockets, "socket", nil, "control socket(s) to read (default: all in /run/iphttps)")
	show.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	fetch := func(ctx context.Context) ([]status.Interface, error) {
		paths := sockets
		if len(paths) == 0 {
			var err error
			if paths, err = control.Sockets(control.DefaultDir); err != nil {
				return nil, err
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("no iphttps daemon is running (no control socket in %s)", control.DefaultDir)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var out []status.Interface
		for _, p := range paths {
			s, err := control.Fetch(ctx, p)
			if err != nil {
				fmt.Fprintf(os.Stderr, "iphttps: %v\n", err)
				continue
			}
			out = append(out, s)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no daemon answered")
		}
		return out, nil
	}
	printJSON := func(v any) error {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		return e.Encode(v)
	}
	show.AddCommand(&cobra.Command{
		Use:   "interfaces",
		Short: "Role, URL, last error code and interface status of each daemon (netsh layout)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ifs, err := fetch(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(ifs)
			}
			return status.WriteNetsh(os.Stdout, ifs)
		},
	}, &cobra.Command{
		Use:   "statistics",
		Short: "Packet, byte and drop counters of each daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ifs, err := fetch(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				m := map[string]map[string]uint64{}
				for _, s := range ifs {
					m[s.Role+"/"+s.Device] = s.Counters
				}
				return printJSON(m)
			}
			return status.WriteCounters(os.Stdout, ifs)
		},
	}, &cobra.Command{
		Use:   "clients",
		Short: "Clients connected to the local server(s)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ifs, err := fetch(cmd.Context())
			if err != nil {
				return err
			}
			var cl []status.Client
			for _, s := range ifs {
				if s.Role == "server" {
					cl = append(cl, s.Clients...)
				}
			}
			if asJSON {
				return printJSON(cl)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESSES\tREMOTE\tSUBJECT\tSINCE\tBYTES IN\tBYTES OUT")
			for _, c := range cl {
				fmt.Fprintf(tw, "%v\t%s\t%s\t%s\t%d\t%d\n", c.Addresses, c.Remote, c.Subject, c.Since.Format(time.DateTime), c.BytesIn, c.BytesOut)
			}
			return tw.Flush()
		},
	})
	return show
}
