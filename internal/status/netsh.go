package status

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/iphttps/iphttps/internal/winerr"
)

const (
	netshDashes   = 60
	netshLabelPad = 27
)

// WriteNetsh prints interfaces in the layout of
// `netsh interface httpstunnel show interfaces`: a blank line, the header
// "Interface IPHTTPSInterface (<source>) Parameters", 60 dashes, then
// "label<pad to 27>: value" lines. The four Windows fields come first;
// iphttps' own fields follow them.
func WriteNetsh(w io.Writer, ifs []Interface) error {
	var b strings.Builder
	for _, s := range ifs {
		name := s.Name
		if name == "" {
			name = "IPHTTPSInterface"
		}
		source := s.Source
		if source == "" {
			source = "Local"
		}
		fmt.Fprintf(&b, "\nInterface %s (%s) Parameters\n%s\n", name, source, strings.Repeat("-", netshDashes))
		line(&b, "Role", s.Role)
		line(&b, "URL", s.URL)
		line(&b, "Last Error Code", winerr.Hex(s.LastErrorCode))
		line(&b, "Interface Status", s.InterfaceStatus)
		line(&b, "Device", s.Device)
		line(&b, "State", s.State)
		line(&b, "TUN Offload", map[bool]string{true: "on", false: "off"}[s.Offload])
		if !s.Since.IsZero() {
			line(&b, "Since", s.Since.Format("2006-01-02 15:04:05"))
		}
		if !s.NextRetry.IsZero() {
			line(&b, "Next Retry", s.NextRetry.Format("2006-01-02 15:04:05"))
		}
		if s.LastError != "" {
			line(&b, "Last Error", s.LastError)
		}
		if s.AuthMode != "" {
			line(&b, "Authentication Mode", s.AuthMode)
		}
		if s.Server != "" {
			line(&b, "Server Endpoint", s.Server)
		}
		if s.Proxy != "" {
			line(&b, "Proxy", s.Proxy)
		}
		for i, l := range s.Listeners {
			lbl := ""
			if i == 0 {
				lbl = "Listeners"
			}
			line(&b, lbl, l)
		}
		if s.Prefix != "" {
			line(&b, "Prefix", s.Prefix)
		}
		for i, a := range s.Addresses {
			lbl := ""
			if i == 0 {
				lbl = "Addresses"
			}
			line(&b, lbl, a)
		}
		for i, r := range s.Routes {
			lbl := ""
			if i == 0 {
				lbl = "Routes"
			}
			line(&b, lbl, r)
		}
		if s.Role == "server" {
			line(&b, "Clients Connected", fmt.Sprint(len(s.Clients)))
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCounters prints the counters of each interface, sorted by name.
func WriteCounters(w io.Writer, ifs []Interface) error {
	var b strings.Builder
	for _, s := range ifs {
		fmt.Fprintf(&b, "\nInterface %s (%s %s) Statistics\n%s\n", nonEmpty(s.Name, "IPHTTPSInterface"), s.Role, s.Device, strings.Repeat("-", netshDashes))
		keys := make([]string, 0, len(s.Counters))
		for k := range s.Counters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line(&b, k, fmt.Sprint(s.Counters[k]))
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func line(b *strings.Builder, label, value string) {
	if label == "" {
		fmt.Fprintf(b, "%-*s  %s\n", netshLabelPad, "", value)
		return
	}
	fmt.Fprintf(b, "%-*s: %s\n", netshLabelPad, label, value)
}
