package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// transferSize is the size of each TCP transfer.
const transferSize = 200 << 20

// TestTunnel runs one lab with a server and two clients (authentication
// mode none) and checks, each as its own subtest: addresses, pings, bulk
// TCP transfers and the anti-spoofing filter (last, as it alters cli1).
func TestTunnel(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipt1-", Clients: 2})
	addrs := startLab(t, l)
	cli1, cli2 := l.ClientNS(1), l.ClientNS(2)

	t.Run("Addresses", func(t *testing.T) {
		for i := 1; i <= 2; i++ {
			s, err := l.Status(context.Background(), lab.ClientName(i))
			if err != nil {
				t.Fatal(err)
			}
			if s.State != "LinkUp" || s.InterfaceStatus != lab.StatusActive || s.LastErrorCode != 0 {
				t.Errorf("%s: state %q, interface status %q, last error code 0x%X; want LinkUp, %q, 0x0",
					lab.ClientName(i), s.State, s.InterfaceStatus, s.LastErrorCode, lab.StatusActive)
			}
			if !s.Offload {
				t.Errorf("%s: TUN offload is off; this kernel offers it (IFF_VNET_HDR, TUNSETOFFLOAD), so --offload auto must use it", lab.ClientName(i))
			}
			a, ok := lab.LinkAddr(s)
			if !ok || !lab.LinkPrefixValue().Contains(a) {
				t.Errorf("%s: no address from %s in %v", lab.ClientName(i), lab.LinkPrefix, s.Addresses)
			}
			t.Logf("%s: %v", lab.ClientName(i), s.Addresses)
		}
		if addrs[0] == addrs[1] {
			t.Errorf("both clients have the address %s", addrs[0])
		}
	})

	t.Run("ServerQueue", func(t *testing.T) {
		// The server's one TUN reader serves every client: its device
		// queues 4096 packets, not the kernel's default 500.
		out, err := exec.Command("ip", "-n", l.NS(lab.RoleEdge), "-o", "link", "show", lab.ServerDevice).CombinedOutput()
		if err != nil {
			t.Fatalf("ip link show: %v: %s", err, out)
		}
		if !strings.Contains(string(out), " qlen 4096") {
			t.Errorf("server TUN device: want qlen 4096, got %s", out)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		t.Run("cli1-intranet", func(t *testing.T) { mustPing(t, l, cli1, lab.IntranetHost) })
		t.Run("cli1-cli2", func(t *testing.T) { mustPing(t, l, cli1, addrs[1].String()) })
		t.Run("cli2-cli1", func(t *testing.T) { mustPing(t, l, cli2, addrs[0].String()) })
	})

	t.Run("Transfer", func(t *testing.T) {
		t.Run("cli1-intranet", func(t *testing.T) {
			transfer(t, cli1, l.NS(lab.RoleCorp), mustAddr(t, lab.IntranetHost), transferSize, 180*time.Second)
		})
		t.Run("cli1-cli2", func(t *testing.T) {
			transfer(t, cli1, cli2, addrs[1], transferSize, 180*time.Second)
		})
	})

	t.Run("SpoofedSource", func(t *testing.T) {
		s, err := l.Status(context.Background(), "cli1")
		if err != nil {
			t.Fatal(err)
		}
		dev := s.Device
		if dev == "" {
			dev = lab.ClientDevice
		}
		before := counter(t, l, "drop_spoofed_source")
		probes := 0
		for _, src := range []string{addrs[1].String(), "2001:db8:99::1"} {
			if out, err := l.Exec(cli1, "ip", "-6", "addr", "add", src+"/128", "dev", dev, "nodad"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			t.Cleanup(func() { _, _ = l.Exec(cli1, "ip", "-6", "addr", "del", src+"/128", "dev", dev) })
			out, err := ping(l, cli1, lab.IntranetHost, "-I", src)
			probes += transmitted(out)
			if err == nil || exitCode(err) != 1 {
				t.Errorf("ping from spoofed source %s: want no reply (exit status 1), got %v\n%s", src, err, out)
			}
		}
		after := counter(t, l, "drop_spoofed_source")
		t.Logf("drop_spoofed_source %d -> %d after %d probes", before, after, probes)
		if probes < 6 {
			t.Errorf("only %d probes were sent, want 6", probes)
		}
		if after-before < uint64(probes) {
			t.Errorf("drop_spoofed_source grew by %d, want at least %d (the probes sent)", after-before, probes)
		}
		// No other client noticed.
		mustPing(t, l, cli2, lab.IntranetHost)
	})
}

// transmittedRE matches ping's summary line.
var transmittedRE = regexp.MustCompile(`(\d+) packets transmitted`)

// transmitted is the number of probes ping says it sent.
func transmitted(out string) int {
	m := transmittedRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
