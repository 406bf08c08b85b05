package client

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/iphttps/iphttps/internal/status"
)

// Transport is one way of carrying the host's IPv6 packets to the other
// side: IP-HTTPS (package iphttps/client) or Teredo (package
// teredo/client). The client's host side, written once, runs any of them:
// the TUN device or in-process stack, the addresses and routes on it, the
// status and control socket, reload and the reconnect timer.
type Transport interface {
	// Name is the transport's name in logs ("IP-HTTPS", "Teredo").
	Name() string
	// Connect brings up one session (connection, qualification) and runs
	// it until ctx ends or the session fails. It attaches a Sender to the
	// link once packets can flow and detaches it before returning. up
	// tells whether the session came all the way up (an address was
	// configured); the error carries the Windows code of the failure
	// (package winerr), nil when ctx ended.
	Connect(ctx context.Context, l Link) (up bool, err error)
}

// What a transport may also do; the host side asks with a type assertion.
type (
	// StatusIniter sets the status fields the transport owns (the
	// interface's name as Windows shows it, for one) before the first
	// session.
	StatusIniter interface{ InitStatus(*status.Interface) }
	// Counter has counters of its own, shown in the status under the
	// transport's name ("teredo/...").
	Counter interface{ Counters() map[string]uint64 }
	// InterfaceCounter counts under the interface's own names (drops, the
	// connections made); they are added to the host side's counters of the
	// same name.
	InterfaceCounter interface{ InterfaceCounters() map[string]uint64 }
	// PrefixedCounter has counters already named by transport
	// ("teredo/...", "6to4/..."): a transport that runs others (package
	// paths) passes theirs on as they are.
	PrefixedCounter interface{ PrefixedCounters() map[string]uint64 }
	// UpTimer tells how long the last session was up, when that is not
	// the time Connect ran (the reconnect timer restarts only after a
	// session that was up for a while).
	UpTimer interface{ UpFor() time.Duration }
	// Requalifier asks the host side to end the session and start another
	// at once when the network changes (a NAT mapping may have changed).
	Requalifier interface{ RequalifyOnNetworkChange() bool }
	// Successor keeps what the transport it replaces on a reload holds
	// across sessions (the addresses on the host, the counters).
	Successor interface{ TakeOver(prev Transport) }
)

// Link is what a transport's session may use of the host side.
type Link interface {
	// Host is this machine's end of the tunnel: packets to write to it,
	// addresses and routes to put on it.
	Host() Host
	// Attach makes s the destination of the packets the host sends into
	// the tunnel, until Detach.
	Attach(s Sender)
	Detach()
	// Update changes the status the daemon reports (show interfaces, show
	// teredo); the host side keeps the fields it owns.
	Update(func(*status.Interface))
	// Received counts packets delivered to the host from the tunnel (the
	// status counters packets_down and bytes_down).
	Received(pkts, bytes int)
	// Routes are the routes the configuration adds into the tunnel.
	Routes() []netip.Prefix
	Log() *slog.Logger
}

// Sender takes the packets the host sends into the tunnel. Send is called
// by the host side's one reader goroutine and must not keep pkts or their
// bytes after it returns; it counts and drops what it cannot carry.
type Sender interface {
	Send(pkts [][]byte) (sent, bytes int)
}
