package router

import (
	"fmt"
	"strings"
)

// Mode is the server's IP-HTTPS authentication mode; it decides the
// link's DAD and multicast rules ([MS-IPHTTPS] 3.2.5.2).
type Mode int

// Authentication modes.
const (
	// ModeNone: clients are not authenticated. The server isolates them at
	// the link layer: no multicast or link-local traffic between clients,
	// DAD answered by the server.
	ModeNone Mode = iota
	// ModeCertificates: clients present certificates. The link behaves as
	// a shared segment: multicast is flooded to the other clients.
	ModeCertificates
)

// ParseMode parses "none" or "certificates", in any letter case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none":
		return ModeNone, nil
	case "certificates":
		return ModeCertificates, nil
	}
	return 0, fmt.Errorf("router: unknown authentication mode %q (want none or certificates)", s)
}

// String returns "none", "certificates", or "Mode(n)".
func (m Mode) String() string {
	switch m {
	case ModeNone:
		return "none"
	case ModeCertificates:
		return "certificates"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}
