package status

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Path is one method of a client that has several (6to4, Teredo,
// IP-HTTPS): whether it carries the traffic, its state, and the last
// outcome in the words of its own interface (IP-HTTPS: the Interface
// Status and code netsh shows; Teredo: the state and error of `netsh
// interface teredo show state`; 6to4: the service state and the failed
// test).
type Path struct {
	Method string `json:"method"` // "6to4", "Teredo", "IP-HTTPS"
	// Active is set on the method that carries the traffic.
	Active bool `json:"active"`
	// State is iphttps' word for where the method stands: "active"
	// (carrying traffic), "trying" (qualifying, testing, connecting),
	// "failed" (its last try failed; Code and Status say why), "waiting"
	// (not tried yet, or tried again later), "stopped" (a better method
	// took over), "standby" (a worse method whose probe says it would
	// work).
	State string `json:"state"`
	// Code is the last error code (hex, as Windows prints it; "0x0" when
	// up) and Status the interface's own status words.
	Code      string    `json:"code,omitempty"`
	Status    string    `json:"status,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	LastTried time.Time `json:"last_tried,omitzero"`
	UpSince   time.Time `json:"up_since,omitzero"`
}

// WritePaths prints the methods of each daemon that has several, one table
// per daemon: the method carrying traffic is marked with "*".
func WritePaths(w io.Writer, ifs []Interface) error {
	n := 0
	for _, s := range ifs {
		if len(s.Paths) == 0 {
			continue
		}
		if n > 0 {
			fmt.Fprintln(w)
		}
		n++
		fmt.Fprintf(w, "Paths of %s (%s)\n", s.Device, s.Role)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\tMETHOD\tSTATE\tCODE\tSTATUS\tLAST TRIED")
		for _, p := range s.Paths {
			mark, tried := "", "never"
			if p.Active {
				mark = "*"
			}
			if !p.LastTried.IsZero() {
				tried = p.LastTried.Local().Format(time.DateTime)
			}
			status := p.Status
			if p.Reason != "" && p.Reason != p.Status {
				status += ": " + p.Reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, p.Method, p.State, p.Code, status, tried)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if n == 0 {
		_, err := fmt.Fprintln(w, "No iphttps client runs with several methods (give it more than one of an IP-HTTPS URL, --teredo-server and --6to4-relay).")
		return err
	}
	return nil
}
