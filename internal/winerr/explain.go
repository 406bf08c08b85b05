package winerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Roles that report a code, for Explanation.Role.
const (
	RoleClient = "client"              // a client shows it in Last Error Code
	RoleServer = "server"              // the server refuses to start with it
	RoleBoth   = "client and server"   // both
	RoleNone   = "not used by iphttps" // Windows has it; iphttps reports another code
)

// Families of codes, for Explanation.Family.
const (
	familyWin32   = "Win32 error"
	familyWinsock = "Winsock error"
	familyWinHTTP = "WinHTTP error"
	familyCrypto  = "CryptoAPI HRESULT"
	familySSPI    = "SSPI/SChannel status"
)

// Explanation tells what a code means for IP-HTTPS, why it happens and how to
// fix it with this product on Linux. `iphttps errcode` prints it and
// `iphttps diagnose` attaches it to a failing check.
type Explanation struct {
	Code    uint32 `json:"code"`
	Symbol  string `json:"symbol"`          // e.g. WSAHOST_NOT_FOUND
	Message string `json:"windows_message"` // Windows' system message for the code
	Family  string `json:"family"`          // Win32, Winsock, WinHTTP, CryptoAPI, SSPI
	// Status is the Interface Status a client shows with the code
	// (StatusFor); empty for codes only the server reports at start-up.
	Status string `json:"interface_status,omitempty"`
	// Documented is true when DirectAccess troubleshooting material names
	// the code as an IP-HTTPS Last Error Code in DirectAccess material.
	Documented bool     `json:"documented_for_iphttps"`
	Role       string   `json:"role"`        // one of the Role constants
	Reported   string   `json:"reported_by"` // when iphttps reports it, or which code it reports instead
	Summary    string   `json:"summary"`     // one line
	Meaning    string   `json:"meaning"`     // what it means for IP-HTTPS
	Causes     []string `json:"causes"`
	Remedies   []string `json:"remedies"`          // in the terms of iphttps on Linux
	Related    []string `json:"related,omitempty"` // codes to read too, as hex
	Next       string   `json:"next_step"`
}

// MarshalJSON adds the code as netsh prints it ("hex") and, for HRESULTs,
// as the signed number PowerShell scripts see ("signed").
func (e Explanation) MarshalJSON() ([]byte, error) {
	type plain Explanation
	v := struct {
		Hex    string `json:"hex"`
		Signed *int32 `json:"signed,omitempty"`
		plain
	}{Hex: Hex(e.Code), plain: plain(e)}
	if int32(e.Code) < 0 {
		s := int32(e.Code)
		v.Signed = &s
	}
	return json.Marshal(v)
}

// Explain returns the explanation of code. A Win32 or Winsock code written as
// an HRESULT (0x8007xxxx, HRESULT_FROM_WIN32) is explained as the plain code:
// the returned Code is then the plain one, which tells the caller so.
func Explain(code uint32) (Explanation, bool) {
	if e, ok := lookup(code); ok {
		return e, true
	}
	if code&0xFFFF0000 == 0x80070000 && code&0xFFFF != 0 {
		if e, ok := lookup(code & 0xFFFF); ok && e.Family != familyCrypto && e.Family != familySSPI {
			return e, true
		}
	}
	return Explanation{}, false
}

// Known returns every explained code, in the order of a troubleshooting
// session: success, the interface, the URL, name resolution, TCP, TLS and
// certificates, then the server's start-up codes.
func Known() []Explanation {
	out := make([]Explanation, len(explanations))
	for i := range explanations {
		out[i] = filled(explanations[i])
	}
	return out
}

func lookup(code uint32) (Explanation, bool) {
	for i := range explanations {
		if explanations[i].Code == code {
			return filled(explanations[i]), true
		}
	}
	return Explanation{}, false
}

// filled returns a copy of e (its slices too, so callers cannot change the
// table) with the derived fields set.
func filled(e Explanation) Explanation {
	e.Causes = slices.Clone(e.Causes)
	e.Remedies = slices.Clone(e.Remedies)
	e.Related = slices.Clone(e.Related)
	switch e.Role {
	case RoleServer:
		e.Status = ""
		e.Next = "Fix the setting the server names in its one-line error and start it again; then run " +
			"`iphttps diagnose https://NAME/IPHTTPS` from a client to check the server end to end."
	default:
		e.Status = StatusFor(e.Code)
		e.Next = "Run `iphttps diagnose https://NAME/IPHTTPS` (the client's URL): it runs the checks in order " +
			"(platform, URL, name resolution, proxy, TCP, TLS, certificate, IP-HTTPS answer, router " +
			"advertisement) and names the one that fails."
	}
	return e
}

// ErrSyntax is returned by ParseCode for input that is not a number.
var ErrSyntax = errors.New("not a code: want hex (0x2af9), decimal (11001) or a signed 32-bit decimal (-2146762487)")

// ParseCode reads a code as people copy it: hex with 0x (any case: 0x2AF9,
// 0x800b0109), unsigned decimal (11001, as PowerShell's LastErrorCode), or
// negative decimal, the signed 32-bit form of an HRESULT (-2146762487 is
// 0x800b0109).
func ParseCode(s string) (uint32, error) {
	t := strings.TrimSpace(s)
	var (
		v   uint64
		err error
	)
	switch {
	case strings.HasPrefix(t, "0x"), strings.HasPrefix(t, "0X"):
		v, err = strconv.ParseUint(t[2:], 16, 32)
	case strings.HasPrefix(t, "-"):
		var n int64
		n, err = strconv.ParseInt(t, 10, 32)
		v = uint64(uint32(int32(n)))
	default:
		v, err = strconv.ParseUint(t, 10, 32)
	}
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	return uint32(v), nil
}

// Shared remedy texts.
const (
	remedyLastError = "Read the precise reason: `iphttps show interfaces` (the Last Error line) or the daemon's log " +
		"(`journalctl -u iphttps-client`)."
	remedyProxyShow = "See the proxy the client uses: `iphttps proxy show` (the counterpart of `netsh winhttp show " +
		"proxy`) lists HTTPS_PROXY/NO_PROXY, the cached proxy and the proxy each running client uses; add " +
		"`--config /etc/iphttps/client.toml` to include the configured `proxy` and `pac`."
	remedyOpenSSL = "See what the server presents: `openssl s_client -connect NAME:443 -servername NAME -showcerts " +
		"</dev/null` (add `-proxy HOST:PORT` to look through the proxy the client uses)."
	remedyTrust = "Trust the issuing root: give the client `--ca /etc/iphttps/ca.pem` (`ca` in the configuration " +
		"file), or add it to the system store: copy it to /usr/local/share/ca-certificates/NAME.crt and run " +
		"`update-ca-certificates` (it ends up in /etc/ssl/certs). SSL_CERT_FILE and SSL_CERT_DIR in the daemon's " +
		"environment also change the system roots."
	remedyWinRevocation = "For Windows clients of an iphttps server: publish the CRL named in the certificate's CRL " +
		"distribution point on a plain HTTP server reachable from the Internet (`openssl x509 -in server.pem " +
		"-noout -ext crlDistributionPoints` shows the URL; `curl -sI URL` from outside checks it), keep it fresh " +
		"(regenerate it before its nextUpdate), and clear a stale cache on the client with " +
		"`certutil -urlcache * delete`."
	reportedNoRevocation = "never: iphttps clients do not check revocation (no CRL or OCSP), so they cannot report " +
		"it; Windows clients of an iphttps server can."
)

// explanations is the read-only table behind Explain and Known. The Windows
// messages are the system's (winerror.h); the rest is written for iphttps.
var explanations = []Explanation{
	{
		Code: Success, Symbol: "ERROR_SUCCESS", Family: familyWin32, Documented: true, Role: RoleBoth,
		Message:  "The operation completed successfully.",
		Reported: "client: the tunnel is up (and, with status \"Connecting to the IPHTTPS server\", during the first attempt); server: running.",
		Summary:  "Connected: the tunnel is up and an address from the server's prefix is configured",
		Meaning: "The client reached the server, the server answered the IP-HTTPS request with 200, advertised a /64 " +
			"prefix, and the client's address in it passed duplicate address detection. During its very first " +
			"attempt a client also shows 0x0, with iphttps' own status \"Connecting to the IPHTTPS server\" " +
			"(Windows shows nothing then). After a failure the code stays until a connection succeeds again.",
		Causes: []string{"None: this is the healthy state."},
		Remedies: []string{
			"If traffic still does not flow, compare `iphttps show interfaces` (Prefix, Addresses, Routes) with " +
				"`ip -6 addr show dev iphttps0` and `ip -6 route show dev iphttps0`: the destination must lie in the " +
				"prefix, in a route the server advertises (server `--route`) or in a client `--route` prefix.",
			"Ping the server's end of the link: `ping -6 PREFIX::1` (the server's `--host-address`).",
			"On the server, IPv6 forwarding must be on (`--set-forwarding`, net.ipv6.conf.all.forwarding=1) and " +
				"the intranet must route the client prefix back to the server; `iphttps show statistics` counts " +
				"dropped packets by reason.",
		},
	},
	{
		Code: DupName, Symbol: "ERROR_DUP_NAME", Family: familyWin32, Documented: true, Role: RoleBoth,
		Message:  "You were not connected because a duplicate name exists on the network.",
		Reported: "client and server: an interface named like --interface already exists when the TUN device is created.",
		Summary:  "An interface with the tunnel's name already exists (the Linux form of a duplicate IP-HTTPS adapter)",
		Meaning: "The TUN device cannot be created because the network namespace already has an interface of " +
			"that name. This is what the duplicate or hidden (\"ghost\") IP-HTTPS adapter in Device Manager is " +
			"on Windows. A client keeps retrying on its reconnect timer; a server refuses to start.",
		Causes: []string{
			"Another iphttps daemon runs with the same --interface (iphttps0 for clients, iphttps-srv for " +
				"servers), for example the systemd service and a copy started by hand.",
			"A persistent TUN device of that name was made with `ip tuntap add` or by another VPN program. " +
				"(The device iphttps makes is not persistent: it goes away with the process, even after kill -9.)",
			"An unrelated interface (a bridge, WireGuard, veth) happens to have that name.",
		},
		Remedies: []string{
			"See what it is: `ip -d link show NAME` (a TUN device has a \"tun\" line) and `iphttps show interfaces` " +
				"(which daemons run, with which device).",
			"Stop the other daemon (`systemctl stop iphttps-client`), or give this one another name with " +
				"`--interface NAME` (`interface` in the configuration file).",
			"Remove a leftover: `ip link del NAME`, or `iphttps reset`, which removes only what iphttps created " +
				"(the counterpart of deleting the hidden adapter in Device Manager with non-present devices shown).",
			"In a container or network namespace, look inside it: `ip netns exec NS ip link show`.",
		},
		Related: []string{"0x643"},
	},
	{
		Code: InstallFailure, Symbol: "ERROR_INSTALL_FAILURE", Family: familyWin32, Documented: true, Role: RoleBoth,
		Message:  "Fatal error during installation.",
		Reported: "client and server: the TUN device cannot be created or configured (IPv6 disabled, no TUN driver, no CAP_NET_ADMIN, name too long, addresses or routes refused, device removed while running).",
		Summary:  "The tunnel interface cannot be created: IPv6 disabled, no TUN driver, or no permission",
		Meaning: "The kernel would not give iphttps a working IPv6 tunnel device. On Windows the same status " +
			"comes from a broken IP-HTTPS adapter or from the DisabledComponents registry value switching IPv6 " +
			"or the tunnels off. On Linux the role of DisabledComponents is played by the disable_ipv6 sysctls " +
			"(per network namespace) and by the ipv6.disable=1 boot parameter; the daemon's message names the " +
			"one that is set.",
		Causes: []string{
			"IPv6 is switched off by sysctl in this network namespace: net.ipv6.conf.all.disable_ipv6=1, or " +
				"net.ipv6.conf.default.disable_ipv6=1 (which new interfaces such as the TUN device inherit). " +
				"These are per namespace: a container can have IPv6 off while the host has it on.",
			"IPv6 is switched off at boot with the kernel parameter ipv6.disable=1 (/proc/sys/net/ipv6 is missing).",
			"No TUN driver: /dev/net/tun is missing (module tun not loaded, or a container without the device).",
			"No CAP_NET_ADMIN: not root, or a container or systemd unit without that capability.",
			"Smaller things: an --interface name over 15 characters, `--offload on` where the kernel has no TUN " +
				"offload, addresses or routes refused on the device, the device deleted while the daemon ran.",
			"Windows-only causes with no Linux counterpart: corrupt IP-HTTPS policy keys, a missing hotfix. A " +
				"damaged http.sys URL reservation on a Windows server shows up here too; an iphttps server whose " +
				"port is taken says 0x2740 instead.",
		},
		Remedies: []string{
			"Check: `sysctl net.ipv6.conf.all.disable_ipv6 net.ipv6.conf.default.disable_ipv6` (run it inside the " +
				"namespace: `ip netns exec NS sysctl ...`). Enable: `sysctl -w net.ipv6.conf.all.disable_ipv6=0 " +
				"net.ipv6.conf.default.disable_ipv6=0`, and remove the line setting 1 from /etc/sysctl.conf or " +
				"/etc/sysctl.d/*.conf so it lasts. Docker: `--sysctl net.ipv6.conf.all.disable_ipv6=0`.",
			"ipv6.disable=1: `cat /proc/cmdline` shows it; remove it from GRUB_CMDLINE_LINUX in /etc/default/grub, " +
				"run `update-grub` and reboot (the counterpart of deleting DisabledComponents and rebooting).",
			"TUN: `modprobe tun` and `ls -l /dev/net/tun`; a container needs `--device /dev/net/tun " +
				"--cap-add NET_ADMIN`.",
			"Run as root or with CAP_NET_ADMIN (the units in contrib/systemd grant exactly that).",
			"A client that cannot have a TUN device or CAP_NET_ADMIN can run `iphttps client --userspace`: " +
				"no interface is created; applications reach the tunnel through local SOCKS5/HTTP proxy listeners.",
			"Keep --interface to 15 characters at most; use `--offload auto`.",
			remedyLastError + " `iphttps reset` clears what an earlier run left behind.",
		},
		Related: []string{"0x34", "0x2740"},
	},
	{
		Code: InvalidNetName, Symbol: "ERROR_INVALID_NETNAME", Family: familyWin32, Documented: true, Role: RoleClient,
		Message:  "The format of the specified network name is invalid.",
		Reported: "client: at start-up, for a URL that breaks Windows' rules; the client stops (it does not retry).",
		Summary:  "The IP-HTTPS URL is not acceptable: IP address as host, not https, or no path",
		Meaning: "Windows refuses an IP-HTTPS URL whose host is an IP address, and iphttps does the same so that " +
			"a configuration working here works for Windows clients too. The URL must be https, name a host " +
			"and a path, and carry nothing else.",
		Causes: []string{
			"The host is an IP address (https://203.0.113.5/IPHTTPS) instead of a DNS name.",
			"The scheme is not https (http:// needs --allow-plain-http), or the URL cannot be parsed.",
			"There is no path (the usual one is /IPHTTPS), or there is user info, a query or a fragment.",
			"No URL was given at all (neither the argument nor `url` in the configuration file).",
		},
		Remedies: []string{
			"Use the DNS name that is the subject CN of the server certificate: " +
				"`iphttps client https://da.example.com/IPHTTPS` (or `url = \"...\"` in the configuration file).",
			"For a lab without DNS only: `--allow-ip-literal` (the certificate must then carry that address); " +
				"Windows clients will still refuse such a URL.",
			"`--allow-plain-http` only for a server behind a TLS terminator on a trusted network.",
			"The client's message says which rule the URL breaks.",
		},
	},
	{
		Code: HostNotFound, Symbol: "WSAHOST_NOT_FOUND", Family: familyWinsock, Documented: true, Role: RoleClient,
		Message:  "No such host is known.",
		Reported: "client: the server's name does not exist in DNS, the proxy cannot be reached, or no proxy could be chosen (PAC failure).",
		Summary:  "The server's name does not exist, or the proxy cannot be reached",
		Meaning: "The client could not get as far as talking to the server: the name lookup says the host does " +
			"not exist, or the proxy it must go through does not answer. Windows' advice for this code is " +
			"mostly about the WinHTTP proxy and the proxy cache of the IP Helper service (ProxyMgr); in iphttps " +
			"the proxy comes from --proxy, --pac or HTTPS_PROXY, and the cache is --proxy-cache.",
		Causes: []string{
			"The URL's host name does not exist (NXDOMAIN): a typo, a record not published, or split DNS sending " +
				"the public name to an internal resolver that does not know it (what an NRPT rule capturing the " +
				"public name does on Windows).",
			"The proxy's name does not resolve, or nothing answers on its address and port.",
			"A PAC script (--pac) cannot be fetched or fails, so no proxy can be chosen.",
			"The daemon's environment is not your shell's: HTTPS_PROXY set (or missing) in the systemd unit or " +
				"/etc/environment (on Windows, the proxy seen by LocalSystem is what counts).",
		},
		Remedies: []string{
			"Resolve the name as the client does: `getent ahosts NAME`; `resolvectl query NAME` with " +
				"systemd-resolved, else `dig NAME`; check /etc/resolv.conf.",
			"Split DNS: make sure the public IP-HTTPS name goes to a resolver that knows it (`resolvectl domain` " +
				"shows per-link routing domains; dnsmasq `server=/domain/ADDR` lines) - the counterpart of an NRPT " +
				"exemption.",
			remedyProxyShow,
			"`iphttps proxy reset` forgets the cached proxy (the counterpart of `netsh winhttp reset proxy` and " +
				"clearing the ProxyMgr cache). Try without a proxy: `--proxy direct`; name one explicitly: " +
				"`--proxy http://proxy.example.com:3128`; fix or drop the `--pac` script; NO_PROXY exempts the server.",
			"For the service: `systemctl show iphttps-client -p Environment`.",
			remedyLastError,
		},
		Related: []string{"0x2afc"},
	},
	{
		Code: NoData, Symbol: "WSANO_DATA", Family: familyWinsock, Documented: true, Role: RoleClient,
		Message:  "The requested name is valid, but no data of the requested type was found.",
		Reported: "client: no address record or DNS failure; the proxy refused CONNECT (407, 403) or did not answer; the server answered the POST with something other than 200; no router advertisement with a /64 within --ra-timeout; duplicate address detection kept failing; and failures iphttps cannot classify more precisely.",
		Summary:  "Name without address, DNS failure, proxy refused CONNECT, not an IP-HTTPS answer, or no prefix",
		Meaning: "The broad \"something answered, but IP-HTTPS did not come up\" code. Windows groups the same " +
			"causes under it (KB2980635): DNS, proxy, firewall, a server with IP-HTTPS off or no prefix " +
			"published. The Last Error line tells which stage failed.",
		Causes: []string{
			"DNS: the name exists but has no A/AAAA record, the resolver fails (SERVFAIL) or times out, or split " +
				"DNS sends it to an internal server that is unreachable from outside (the NRPT case on Windows).",
			"The proxy refused the CONNECT: 407 (credentials missing or wrong, or an authentication scheme the " +
				"client is not set up for), 403 (its policy forbids the server or port), or it closed without an " +
				"answer.",
			"The server answered the IP-HTTPS POST with something other than 200: a wrong path in the URL, " +
				"IP-HTTPS not enabled there, or another web server on that address.",
			"The connection worked but no router advertisement with a /64 prefix came within --ra-timeout (the " +
				"server publishes no prefix), or duplicate address detection failed repeatedly.",
		},
		Remedies: []string{
			remedyLastError,
			"DNS: `dig A NAME` and `dig AAAA NAME`; publish the address record; check split-DNS routing " +
				"(`resolvectl domain`) as for 0x2af9.",
			remedyProxyShow,
			"Proxy credentials: `--proxy-credentials FILE` (one line user:password), or proxy_user and " +
				"proxy_password in the configuration file (`iphttps client --help` lists the proxy flags); ask " +
				"for CONNECT to the server's port to be allowed " +
				"(squid: the port in SSL_ports and an http_access rule); compare with `--proxy direct`.",
			"Wrong endpoint: the URL's path must be the server's --path (default /IPHTTPS, compared without case); " +
				"an iphttps server answers 404 to another path. `ss -ltnp` on the server shows which program " +
				"owns the port.",
			"No prefix: on the server check `iphttps show interfaces` and --prefix; on slow links raise the " +
				"client's --ra-timeout.",
		},
		Related: []string{"0x2af9", "0x274d"},
	},
	{
		Code: TimedOut, Symbol: "WSAETIMEDOUT", Family: familyWinsock, Documented: true, Role: RoleClient,
		Message: "A connection attempt failed because the connected party did not properly respond after a period " +
			"of time, or established connection failed because connected host has failed to respond.",
		Reported: "client: TCP connect, TLS or the server's answer took longer than --connect-timeout, or an established connection went silent (TCP_USER_TIMEOUT, 30 s).",
		Summary:  "TCP to the server (or proxy) timed out: packets are dropped on the way",
		Meaning: "The most common IP-HTTPS failure: the client's packets to port 443 get no answer at all. " +
			"Something drops them, or nothing is at that address.",
		Causes: []string{
			"A firewall (local, on the path, or in front of the server) drops TCP to the port.",
			"The NAT or port forwarding in front of the server does not lead to it.",
			"DNS gives a wrong or old address; the server is down.",
			"A very slow path and a short --connect-timeout.",
		},
		Remedies: []string{
			"From the client: `nc -vz -w 10 NAME 443`, or `curl -sv --connect-timeout 10 -o /dev/null https://NAME/`.",
			"Compare `getent ahosts NAME` with the server's real public address.",
			"On the server: `ss -ltn 'sport = :443'` (is it listening?), `tcpdump -ni any 'tcp port 443'` (do the " +
				"SYNs arrive?), `nft list ruleset` (are they dropped?), and any cloud security group.",
			"Raise --connect-timeout (default 20s) on slow paths.",
		},
		Related: []string{"0x274d"},
	},
	{
		Code: ConnRefused, Symbol: "WSAECONNREFUSED", Family: familyWinsock, Documented: true, Role: RoleClient,
		Message:  "No connection could be made because the target machine actively refused it.",
		Reported: "client: the server's address answered the TCP connect with a reset.",
		Summary:  "Connection refused: nothing listens on the server's port at that address",
		Meaning: "A host answered, but nothing accepts connections on that port there: the IP-HTTPS server is " +
			"not running, listens elsewhere, or the name leads to another host.",
		Causes: []string{
			"The server is not running, or listens on another port or address (--listen) than the URL says.",
			"The name resolves to the wrong host (an old record, or split DNS giving the internal address).",
			"A firewall rejects the connection with a TCP reset.",
		},
		Remedies: []string{
			"On the server: `systemctl status iphttps-server` and `ss -ltnp 'sport = :443'`.",
			"The URL's port must be the server's --listen port (https://NAME:PORT/IPHTTPS for other than 443).",
			"`getent ahosts NAME` on the client must give the server's public address; fix split DNS as for 0x2afc.",
			"Look for reject rules: `nft list ruleset`.",
		},
		Related: []string{"0x274c", "0x2740"},
	},
	{
		Code: ConnReset, Symbol: "WSAECONNRESET", Family: familyWinsock, Role: RoleClient,
		Message:  "An existing connection was forcibly closed by the remote host.",
		Reported: "client: the connection was reset or closed early, during TLS, the IP-HTTPS request, or the tunnel.",
		Summary:  "The connection was reset or closed during TLS, the request, or the tunnel",
		Meaning: "Windows is not documented to show this code for IP-HTTPS, but it is what iphttps reports when " +
			"the other side cuts the stream. A client that was connected retries at once.",
		Causes: []string{
			"A middlebox (firewall, IPS, a proxy) kills the stream: TLS inspection, or a limit on long-lived connections.",
			"The server closed it: restarted, reached --max-clients, dropped a session that sent something other " +
				"than IPv6 packets, or its --handshake-timeout ran out.",
			"Something that is not an IP-HTTPS server answered on that port and hung up.",
		},
		Remedies: []string{
			"Server side: `journalctl -u iphttps-server` says why it closed; `iphttps show clients` against --max-clients.",
			"Rule out middleboxes: another network, or `--proxy direct`; see whether a proxy inspects TLS with " +
				"`openssl s_client -proxy HOST:PORT -connect NAME:443 -servername NAME` (the issuer must be your CA).",
			remedyLastError,
		},
	},
	{
		Code: ConnAborted, Symbol: "WSAECONNABORTED", Family: familyWinsock, Role: RoleClient,
		Message:  "An established connection was aborted by the software in your host machine.",
		Reported: "client: the local kernel aborted the connection (ECONNABORTED).",
		Summary:  "The local network stack aborted the connection",
		Meaning: "Not documented for IP-HTTPS on Windows. The connection ended on this machine, not at the " +
			"server; usually passing.",
		Causes: []string{
			"A local firewall change or connection-tracking flush.",
			"The local network went away under the connection.",
		},
		Remedies: []string{
			"Usually nothing: the client reconnects on its own, at once when the network comes back.",
			"If it repeats, check local rules (`nft list ruleset`) and `journalctl -k` for the network going down.",
		},
	},
	{
		Code: 0x2742, Symbol: "WSAENETDOWN", Family: familyWinsock, Role: RoleNone,
		Message:  "A socket operation encountered a dead network.",
		Reported: "never: on a host without a working network iphttps reports 0x2743 or a DNS code (0x2af9, 0x2afc).",
		Summary:  "The local network is down (iphttps reports 0x2743 or a DNS code instead)",
		Meaning:  "Windows' code for a socket on a network that is down. Not documented for IP-HTTPS.",
		Causes:   []string{"No usable network: the link is down or has no address."},
		Remedies: []string{
			"`ip link` and `ip addr` (or `nmcli`): bring the network up; the client reconnects as soon as a link, " +
				"an address or a route appears.",
		},
		Related: []string{"0x2743"},
	},
	{
		Code: NetUnreach, Symbol: "WSAENETUNREACH", Family: familyWinsock, Role: RoleClient,
		Message:  "A socket operation was attempted to an unreachable network.",
		Reported: "client: the kernel has no route to the server's (or proxy's) address (ENETUNREACH).",
		Summary:  "No route to the server's address",
		Meaning:  "Not documented for IP-HTTPS on Windows. The client's host does not know where to send packets to the server.",
		Causes: []string{
			"No default route: the network is not up yet, or DHCP has not finished.",
			"The name gives an IPv6 address and the host has no IPv6 route to it (or the reverse for IPv4).",
			"Policy routing (a VPN) sends the server's address nowhere.",
		},
		Remedies: []string{
			"`ip route get ADDR` (and `ip -6 route get ADDR`) shows the route the kernel would take.",
			"Bring the network up; the client reconnects by itself when a route appears.",
		},
	},
	{
		Code: HostUnreach, Symbol: "WSAEHOSTUNREACH", Family: familyWinsock, Role: RoleClient,
		Message:  "A socket operation was attempted to an unreachable host.",
		Reported: "client: EHOSTUNREACH, an ICMP host-unreachable or a failed neighbour lookup.",
		Summary:  "The server's host is unreachable (ICMP host unreachable or no neighbour)",
		Meaning:  "Not documented for IP-HTTPS on Windows. A router or firewall said the host cannot be reached.",
		Causes: []string{
			"A firewall rejects with ICMP host-unreachable.",
			"The next hop (the gateway) does not answer ARP or neighbour solicitations.",
		},
		Remedies: []string{
			"`ip route get ADDR`, `ip neigh show`, and `traceroute -T -p 443 NAME` to see where it stops.",
		},
	},
	{
		Code: 0x32, Symbol: "ERROR_NOT_SUPPORTED", Family: familyWin32, Role: RoleNone,
		Message:  "The request is not supported.",
		Reported: "never: iphttps runs both roles on any Linux host.",
		Summary:  "Role or feature not supported on this Windows edition (no counterpart in iphttps)",
		Meaning: "On Windows, a role or feature the edition does not offer, such as the IP-HTTPS server role on a " +
			"client edition. Not documented as an IP-HTTPS Last Error Code.",
		Causes:   []string{"Windows only: configuring a role the edition does not support."},
		Remedies: []string{"Nothing to do with iphttps; on Windows, configure the server role on a server edition."},
	},
	{
		Code: 0x2EFD, Symbol: "ERROR_WINHTTP_CANNOT_CONNECT", Family: familyWinHTTP, Role: RoleNone,
		Message:  "A connection with the server could not be established",
		Reported: "never: iphttps reports the socket-level code (0x274c, 0x274d, 0x2af9 ...). The HRESULT form 0x80072efd is the same error.",
		Summary:  "WinHTTP could not connect (iphttps reports the socket-level code instead)",
		Meaning: "WinHTTP's code for a failed connection to the server or proxy. Not documented as an IP-HTTPS " +
			"Last Error Code; iphttps does not go through WinHTTP and reports the precise cause.",
		Causes: []string{"As 0x274c (dropped), 0x274d (refused) or 0x2af9 (no such host, proxy unreachable)."},
		Remedies: []string{
			"Look up the code iphttps shows (`iphttps show interfaces`) with `iphttps errcode`.",
		},
		Related: []string{"0x274c", "0x274d", "0x2af9"},
	},
	{
		Code: 0x2EE2, Symbol: "ERROR_WINHTTP_TIMEOUT", Family: familyWinHTTP, Role: RoleNone,
		Message:  "The operation timed out",
		Reported: "never: iphttps reports a timeout as 0x274c (--connect-timeout covers connect, TLS and the answer).",
		Summary:  "WinHTTP timed out (iphttps reports 0x274c instead)",
		Meaning:  "WinHTTP's timeout. Not documented as an IP-HTTPS Last Error Code.",
		Causes:   []string{"As 0x274c."},
		Remedies: []string{"See `iphttps errcode 0x274c`."},
		Related:  []string{"0x274c"},
	},
	{
		Code: NoMoreItems, Symbol: "ERROR_NO_MORE_ITEMS", Family: familyWin32, Documented: true, Role: RoleClient,
		Message:  "No more data is available.",
		Reported: "client: the server certificate fails the name rule (subject CN, SAN) or lacks the Server Authentication usage.",
		Summary:  "The server certificate does not fit the URL (name rule) or lacks Server Authentication",
		Meaning: "TLS worked and the chain is trusted, but the certificate cannot be used for this URL. Windows " +
			"requires the subject CN to be the URL's host name (a SAN match alone is not enough), and so does " +
			"iphttps by default. Name problems get their own status line; trust, expiry and revocation " +
			"problems use the generic one with an HRESULT.",
		Causes: []string{
			"The subject CN is not the URL's host: another name, an alias (CNAME) in the URL, or a wildcard that " +
				"does not cover exactly one label.",
			"The certificate lists DNS names (SAN) and the URL's host is not among them.",
			"The certificate has no subject CN (SAN-only), which IP-HTTPS does not accept.",
			"The extended key usage lacks Server Authentication (1.3.6.1.5.5.7.3.1); iphttps counts this as an " +
				"unusable certificate too.",
			"Windows clients also refuse subjects carrying extra attributes; iphttps checks only CN and SAN.",
		},
		Remedies: []string{
			"Look at the certificate: `openssl s_client -connect NAME:443 -servername NAME </dev/null 2>/dev/null | " +
				"openssl x509 -noout -subject -ext subjectAltName,extendedKeyUsage`.",
			"Reissue it with CN = the URL's host (and the same name in the SAN list) and Server Authentication; " +
				"install it with `iphttps server --cert FILE --key FILE` and restart the server. Keep the subject " +
				"to the CN so Windows clients accept it as well.",
			"Or point the client at the name the certificate carries (the URL argument or `url` in the " +
				"configuration file).",
			"Linux clients only: `--name-rule standard` checks the SAN list as browsers do; Windows clients keep " +
				"the CN rule.",
			remedyLastError,
		},
		Related: []string{"0x800b010f", "0x800b0110"},
	},
	{
		Code: CertUntrustedRoot, Symbol: "CERT_E_UNTRUSTEDROOT", Family: familyCrypto, Documented: true, Role: RoleClient,
		Message:  "A certificate chain processed, but terminated in a root certificate which is not trusted by the trust provider.",
		Reported: "client: the server's chain does not lead to a root in --ca or the system store (also for a missing intermediate).",
		Summary:  "The server certificate does not chain to a trusted root",
		Meaning: "The client does not trust the certificate the server sent. Go's verifier does not tell a " +
			"missing intermediate from an untrusted root, so iphttps reports both with this code (Windows would " +
			"say 0x800b010a for the first).",
		Causes: []string{
			"The root CA is in neither --ca nor the system store (/etc/ssl/certs).",
			"The server sends only its own certificate: the intermediates are missing from its --cert file.",
			"The server uses --self-signed, which makes a new certificate at every start: clients still trust the old one.",
			"A proxy inspects TLS and shows its own certificate (IP-HTTPS cannot work through that).",
			"--ca names the wrong file (a leaf, or another CA).",
		},
		Remedies: []string{
			remedyOpenSSL,
			"Check a chain offline: `openssl verify -CAfile ca.pem -untrusted intermediates.pem server.pem`.",
			remedyTrust,
			"Server: put the intermediates after the server certificate in the --cert PEM file.",
			"--self-signed: give clients the current /run/iphttps/self-signed-NAME.pem with --ca after each " +
				"server start, or use a certificate from a CA.",
			"TLS-inspecting proxy: exempt the server's name from inspection, or bypass the proxy " +
				"(`--proxy direct`, NO_PROXY).",
			"Windows clients of an iphttps server: import the root into the computer's Trusted Root " +
				"Certification Authorities store.",
		},
		Related: []string{"0x800b010a", "0x80090325"},
	},
	{
		Code: CertExpired, Symbol: "CERT_E_EXPIRED", Family: familyCrypto, Documented: true, Role: RoleClient,
		Message: "A required certificate is not within its validity period when verifying against the current " +
			"system clock or the timestamp in the signed file.",
		Reported: "client: the server's certificate (or one in its chain) is expired or not yet valid by the client's clock.",
		Summary:  "The server certificate is expired or not yet valid (check both clocks)",
		Meaning: "The certificate's validity period does not include the client's current time. \"Not yet valid\" " +
			"usually means the client's clock is wrong.",
		Causes: []string{
			"The server certificate or an intermediate has expired.",
			"The client's clock is wrong (no NTP), or a new certificate's start time is still ahead.",
		},
		Remedies: []string{
			"Dates: `openssl s_client -connect NAME:443 -servername NAME </dev/null 2>/dev/null | openssl x509 " +
				"-noout -dates`.",
			"Client clock: `timedatectl` (System clock synchronized: yes) or `chronyc tracking`.",
			"Renew the certificate, install it with --cert/--key and restart the server " +
				"(`systemctl restart iphttps-server`); the server warns at start when its certificate has expired.",
		},
		Related: []string{"0x80090328"},
	},
	{
		Code: RevocationOffline, Symbol: "CRYPT_E_REVOCATION_OFFLINE", Family: familyCrypto, Documented: true, Role: RoleNone,
		Message:  "The revocation function was unable to check revocation because the revocation server was offline.",
		Reported: reportedNoRevocation,
		Summary:  "Revocation could not be checked: the CRL distribution point is unreachable",
		Meaning: "A Windows client could not fetch the CRL for the server certificate. Windows 7 always insists " +
			"on the check; later versions only with StrongCRLRequired. It matters for Windows clients of an " +
			"iphttps server.",
		Causes: []string{
			"The CRL distribution point in the certificate cannot be reached from the Internet, or needs authentication.",
			"The CRL (or delta CRL) is not published, or has expired.",
			"The client is behind a captive portal or a proxy that wants authentication.",
			"A stale CRL cache on the Windows client.",
		},
		Remedies: []string{
			remedyWinRevocation,
			"Or issue the server certificate from a CA whose CRLs are public.",
		},
		Related: []string{"0x80092012", "0x800b010e"},
	},
	{
		Code: IllegalMessage, Symbol: "SEC_E_ILLEGAL_MESSAGE", Family: familySSPI, Documented: true, Role: RoleClient,
		Message:  "The message received was unexpected or badly formatted.",
		Reported: "client: the server (or a device in front of it) ended the TLS handshake with an alert.",
		Summary:  "The TLS handshake failed: the server sent an alert",
		Meaning: "The handshake broke off with an alert from the other side. A failure right after the client's " +
			"first message points to versions or cipher suites; a failure after the server asked for a client " +
			"certificate points to client authentication.",
		Causes: []string{
			"The server runs `--auth-mode certificates` and rejects the client's certificate (not from its " +
				"--client-ca, expired, or without Client Authentication).",
			"No common TLS version or cipher suite (for example --tls-min-version 1.3 on the server; Windows 7 " +
				"clients need --tls-min-version 1.0).",
			"A load balancer in front of the server is set up for client certificates and rejects the client.",
		},
		Remedies: []string{
			"`openssl s_client -connect NAME:443 -servername NAME` shows the alert; add `-tls1_2` or `-tls1_3` to " +
				"test versions.",
			"`journalctl -u iphttps-server` on the server says why it refused.",
			"Client certificate: `--cert FILE --key FILE`, issued by the server's --client-ca, with Client " +
				"Authentication.",
			"Adjust the server's --tls-min-version to what its clients speak.",
		},
		Related: []string{"0x90320", "0x80090331"},
	},
	{
		Code: IncompleteCredentials, Symbol: "SEC_I_INCOMPLETE_CREDENTIALS", Family: familySSPI, Documented: true, Role: RoleClient,
		Message:  "The credentials supplied were not complete, and could not be verified. The context could not be initialized.",
		Reported: "client: the server asked for a client certificate during TLS and none is configured (--cert/--key).",
		Summary:  "The server requires a client certificate and none is configured",
		Meaning: "The server (or a device in front of it) authenticates clients by certificate during the TLS " +
			"handshake, and this client has none to give. netsh shows the code as 0x90320.",
		Causes: []string{
			"The server runs `--auth-mode certificates` (or a front end does TLS pre-authentication).",
			"The client has no --cert/--key, or (Windows) no machine certificate from the required CA.",
		},
		Remedies: []string{
			"Give the client `--cert client.pem --key client.key` (cert and key in the configuration file), " +
				"issued by the CA the server trusts (its --client-ca) with Client Authentication.",
			"`openssl s_client -connect NAME:443 -servername NAME` lists the CA names the server accepts.",
			"If client certificates are not intended, run the server with `--auth-mode none` (what DirectAccess servers use).",
		},
		Related: []string{"0x80090326"},
	},
	{
		Code: CertUnknown, Symbol: "SEC_E_CERT_UNKNOWN", Family: familySSPI, Role: RoleBoth,
		Message:  "An unknown error occurred while processing the certificate.",
		Reported: "client: the server's certificate is invalid for another reason, or the server sent none; server: its --cert/--key or --client-ca cannot be loaded.",
		Summary:  "A certificate could not be used (client: invalid otherwise; server: --cert/--key cannot be loaded)",
		Meaning: "Not documented as an IP-HTTPS Last Error Code on Windows. iphttps uses it for certificate " +
			"failures that have no more precise code.",
		Causes: []string{
			"Client: the chain breaks a rule other than trust, time or name (name constraints, a CA " +
				"certificate not allowed to sign, path length), or the server sent no certificate.",
			"Server: the --cert or --key file is not valid PEM, the key does not belong to the certificate, or " +
				"the --client-ca bundle holds no usable certificate.",
		},
		Remedies: []string{
			"Inspect: `openssl x509 -in server.pem -noout -text`.",
			"Key and certificate must match: `openssl x509 -in server.pem -noout -pubkey | sha256sum` and " +
				"`openssl pkey -in server.key -pubout | sha256sum` print the same.",
			"The server's one-line error names the file; the client's reason is in `iphttps show interfaces` (Last Error).",
		},
		Related: []string{"0x2", "0x800b0109"},
	},
	{
		Code: 0x800B010F, Symbol: "CERT_E_CN_NO_MATCH", Family: familyCrypto, Role: RoleNone,
		Message:  "The certificate's CN name does not match the passed value.",
		Reported: "never: like Windows, iphttps reports a name mismatch as 0x103.",
		Summary:  "Certificate name mismatch (IP-HTTPS reports 0x103 instead)",
		Meaning:  "The generic name-mismatch code. IP-HTTPS on Windows reports it as 0x103, \"No usable certificate(s) found\".",
		Causes:   []string{"As 0x103."},
		Remedies: []string{"See `iphttps errcode 0x103`."},
		Related:  []string{"0x103"},
	},
	{
		Code: 0x800B010A, Symbol: "CERT_E_CHAINING", Family: familyCrypto, Role: RoleNone,
		Message:  "A certificate chain could not be built to a trusted root authority.",
		Reported: "never: iphttps reports a chain it cannot build as 0x800b0109.",
		Summary:  "No chain to a trusted root, often a missing intermediate (iphttps reports 0x800b0109)",
		Meaning:  "Not documented for IP-HTTPS. Usually the server does not send its intermediate certificates.",
		Causes:   []string{"The intermediates are missing from the server's --cert file, or the root is not trusted."},
		Remedies: []string{
			"Put the intermediates after the server certificate in the --cert PEM file.",
			remedyTrust,
		},
		Related: []string{"0x800b0109"},
	},
	{
		Code: 0x800B010C, Symbol: "CERT_E_REVOKED", Family: familyCrypto, Role: RoleNone,
		Message:  "A certificate was explicitly revoked by its issuer.",
		Reported: reportedNoRevocation,
		Summary:  "The server certificate has been revoked",
		Meaning:  "Not documented for IP-HTTPS. A Windows client found the server's certificate on its issuer's CRL.",
		Causes:   []string{"The CA revoked the server certificate (on purpose, or the wrong serial)."},
		Remedies: []string{"Issue a new server certificate, install it with --cert/--key and restart the server."},
		Related:  []string{"0x80092010"},
	},
	{
		Code: Revoked, Symbol: "CRYPT_E_REVOKED", Family: familyCrypto, Role: RoleNone,
		Message:  "The certificate is revoked.",
		Reported: reportedNoRevocation,
		Summary:  "The server certificate is on its CA's revocation list",
		Meaning:  "Not documented for IP-HTTPS. The chain-level form of 0x800b010c.",
		Causes:   []string{"The CA revoked the server certificate or an intermediate."},
		Remedies: []string{"Issue a new server certificate, install it with --cert/--key and restart the server."},
		Related:  []string{"0x800b010c"},
	},
	{
		Code: 0x800B010E, Symbol: "CERT_E_REVOCATION_FAILURE", Family: familyCrypto, Role: RoleNone,
		Message:  "The revocation process could not continue - the certificate(s) could not be checked.",
		Reported: reportedNoRevocation,
		Summary:  "Revocation checking failed",
		Meaning:  "Not documented for IP-HTTPS. The generic form of the revocation failures.",
		Causes:   []string{"As 0x80092013: the CRL cannot be fetched or used."},
		Remedies: []string{remedyWinRevocation},
		Related:  []string{"0x80092013"},
	},
	{
		Code: 0x80092012, Symbol: "CRYPT_E_NO_REVOCATION_CHECK", Family: familyCrypto, Role: RoleNone,
		Message:  "The revocation function was unable to check revocation for the certificate.",
		Reported: reportedNoRevocation,
		Summary:  "The certificate cannot be checked for revocation (no CRL distribution point, or bad CRL)",
		Meaning: "Not documented for IP-HTTPS. Seen when Windows must check revocation (StrongCRLRequired) and " +
			"the certificate gives no usable way to do so.",
		Causes: []string{"The certificate has no CRL distribution point, or the CRL cannot be parsed."},
		Remedies: []string{
			"Issue the server certificate from a CA that writes a CRL distribution point into it.",
			remedyWinRevocation,
		},
		Related: []string{"0x80092013"},
	},
	{
		Code: CertWrongUsage, Symbol: "CERT_E_WRONG_USAGE", Family: familyCrypto, Role: RoleNone,
		Message:  "The certificate is not valid for the requested usage.",
		Reported: "never: iphttps reports a server certificate without Server Authentication as 0x103.",
		Summary:  "The certificate lacks the needed usage (iphttps reports 0x103)",
		Meaning:  "Not documented for IP-HTTPS. The extended key usage does not include Server Authentication.",
		Causes:   []string{"The server certificate was issued from a template without Server Authentication."},
		Remedies: []string{
			"Check: `openssl x509 -in server.pem -noout -ext extendedKeyUsage` must list TLS Web Server " +
				"Authentication; reissue it if not.",
		},
		Related: []string{"0x103"},
	},
	{
		Code: 0x80090325, Symbol: "SEC_E_UNTRUSTED_ROOT", Family: familySSPI, Role: RoleNone,
		Message:  "The certificate chain was issued by an authority that is not trusted.",
		Reported: "never: iphttps reports an untrusted root as 0x800b0109.",
		Summary:  "Untrusted root, SChannel's form (iphttps reports 0x800b0109)",
		Meaning:  "Not documented for IP-HTTPS. The same problem as 0x800b0109.",
		Causes:   []string{"As 0x800b0109."},
		Remedies: []string{"See `iphttps errcode 0x800b0109`."},
		Related:  []string{"0x800b0109"},
	},
	{
		Code: 0x80090322, Symbol: "SEC_E_WRONG_PRINCIPAL", Family: familySSPI, Role: RoleNone,
		Message:  "The target principal name is incorrect.",
		Reported: "never: iphttps reports a name mismatch as 0x103.",
		Summary:  "Name mismatch, SChannel's form (iphttps reports 0x103)",
		Meaning:  "Not documented for IP-HTTPS. The same problem as 0x103.",
		Causes:   []string{"As 0x103."},
		Remedies: []string{"See `iphttps errcode 0x103`."},
		Related:  []string{"0x103"},
	},
	{
		Code: 0x80090328, Symbol: "SEC_E_CERT_EXPIRED", Family: familySSPI, Role: RoleNone,
		Message:  "The received certificate has expired.",
		Reported: "never: iphttps reports an expired certificate as 0x800b0101.",
		Summary:  "Expired certificate, SChannel's form (iphttps reports 0x800b0101)",
		Meaning:  "Not documented for IP-HTTPS. The same problem as 0x800b0101.",
		Causes:   []string{"As 0x800b0101."},
		Remedies: []string{"See `iphttps errcode 0x800b0101`."},
		Related:  []string{"0x800b0101"},
	},
	{
		Code: 0x80090331, Symbol: "SEC_E_ALGORITHM_MISMATCH", Family: familySSPI, Role: RoleNone,
		Message:  "The client and server cannot communicate, because they do not possess a common algorithm.",
		Reported: "never: the server's handshake-failure alert makes iphttps report 0x80090326.",
		Summary:  "No common TLS version or cipher suite (iphttps reports 0x80090326)",
		Meaning:  "Not documented for IP-HTTPS. Client and server share no TLS version or cipher suite.",
		Causes: []string{
			"The server's --tls-min-version is above what the client speaks (Windows 7 clients need 1.0); " +
				"iphttps clients speak TLS 1.2 and 1.3.",
		},
		Remedies: []string{
			"Test versions with `openssl s_client -connect NAME:443 -servername NAME -tls1_2` (or -tls1_3) and " +
				"set the server's --tls-min-version accordingly.",
		},
		Related: []string{"0x80090326"},
	},
	{
		Code: AddrInUse, Symbol: "WSAEADDRINUSE", Family: familyWinsock, Role: RoleServer,
		Message:  "Only one usage of each socket address (protocol/network address/port) is normally permitted.",
		Reported: "server: at start, the --listen address and port are taken by another program.",
		Summary:  "The server's listen port is taken by another program",
		Meaning: "The Linux side of Windows' http.sys URL reservation: on Windows several services share port " +
			"443 through http.sys reservations, and a broken reservation stops IP-HTTPS. On Linux one socket " +
			"owns an address and port, so the server cannot start while another program holds it.",
		Causes: []string{
			"A web server (nginx, apache), another iphttps server, or an instance still stopping holds the port.",
			"--listen overlaps another program's address (`:443` covers every address).",
		},
		Remedies: []string{
			"Find the owner: `ss -ltnp 'sport = :443'`; stop it, or give the server another `--listen ADDR:PORT` " +
				"(clients then need https://NAME:PORT/IPHTTPS).",
			"To share 443 with a web server, put a TCP-mode front end that routes by SNI (haproxy `mode tcp`, " +
				"nginx `stream` with `ssl_preread`) before both, forwarding the IP-HTTPS name to iphttps on " +
				"another port; or let it terminate TLS and run `iphttps server --plain-http` behind it (TCP mode, " +
				"not an HTTP proxy).",
			"Binding to 443 needs root or CAP_NET_BIND_SERVICE.",
		},
		Related: []string{"0x274d"},
	},
	{
		Code: FileNotFound, Symbol: "ERROR_FILE_NOT_FOUND", Family: familyWin32, Role: RoleServer,
		Message:  "The system cannot find the file specified.",
		Reported: "server: at start, the --cert, --key or --client-ca file does not exist, or the --self-signed certificate cannot be written next to the control socket.",
		Summary:  "The server's certificate, key or CA file is missing",
		Meaning:  "iphttps' own use of the Win32 code: the server cannot start without its certificate files.",
		Causes: []string{
			"A wrong path in --cert, --key or --client-ca (or cert, key, client_ca in the configuration file).",
			"The systemd unit's sandbox hides the file, or /run/iphttps cannot be written for --self-signed.",
		},
		Remedies: []string{
			"`ls -l` the paths from the server's one-line error; use absolute paths.",
			"For the service, keep the files under /etc/iphttps (readable by the unit) and check " +
				"`systemctl cat iphttps-server` for RuntimeDirectory and the sandbox settings.",
		},
		Related: []string{"0x80090327"},
	},
	{
		Code: InvalidParameter, Symbol: "ERROR_INVALID_PARAMETER", Family: familyWin32, Role: RoleServer,
		Message:  "The parameter is incorrect.",
		Reported: "server: at start, a setting is wrong; the message names it.",
		Summary:  "A server setting is wrong (the message names it)",
		Meaning:  "iphttps' own use of the Win32 code: the server's configuration cannot work as given.",
		Causes: []string{
			"No --prefix, or one that is not an IPv6 /64; a --route or --host-address that is not IPv6.",
			"`--auth-mode certificates` without --client-ca; both --cert and --self-signed; no certificate at all.",
			"A --tls-min-version other than 1.0, 1.1, 1.2 or 1.3; a non-positive --max-clients.",
		},
		Remedies: []string{
			"Read the one-line error: it names the setting; `iphttps server --help` lists the flags, and " +
				"examples/server.toml the configuration keys.",
		},
	},
}
