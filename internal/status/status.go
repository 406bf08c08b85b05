// Package status is the state a running iphttps daemon reports: the fields
// Windows shows for an IP-HTTPS interface (role, URL, last error code,
// interface status) plus iphttps' own (state, addresses, counters, clients).
package status

import (
	"sync"
	"time"
)

// Interface is the status of one IP-HTTPS interface, client or server.
type Interface struct {
	Name            string            `json:"name"`   // "IPHTTPSInterface"
	Source          string            `json:"source"` // configuration source shown in the netsh header
	Device          string            `json:"device"` // the TUN device on Linux
	Role            string            `json:"role"`   // "client" or "server"
	URL             string            `json:"url"`
	State           string            `json:"state"` // client: Enabled, LinkDown, Established, LinkUp; server: Listen, Stopped
	LastErrorCode   uint32            `json:"last_error_code"`
	LastError       string            `json:"last_error,omitempty"`
	InterfaceStatus string            `json:"interface_status"`
	Since           time.Time         `json:"since"`
	NextRetry       time.Time         `json:"next_retry,omitzero"`
	Prefix          string            `json:"prefix,omitempty"`
	Addresses       []string          `json:"addresses,omitempty"`
	Routes          []string          `json:"routes,omitempty"`
	Server          string            `json:"server,omitempty"` // client: the server's remote address in use
	Proxy           string            `json:"proxy,omitempty"`  // client: the proxy in use, or "direct"
	AuthMode        string            `json:"auth_mode,omitempty"`
	Offload         bool              `json:"offload"`             // TUN GSO/GRO in use
	Listeners       []string          `json:"listeners,omitempty"` // client --userspace: the SOCKS5/HTTP proxy listeners
	PID             int               `json:"pid"`
	Counters        map[string]uint64 `json:"counters,omitempty"`
	Clients         []Client          `json:"clients,omitempty"`
	// Teredo is set on a server that is also a Teredo server and relay.
	Teredo *TeredoServer `json:"teredo,omitempty"`
	// SixToFourRelay is set on a server that is also a 6to4 relay.
	SixToFourRelay *SixToFourRelay `json:"6to4_relay,omitempty"`
	// TeredoClient is set on a client whose transport is Teredo: what
	// `netsh interface teredo show state` shows on Windows.
	TeredoClient *TeredoState `json:"teredo_client,omitempty"`
	// SixToFour is set on a client whose transport is 6to4.
	SixToFour *SixToFourState `json:"6to4_client,omitempty"`
	// Paths is set on a client with several methods (package paths): each
	// method's state, the one carrying traffic first.
	Paths []Path `json:"paths,omitempty"`
}

// TeredoState is a Teredo client's state in the words Windows uses
// (`netsh interface teredo show state`; PowerShell Get-NetTeredoState and
// Get-NetTeredoConfiguration for the JSON names). Empty strings are not
// known yet and are not shown.
type TeredoState struct {
	Type            string `json:"Type"`                   // "client" (iphttps: always a client)
	ServerName      string `json:"ServerName"`             // as configured
	RefreshInterval int    `json:"RefreshIntervalSeconds"` // 30
	ClientPort      string `json:"ClientPort"`             // "unspecified" or the configured port
	// State: "offline", "probe (primary server)", "probe (secondary
	// server)", "qualified", "dormant".
	State      string `json:"State"`
	Error      string `json:"Error,omitempty"`      // shown when State is offline
	ClientType string `json:"ClientType,omitempty"` // "teredo client"
	Network    string `json:"Network,omitempty"`    // "unmanaged" (iphttps does no managed-network detection)
	// NAT: "none (global connectivity)", "cone", "restricted",
	// "restricted (port)", "symmetric".
	NAT                 string `json:"NAT,omitempty"`
	NATSpecialBehaviour string `json:"NATSpecialBehaviour,omitempty"` // "UPNP: No, PortPreserving: Yes"
	LocalMapping        string `json:"LocalMapping,omitempty"`        // local IPv4:port
	ExternalNATMapping  string `json:"ExternalNATMapping,omitempty"`  // what the server saw
	// iphttps' own fields.
	Address     string    `json:"Address,omitempty"` // the Teredo IPv6 address
	Server      string    `json:"Server,omitempty"`  // primary IPv4 in use
	Secondary   string    `json:"Secondary,omitempty"`
	Peers       int       `json:"Peers"`
	LastRefresh time.Time `json:"LastRefresh,omitzero"`
}

// TeredoServer describes a server's Teredo side.
type TeredoServer struct {
	Primary   string `json:"primary"`
	Secondary string `json:"secondary"`
	Prefix    string `json:"prefix"` // the clients' 2001:0:<primary>::/64
}

// SixToFourRelay describes a server's 6to4 side.
type SixToFourRelay struct {
	Address string `json:"address"` // the server's 6to4 address, which answers the clients' path test
	Prefix  string `json:"prefix"`  // 2002::/16, routed to the server's TUN device
}

// Client is one connected client as the server sees it.
type Client struct {
	// Transport is how the client reaches the server: "ip-https" (also
	// when empty), "teredo" or "6to4".
	Transport string    `json:"transport,omitempty"`
	Remote    string    `json:"remote"`
	Mapping   string    `json:"mapping,omitempty"` // Teredo: the client's NAT mapping
	Subject   string    `json:"subject,omitempty"`
	Addresses []string  `json:"addresses,omitempty"`
	Since     time.Time `json:"since"`
	BytesIn   uint64    `json:"bytes_in"`
	BytesOut  uint64    `json:"bytes_out"`
	PktsIn    uint64    `json:"packets_in"`
	PktsOut   uint64    `json:"packets_out"`
}

// Holder guards an Interface that one goroutine updates and others read.
type Holder struct {
	mu sync.Mutex
	v  Interface
}

// Update applies fn to the held value under the lock.
func (h *Holder) Update(fn func(*Interface)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(&h.v)
}

// Get returns a copy of the held value (slices and maps are copied too).
func (h *Holder) Get() Interface {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.v
	v.Addresses = append([]string(nil), h.v.Addresses...)
	v.Routes = append([]string(nil), h.v.Routes...)
	v.Clients = append([]Client(nil), h.v.Clients...)
	if h.v.Counters != nil {
		v.Counters = make(map[string]uint64, len(h.v.Counters))
		for k, c := range h.v.Counters {
			v.Counters[k] = c
		}
	}
	return v
}
