package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/iphttps/iphttps/internal/lab"
)

// TestProxyPAC lets a PAC script choose the proxy: the first proxy it names
// is down, the second (a real squid) carries the tunnel; direct access is
// blocked, so only the PAC's choice can work.
func TestProxyPAC(t *testing.T) {
	l := proxyLab(t, "iptq-", 1, true)
	good := startProxy(t, l, lab.ProxyOptions{Addr: lab.ProxyAddr2})
	pac := filepath.Join(l.Dir(), "proxy.pac")
	script := `function FindProxyForURL(url, host) {
	if (isPlainHostName(host) || dnsDomainIs(host, ".corp.test")) return "DIRECT";
	if (shExpMatch(url, "https://da.*.test/*") && !isInNet(host, "10.0.0.0", "255.0.0.0"))
		return "PROXY ` + lab.ProxyAddr + `:3128; PROXY ` + lab.ProxyAddr2 + `:3128; DIRECT";
	return "DIRECT";
}`
	if err := os.WriteFile(pac, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	startProxyClient(t, l, 1, nil, "--pac", pac)
	waitProxyActive(t, l, 1, good)
}
