package server

import (
	"fmt"
	"slices"
	"strings"

	"github.com/iphttps/iphttps/internal/config"
)

// ReloadFrom reads the configuration with load and applies it with Reload;
// every failure, reading included, is counted (reload_failures) and
// returned, and the running configuration stays.
func (s *Server) ReloadFrom(load func() (config.Server, error)) error {
	err := s.reloadFrom(load)
	if err != nil {
		s.c.reloadFailures.Add(1)
	}
	return err
}

func (s *Server) reloadFrom(load func() (config.Server, error)) error {
	c, err := load()
	if err != nil {
		return err
	}
	n, err := ReloadConfig(c, s.log, s.Options())
	if err != nil {
		return err
	}
	return s.reloadOptions(n)
}

// Reload applies a new configuration to the running server (SIGHUP) without
// dropping sessions: the certificate and key, client CA and CRLs, TLS
// version, limits, timeouts, path and Server header apply to the next
// connection, client isolation at once. Changing the authentication mode
// disconnects every client, as [MS-IPHTTPS] 3.2.5 requires; they reconnect
// under the new mode. Settings that shape the link or the sockets (listen
// address, prefix, routes, interface, PROXY protocol, metrics listener...)
// need a restart: they are reported and the running values kept.
func (s *Server) Reload(n Options) error {
	err := s.reloadOptions(n)
	if err != nil {
		s.c.reloadFailures.Add(1)
	}
	return err
}

func (s *Server) reloadOptions(n Options) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	o := *s.cur.Load()
	if (n.TLS == nil) != (o.TLS == nil) {
		return fmt.Errorf("plain_http cannot change on reload: restart the server")
	}
	if restart := restartOnly(o, n); len(restart) > 0 {
		s.log.Warn("these settings change only on restart; the running values stay", "settings", strings.Join(restart, ", "))
	}
	if err := s.router.SetPolicy(n.Router.Mode, n.Router.IsolateClients); err != nil {
		return err
	}
	oldMode := o.Router.Mode
	o.TLS, o.Limits, o.HandshakeTimeout, o.HeadTimeout = n.TLS, n.Limits, n.HandshakeTimeout, n.HeadTimeout
	o.Path, o.URL, o.ServerHeader = n.Path, n.URL, n.ServerHeader
	o.SelfSigned, o.ShutdownTimeout = n.SelfSigned, n.ShutdownTimeout
	o.Router.Mode, o.Router.IsolateClients = n.Router.Mode, n.Router.IsolateClients
	s.cur.Store(&o)
	s.c.reloads.Add(1)
	attrs := []any{"auth_mode", n.Router.Mode, "isolate_clients", n.Router.IsolateClients,
		"max_clients", n.Limits.MaxClients, "max_clients_per_source", n.Limits.MaxClientsPerSource}
	if n.TLS != nil && len(n.TLS.Certificates) > 0 && n.TLS.Certificates[0].Leaf != nil {
		leaf := n.TLS.Certificates[0].Leaf
		attrs = append(attrs, "certificate", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
	s.log.Info("configuration reloaded", attrs...)
	if n.Router.Mode != oldMode {
		// The new options are stored: from here addSession refuses the
		// connections that began under the old mode, and every session
		// attached so far is in the snapshot closeSessions takes.
		dropped := s.closeSessions(o.ShutdownTimeout)
		s.c.authModeDrops.Add(uint64(dropped))
		s.log.Warn("authentication mode changed: every client was disconnected and must reconnect under the new mode",
			"from", oldMode, "to", n.Router.Mode, "clients", dropped)
	}
	return nil
}

// Options returns the options in force: those the server started with,
// updated by every reload.
func (s *Server) Options() Options { return *s.cur.Load() }

// restartOnly names the settings that differ between o and n but apply
// only at start.
func restartOnly(o, n Options) []string {
	var out []string
	diff := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	diff("listen", o.Listen != n.Listen)
	diff("interface", o.Interface != n.Interface)
	diff("prefix", o.Router.Prefix != n.Router.Prefix)
	diff("host_address", !slices.Equal(o.Router.HostAddrs, n.Router.HostAddrs))
	diff("route", !slices.Equal(o.Router.Routes, n.Router.Routes))
	diff("advertise_default_route", o.Router.DefaultRoute != n.Router.DefaultRoute)
	diff("publish_prefix", o.Router.Unpublished != n.Router.Unpublished)
	diff("offload", o.Offload != n.Offload)
	diff("control_socket", o.ControlSocket != n.ControlSocket)
	diff("proxy_protocol", o.ProxyProtocol != n.ProxyProtocol)
	diff("proxy_protocol_from", !slices.Equal(o.ProxyFrom, n.ProxyFrom))
	diff("metrics_listen", o.MetricsListen != n.MetricsListen)
	diff("ra_interval", o.RAInterval != n.RAInterval)
	diff("set_forwarding", o.SetForwarding != n.SetForwarding)
	diff("log_level/log_format", o.LogSettings != n.LogSettings)
	return out
}
