package tput

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/iphttps/iphttps/internal/bench/netbench"
	"github.com/iphttps/iphttps/internal/bench/tlspump"
)

// ocservUser is the benchmark's only VPN user.
const ocservUser = "bench"

// ocservFiles are ocserv's configuration, its password file, and the
// client's configuration script.
type ocservFiles struct {
	Config   string
	Script   string
	Password string
}

// ocservConf is the server configuration: CSTP only (no udp-port, so no
// DTLS), TLS 1.3 with AES-128-GCM only, addresses from documentation
// ranges, no routes pushed, everything else at ocserv's defaults.
var ocservConf = template.Must(template.New("ocserv.conf").Parse(`# ocserv for iphttps-bench throughput: CSTP (IP over TLS over TCP) only.
auth = "plain[passwd={{.Dir}}/ocpasswd]"
listen-host = {{.Listen}}
tcp-port = {{.Port}}
run-as-user = nobody
run-as-group = nogroup
socket-file = {{.Dir}}/ocserv.sock
pid-file = {{.Dir}}/ocserv.pid
server-cert = {{.Cert}}
server-key = {{.Key}}
isolate-workers = false
use-occtl = false
max-clients = 2
max-same-clients = 2
keepalive = 3600
dpd = 600
mobile-dpd = 600
try-mtu-discovery = false
auth-timeout = 30
cookie-timeout = 300
rekey-time = 172800
rekey-method = ssl
device = {{.Device}}
predictable-ips = true
ping-leases = false
ipv4-network = {{.Pool4}}
ipv6-network = {{.Pool6}}
ipv6-subnet-prefix = 128
tls-priorities = "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM"
cisco-client-compat = false
dtls-legacy = false
`))

// vpncScript is openconnect's configuration script: it only brings the
// TUN device up with the MTU and addresses the server assigned, and routes
// the tunnel's own documentation ranges into it. No DNS, no default route.
var vpncScript = template.Must(template.New("vpnc-script").Parse(`#!/bin/sh
# vpnc-script for iphttps-bench throughput (runs inside {{.NS}}).
case "$reason" in
connect)
	ip link set dev "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1280}"
	if [ -n "$INTERNAL_IP4_ADDRESS" ]; then
		ip addr replace "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
		ip route replace {{.Pool4}} dev "$TUNDEV"
	fi
	if [ -n "$INTERNAL_IP6_NETMASK" ]; then
		ip -6 addr replace "$INTERNAL_IP6_NETMASK" dev "$TUNDEV" nodad
	elif [ -n "$INTERNAL_IP6_ADDRESS" ]; then
		ip -6 addr replace "$INTERNAL_IP6_ADDRESS/128" dev "$TUNDEV" nodad
	fi
	ip -6 route replace {{.Pool6}} dev "$TUNDEV"
	;;
esac
exit 0
`))

// writeOcservFiles writes the configuration, a password file (made with
// ocpasswd, for a random password) and the client script into dir.
func writeOcservFiles(ctx context.Context, dir string, cert tlspump.Cert, listen string) (*ocservFiles, error) {
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	f := &ocservFiles{
		Config:   filepath.Join(dir, "ocserv.conf"),
		Script:   filepath.Join(dir, "vpnc-script"),
		Password: hex.EncodeToString(pw),
	}
	data := map[string]any{
		"Dir": dir, "Listen": listen, "Port": ocservPort, "Cert": cert.CertFile, "Key": cert.KeyFile,
		"Device": ocservSrvDev, "Pool4": ocservPool4, "Pool6": ocservPool6, "NS": NSCli,
	}
	if err := writeTemplate(f.Config, 0o644, ocservConf, data); err != nil {
		return nil, err
	}
	if err := writeTemplate(f.Script, 0o755, vpncScript, data); err != nil {
		return nil, err
	}
	// ocpasswd reads the password twice from standard input when it is not
	// a terminal.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(pctx, "ocpasswd", "-c", filepath.Join(dir, "ocpasswd"), ocservUser)
	cmd.Stdin = strings.NewReader(f.Password + "\n" + f.Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ocpasswd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return f, nil
}

func writeTemplate(path string, mode os.FileMode, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("%s: %w", t.Name(), err)
	}
	if err := os.WriteFile(path, []byte(b.String()), mode); err != nil {
		return fmt.Errorf("write %s: %w", t.Name(), err)
	}
	return nil
}

// clientArgs is the openconnect command line: AnyConnect protocol, no
// DTLS, the password from standard input, the server pinned by its key.
func (f *ocservFiles) clientArgs(server, pin string) []string {
	return []string{"openconnect", "--protocol=anyconnect", "--user=" + ocservUser,
		"--passwd-on-stdin", "--non-inter", "--servercert", pin, "--no-dtls",
		"--script", f.Script, "--interface=" + ocservCliDev,
		"https://" + net.JoinHostPort(server, strconv.Itoa(ocservPort)) + "/"}
}

// ocservServerAddr finds ocserv's per-client TUN device in the server
// namespace and its global IPv6 address (the tunnel's server end).
func ocservServerAddr(ctx context.Context) (dev, addr string) {
	out, err := netbench.Output(ctx, "", 5*time.Second, "ip", "-n", NSSrv, "-6", "-o", "addr", "show", "scope", "global")
	if err != nil {
		return "", ""
	}
	return parseAddrLines(string(out), ocservSrvDev)
}

// parseAddrLines picks, from `ip -o addr show` output, the first device
// whose name starts with devPrefix and its address (without the length).
func parseAddrLines(out, devPrefix string) (dev, addr string) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[1], devPrefix) || (f[2] != "inet6" && f[2] != "inet") {
			continue
		}
		a, _, _ := strings.Cut(f[3], "/")
		return f[1], a
	}
	return "", ""
}

var openconnectSuiteRE = regexp.MustCompile(`Connected to HTTPS on \S+ with ciphersuite (\S+)`)

// parseOpenconnectSuite reads the negotiated TLS parameters from
// openconnect's output, e.g.
// "(TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)-(AES-128-GCM)".
func parseOpenconnectSuite(log string) string {
	if m := openconnectSuiteRE.FindStringSubmatch(log); m != nil {
		return m[1]
	}
	return ""
}
