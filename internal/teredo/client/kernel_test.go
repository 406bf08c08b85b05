package client

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	hostside "github.com/iphttps/iphttps/internal/client"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/testenv"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/tundev"
)

// kernelLink is fakeLink with a real kernel TUN device as the host, and a
// pump in place of the host side's reader: what the kernel routes into the
// device goes to the attached sender.
type kernelLink struct {
	*fakeLink
	kh hostside.Host
}

func (k *kernelLink) Host() hostside.Host { return k.kh }

// newKernelLink creates the TUN device dev (MTU 1280) in ns, as the client's
// host side does, and starts the pump; both end with the test.
func newKernelLink(t *testing.T, ns, dev string, routes ...netip.Prefix) *kernelLink {
	t.Helper()
	testenv.RequireRoot(t, "creates a TUN device")
	k := &kernelLink{fakeLink: newFakeLink(t, routes...)}
	netnstest.Do(t, ns, func() error {
		var err error
		k.kh, err = hostside.KernelHost(dev, tundev.OffloadOff)()
		return err
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := tundev.NewReadBatch(k.kh, hostside.LinkMTU)
		var pkts [][]byte
		for {
			n, err := batch.Read(k.kh)
			pkts = pkts[:0]
			for i := range n {
				pkts = append(pkts, batch.Packet(i))
			}
			k.mu.Lock()
			s := k.sender
			k.mu.Unlock()
			if s != nil && len(pkts) > 0 {
				s.Send(pkts)
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() {
		k.kh.Close()
		<-done
	})
	return k
}

// The kernel's own ping, through a real TUN device: the address (/128) and
// routes the client puts on the device work, the kernel picks the Teredo
// address as the source, the echo test through the server (the relay)
// lets the first packet through, and the replies reach ping.
func TestKernelPing(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "ping", "iputils-ping")
	f := newFixture(t, restricted, true)
	k := newKernelLink(t, f.cli, "teredo0", intranet)
	tr := newTransport(t, Options{})
	f.start(tr, k)
	me := waitState(t, k.fakeLink, StateQualified, 5*time.Second).Address

	link, ok := netnstest.LinkShow(t, f.cli, "teredo0")
	if !ok || link.MTU != 1280 {
		t.Fatalf("teredo0: %+v", link)
	}
	found := false
	for _, a := range link.Addrs {
		found = found || a.Local == me && a.PrefixLen == 128
	}
	if !found {
		t.Fatalf("teredo0 addresses %+v, want %s/128", link.Addrs, me)
	}
	routes := map[string]bool{}
	for _, rt := range netnstest.Routes(t, f.cli, "-6") {
		if rt.Dev == "teredo0" {
			routes[rt.Dst] = true
		}
	}
	if !routes["2001::/32"] || !routes[intranet.String()] {
		t.Fatalf("routes via teredo0: %v", routes)
	}

	out, err := execIn(f.cli, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", intranetHost.String())
	if err != nil || !strings.Contains(string(out), " 0% packet loss") {
		t.Fatalf("ping %s: %v\n%s", intranetHost, err, out)
	}
	if c := tr.Counters(); c["echo_tests_passed"] != 1 || c["packets_up"] != 3 || c["packets_down"] != 3 {
		t.Errorf("counters %v", c)
	}
	f.mu.Lock()
	for _, p := range f.toHost[1:] {
		if src := packet.Src(p); src.String() != me {
			t.Errorf("relayed packet from %v, want the Teredo address %s", src, me)
		}
	}
	f.mu.Unlock()
}
