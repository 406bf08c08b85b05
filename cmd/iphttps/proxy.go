package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/config"
	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/proxy"
)

func newProxyCmd() *cobra.Command {
	var cachePath string
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Show or reset the proxy settings the IP-HTTPS client uses",
		Long: `The client reaches its server through an HTTP proxy when --proxy (or proxy in its
configuration) names one, or when HTTPS_PROXY/https_proxy is set and NO_PROXY/no_proxy does
not exempt the server. It remembers the proxy that last worked and tries it first.

  iphttps proxy show    what the environment says, what is cached, what running clients use
                        (the Linux form of "netsh winhttp show proxy")
  iphttps proxy reset   forget the cached proxy (of "netsh winhttp reset proxy" and clearing
                        the ProxyMgr cache)`,
	}
	cmd.PersistentFlags().StringVar(&cachePath, "proxy-cache", config.DefaultProxyCache(), "the client's proxy cache file")
	var confPath string
	var asJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the proxy environment, the cached proxy and the proxies in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type inUse struct {
				Socket string `json:"socket"`
				URL    string `json:"url"`
				Proxy  string `json:"proxy"`
			}
			var out struct {
				Configured  string            `json:"configured,omitempty"`
				PAC         string            `json:"pac,omitempty"`
				Environment map[string]string `json:"environment"`
				CacheFile   string            `json:"cache_file"`
				Cached      string            `json:"cached,omitempty"`
				CachedFor   string            `json:"cached_for,omitempty"`
				CachedAt    time.Time         `json:"cached_at,omitzero"`
				InUse       []inUse           `json:"in_use,omitempty"`
			}
			out.Environment = map[string]string{}
			for _, k := range []string{"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
				if v := os.Getenv(k); v != "" {
					out.Environment[k] = redact(v)
				}
			}
			if confPath != "" {
				c, err := config.Load(confPath, config.DefaultClient())
				if err != nil {
					return err
				}
				out.Configured, out.PAC = redact(c.Proxy), c.PAC
				if !cmd.Flags().Changed("proxy-cache") && c.ProxyCache != "" {
					cachePath = c.ProxyCache
				}
			}
			out.CacheFile = cachePath
			e, err := (&proxy.Cache{Path: cachePath}).Read()
			if err != nil {
				return err
			}
			out.Cached, out.CachedFor, out.CachedAt = e.Proxy, e.Server, e.Saved
			socks, _ := control.AllSockets()
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			for _, p := range socks {
				if s, err := control.Fetch(ctx, p); err == nil && s.Role == "client" {
					out.InUse = append(out.InUse, inUse{Socket: p, URL: s.URL, Proxy: s.Proxy})
				}
			}
			if asJSON {
				e := json.NewEncoder(os.Stdout)
				e.SetIndent("", "  ")
				return e.Encode(out)
			}
			fmt.Println("\nCurrent IP-HTTPS client proxy settings:")
			if out.Configured != "" {
				fmt.Printf("    Configured proxy  : %s (%s)\n", out.Configured, confPath)
			}
			if out.PAC != "" {
				fmt.Printf("    PAC script        : %s (%s)\n", out.PAC, confPath)
			}
			if len(out.Environment) == 0 {
				fmt.Println("    Environment       : no HTTPS_PROXY (direct access unless --proxy is given)")
			}
			for _, k := range []string{"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
				if v, ok := out.Environment[k]; ok {
					fmt.Printf("    %-17s : %s\n", k, v)
				}
			}
			if out.Cached == "" {
				fmt.Printf("    Cached proxy      : none (%s)\n", cachePath)
			} else {
				fmt.Printf("    Cached proxy      : %s for %s (worked at %s; %s)\n", out.Cached, out.CachedFor, out.CachedAt.Local().Format(time.DateTime), cachePath)
			}
			for _, u := range out.InUse {
				fmt.Printf("    In use            : %s by the client of %s\n", u.Proxy, u.URL)
			}
			fmt.Println()
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show.Flags().StringVarP(&confPath, "config", "c", "", "also show the proxy settings of this client configuration file")
	reset := &cobra.Command{
		Use:   "reset",
		Short: "Forget the cached proxy",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := (&proxy.Cache{Path: cachePath}).Reset(); err != nil {
				return err
			}
			fmt.Printf("Reset the cached proxy (%s): the client will use its configured proxy or direct access.\n", cachePath)
			return nil
		},
	}
	cmd.AddCommand(show, reset)
	return cmd
}

// redact hides the password of a proxy URL.
func redact(v string) string { return proxy.Redact(v) }
