package lab

import (
	"os"
	"strings"
	"testing"
)

// TestHAProxyConfInDocs keeps the haproxy.cfg that docs/deployment.md shows
// equal to the one the scale-out lab generates and TestScaleOut runs.
func TestHAProxyConfInDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const begin, end = "<!-- haproxy.cfg:begin", "<!-- haproxy.cfg:end -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/deployment.md has no %q ... %q section", begin, end)
	}
	block := doc[i:j]
	block = block[strings.Index(block, "\n")+1:]
	block = strings.TrimPrefix(block, "```\n")
	block = strings.TrimSuffix(block, "```\n")
	want := HAProxyConf("/run/haproxy/admin.sock", ServerIPv4, ScaleOutOptions{Servers: 2, ProxyProtocol: true})
	if block != want {
		t.Errorf("docs/deployment.md shows another haproxy.cfg than the lab generates; the lab's:\n%s\nthe document's:\n%s", want, block)
	}
}

func TestParseHAProxyStat(t *testing.T) {
	csv := "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n" +
		"iphttps_in,FRONTEND,,,4,4,4000,9,0,0,0,0,0,,,,,OPEN,\n" +
		"iphttps,srv1,0,0,2,2,,4,0,0,,0,,0,0,0,0,UP,1\n" +
		"iphttps,srv2,0,0,0,2,,5,0,0,,0,,3,0,0,0,DOWN 1/2,1\n" +
		"iphttps,BACKEND,0,0,2,4,400,9,0,0,0,0,,3,0,0,0,UP,1\n"
	got, err := parseHAProxyStat(csv, "iphttps")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["srv1"] != "UP" || got["srv2"] != "DOWN" {
		t.Errorf("got %v, want srv1 UP and srv2 DOWN only", got)
	}
	if _, err := parseHAProxyStat("Unknown command\n", "iphttps"); err == nil {
		t.Error("an answer without the CSV header parsed")
	}
}

func TestScaleAddresses(t *testing.T) {
	for i := 1; i <= maxScaleServers; i++ {
		if ScaleServerIPv4(i) == ScaleEdgeIPv4(i) || ScalePrefix(i).Overlaps(ScalePrefix(i+1)) {
			t.Fatalf("server %d: addresses clash", i)
		}
	}
	if ScalePrefix(1).String() != LinkPrefix {
		t.Errorf("server 1's prefix %s, want LinkPrefix %s", ScalePrefix(1), LinkPrefix)
	}
	if got := ScaleServerIPv4(maxScaleServers); got != "192.0.2.254" {
		t.Errorf("the last server's address %s, want 192.0.2.254", got)
	}
}
