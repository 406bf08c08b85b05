package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
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
(every socket in /run/iphttps and, for a user other than root, in $XDG_RUNTIME_DIR/iphttps;
or those given with --socket). The default layout is that of
"netsh interface httpstunnel show interfaces"; --json prints the same data for scripts.`,
	}
	show.PersistentFlags().StringSliceVar(&sockets, "socket", nil, "control socket(s) to read (default: all in /run/iphttps)")
	show.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	fetch := func(ctx context.Context) ([]status.Interface, error) {
		paths := sockets
		if len(paths) == 0 {
			var err error
			if paths, err = control.AllSockets(); err != nil {
				return nil, err
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("no iphttps daemon is running (no control socket in %s)", strings.Join(control.Dirs(), " or "))
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
	// sub makes a show subcommand that renders the fetched status as JSON
	// (jsonOf) or as text (text).
	sub := func(use, short string, jsonOf func([]status.Interface) any, text func([]status.Interface) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				ifs, err := fetch(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(jsonOf(ifs))
				}
				return text(ifs)
			},
		}
	}
	clientsOf := func(ifs []status.Interface) []status.Client {
		var cl []status.Client
		for _, s := range ifs {
			if s.Role == "server" {
				cl = append(cl, s.Clients...)
			}
		}
		return cl
	}
	show.AddCommand(
		sub("interfaces", "Role, URL, last error code and interface status of each daemon (netsh layout)",
			func(ifs []status.Interface) any { return ifs },
			func(ifs []status.Interface) error { return status.WriteNetsh(os.Stdout, ifs) }),
		sub("statistics", "Packet, byte and drop counters of each daemon",
			func(ifs []status.Interface) any {
				m := map[string]map[string]uint64{}
				for _, s := range ifs {
					m[s.Role+"/"+s.Device] = s.Counters
				}
				return m
			},
			func(ifs []status.Interface) error { return status.WriteCounters(os.Stdout, ifs) }),
		sub("teredo", "Teredo state of each daemon (layout of netsh interface teredo show state)",
			func(ifs []status.Interface) any { return status.TeredoJSON(ifs) },
			func(ifs []status.Interface) error { return status.WriteTeredo(os.Stdout, ifs) }),
		sub("6to4", "6to4 state of each daemon: Windows' 6to4 Service State, then the address, the relay and the tests that decide whether 6to4 carries traffic",
			func(ifs []status.Interface) any { return status.SixToFourJSON(ifs) },
			func(ifs []status.Interface) error { return status.WriteSixToFour(os.Stdout, ifs) }),
		sub("paths", "A client's methods (6to4, Teredo, IP-HTTPS): which one carries the traffic, each one's state, last code and status in its own interface's words, and when it was last tried",
			func(ifs []status.Interface) any {
				m := map[string][]status.Path{}
				for _, s := range ifs {
					if len(s.Paths) > 0 {
						m[s.Device] = s.Paths
					}
				}
				return m
			},
			func(ifs []status.Interface) error { return status.WritePaths(os.Stdout, ifs) }),
		sub("clients", "Clients connected to the local server(s)",
			func(ifs []status.Interface) any { return clientsOf(ifs) },
			func(ifs []status.Interface) error {
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TRANSPORT\tADDRESSES\tREMOTE\tSUBJECT\tSINCE\tBYTES IN\tBYTES OUT")
				for _, c := range clientsOf(ifs) {
					transport := c.Transport
					if transport == "" {
						transport = "ip-https"
					}
					fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%d\t%d\n", transport, c.Addresses, c.Remote, c.Subject, c.Since.Format(time.DateTime), c.BytesIn, c.BytesOut)
				}
				return tw.Flush()
			}),
	)
	return show
}
