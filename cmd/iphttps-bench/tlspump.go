package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/bench/tlspump"
)

// newTLSPumpCmd is the TLS stream ceiling's two ends, which the throughput
// benchmark runs inside its namespaces by re-executing its own binary
// (`ip netns exec NS iphttps-bench throughput tlspump server|client ...`).
// Each prints its report as one JSON object on stdout.
func newTLSPumpCmd() *cobra.Command {
	pump := &cobra.Command{
		Use:    "tlspump",
		Short:  "One TLS 1.3 stream, for the TLS ceiling (run by the benchmark itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
	}

	var listen, certFile, keyFile string
	var timeout time.Duration
	server := &cobra.Command{
		Use:   "server",
		Short: "Accept one TLS connection, read it to the end, print the goodput as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return fmt.Errorf("certificate: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			defer ln.Close()
			r, err := tlspump.Receive(ctx, ln, cert)
			if err != nil {
				return err
			}
			return json.NewEncoder(os.Stdout).Encode(r)
		},
	}
	server.Flags().StringVar(&listen, "listen", "", "host:port to listen on")
	server.Flags().StringVar(&certFile, "cert", "", "certificate (PEM)")
	server.Flags().StringVar(&keyFile, "key", "", "private key (PEM)")
	server.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")

	var connect, caFile, serverName string
	var dur time.Duration
	var chunk int
	client := &cobra.Command{
		Use:   "client",
		Short: "Connect, write large blocks for --time, print what was sent as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("CA: %w", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return errors.New("CA: no certificate in " + caFile)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), dur+30*time.Second)
			defer cancel()
			r, err := tlspump.Send(ctx, connect, serverName, roots, dur, chunk)
			if err != nil {
				return err
			}
			return json.NewEncoder(os.Stdout).Encode(r)
		},
	}
	client.Flags().StringVar(&connect, "connect", "", "host:port of the server")
	client.Flags().StringVar(&caFile, "ca", "", "certificate (PEM) to trust")
	client.Flags().StringVar(&serverName, "server-name", "", "name (or IP) the certificate must be valid for")
	client.Flags().DurationVar(&dur, "time", 10*time.Second, "how long to write")
	client.Flags().IntVar(&chunk, "chunk", tlspump.DefaultChunk, "size of each write, bytes")

	for _, c := range []*cobra.Command{server, client} {
		for _, name := range []string{"listen", "cert", "key", "connect", "ca"} {
			if c.Flags().Lookup(name) != nil {
				_ = c.MarkFlagRequired(name)
			}
		}
	}
	pump.AddCommand(server, client)
	return pump
}
