package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/iphttps/iphttps/internal/lab"
)

// curlProxyError is curl's exit code for a proxy handshake that failed
// (CURLE_PROXY, curl 7.73 and later), a SOCKS5 failure reply among them;
// socksFailWithin bounds how long such a failure may take: the client
// answers at once when the destination is unreachable, and curl's own
// timeout (--max-time 10) is far above it.
const (
	curlProxyError  = 97
	socksFailWithin = 3 * time.Second
)

// nobody is the unprivileged user the rootless client runs as (Debian's
// nobody:nogroup).
const nobody = 65534

// TestUserspaceClient runs the client as nobody, with no capabilities, in
// --userspace mode: no TUN device appears in its namespace, yet curl reaches
// the intranet web server by its IPv6 address through the SOCKS5 listener
// and through the HTTP proxy listener, and a TCP transfer through SOCKS5
// arrives intact (SHA-256).
func TestUserspaceClient(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipu-", Clients: 1})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	const socks, httpProxy = "127.0.0.1:1080", "127.0.0.1:3128"
	if _, err := l.StartClientAs(1, nobody, nobody, "--userspace", "--socks", socks, "--http-proxy", httpProxy,
		"--reconnect-initial", "1s", "--reconnect-max", "3s"); err != nil {
		t.Fatal(err)
	}
	st := waitActive(t, l, 1)
	ns := l.ClientNS(1)

	if st.Device != "userspace" || st.Offload {
		t.Errorf("status: device %q offload %v, want userspace, off", st.Device, st.Offload)
	}
	for _, want := range []string{"socks5://" + socks, "http://" + httpProxy} {
		if !slices.Contains(st.Listeners, want) {
			t.Errorf("status listeners %v: %s missing", st.Listeners, want)
		}
	}
	// It really is unprivileged.
	proc, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", l.PID("cli1")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", nobody, nobody, nobody, nobody), "CapEff:\t0000000000000000"} {
		if !strings.Contains(string(proc), want) {
			t.Errorf("client process status lacks %q:\n%s", want, proc)
		}
	}
	// No TUN device, and no address from the tunnel's prefix, in the namespace.
	out, err := l.Exec(ns, "ip", "-d", "-o", "link", "show")
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	if strings.Contains(string(out), " tun ") {
		t.Errorf("a TUN device exists in %s:\n%s", ns, out)
	}
	out, _ = l.Exec(ns, "ip", "-6", "-o", "addr", "show")
	if strings.Contains(string(out), "2001:db8:1:") {
		t.Errorf("a tunnel address is configured in %s's kernel:\n%s", ns, out)
	}

	page := "http://[" + lab.IntranetHost + "]/"
	for _, via := range [][]string{{"--socks5", socks}, {"--proxy", "http://" + httpProxy}, {"--proxytunnel", "--proxy", "http://" + httpProxy}} {
		args := append([]string{"curl", "-sS", "--max-time", "10"}, via...)
		out, err := l.Exec(ns, append(args, page)...)
		if err != nil || !strings.Contains(string(out), "Hello from the intranet host") {
			t.Fatalf("curl %v %s: %v\n%s", via, page, err, out)
		}
		if !strings.Contains(string(out), "You came from ["+strings.TrimSuffix(lab.LinkPrefixValue().Addr().String(), ":")) {
			t.Errorf("curl %v: the page did not see a tunnel address as the source:\n%s", via, out)
		}
		t.Logf("curl %s %s: %s", strings.Join(via, " "), page, strings.SplitN(string(out), "\n", 2)[0])
	}
	// A destination outside the tunnel's routes and unreachable directly
	// gets a SOCKS failure, not a hang: curl ends with its proxy error (97,
	// the SOCKS5 reply refused the connection), not its timeout (28), and
	// well before --max-time. The client keeps serving (below).
	start := time.Now()
	out, err = l.Exec(ns, "curl", "-sS", "--max-time", "10", "--socks5", socks, "http://[2001:db8:99::1]/")
	took := time.Since(start)
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Errorf("curl to an unrouted destination succeeded:\n%s", out)
	case !errors.As(err, &exit):
		t.Errorf("curl to an unrouted destination: %v\n%s", err, out)
	case exit.ExitCode() != curlProxyError || !strings.Contains(string(out), "SOCKS5"):
		t.Errorf("curl to an unrouted destination: exit code %d after %v, want %d (a SOCKS5 failure, not a timeout):\n%s", exit.ExitCode(), took.Round(time.Millisecond), curlProxyError, out)
	case took > socksFailWithin:
		t.Errorf("curl to an unrouted destination got its SOCKS5 failure after %v, want within %v", took.Round(time.Millisecond), socksFailWithin)
	default:
		t.Logf("curl to an unrouted destination: exit %d after %v: %s", exit.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(string(out)))
	}

	// TCP through SOCKS5 with a hash check: the dialer reaches the
	// listener inside the client's namespace.
	sd, err := proxy.SOCKS5("tcp", socks, nil, dialerFunc(lab.Dialer(ns)))
	if err != nil {
		t.Fatal(err)
	}
	dial := sd.(proxy.ContextDialer).DialContext
	transferVia(t, ns+" via SOCKS5", dial, l.NS(lab.RoleCorp), mustAddr(t, lab.IntranetHost), 64<<20, 90*time.Second)

	// Same reconnect as the kernel mode: the server dies and comes back;
	// the address (and the in-process stack) stays, and the listeners work
	// again.
	if err := l.KillServer(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	again := waitActive(t, l, 1)
	if a, _ := lab.LinkAddr(again); a != mustAddr(t, strings.Split(st.Addresses[0], "/")[0]) {
		t.Errorf("address after reconnect %v, before %v", again.Addresses, st.Addresses)
	}
	if out, err := l.Exec(ns, "curl", "-sS", "--max-time", "10", "--socks5", socks, page); err != nil || !strings.Contains(string(out), "Hello from the intranet host") {
		t.Fatalf("curl over SOCKS5 after the server restart: %v\n%s", err, out)
	}

	if err := l.StopClient(1); err != nil {
		t.Fatalf("rootless client stop: %v", err)
	}
}

// dialerFunc makes a dial function a proxy.Dialer.
type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
