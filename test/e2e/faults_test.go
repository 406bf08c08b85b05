package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// TestTUNRemoved deletes each daemon's TUN device under it: the daemon must
// notice, say so, and exit non-zero (for its supervisor to restart it)
// instead of reporting an active interface that carries nothing.
func TestTUNRemoved(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "iptr-", Clients: 1})
	startLab(t, l)
	cases := []struct {
		name, ns, dev string
		stop          func() error
	}{
		{lab.ClientName(1), l.ClientNS(1), lab.ClientDevice, func() error { return l.StopClient(1) }},
		{"server", l.NS(lab.RoleEdge), lab.ServerDevice, l.StopServer},
	}
	for _, c := range cases {
		if out, err := l.Exec(c.ns, "ip", "link", "del", c.dev); err != nil {
			t.Fatalf("ip link del %s: %v\n%s", c.dev, err, out)
		}
		deadline := time.Now().Add(10 * time.Second)
		for l.Running(c.name) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if l.Running(c.name) {
			t.Fatalf("%s still runs 10 s after its TUN device %s was deleted", c.name, c.dev)
		}
		if err := c.stop(); err == nil {
			t.Errorf("%s exited with status 0 after losing its TUN device; want non-zero", c.name)
		}
		log, _ := os.ReadFile(l.LogFile(c.name))
		if !strings.Contains(string(log), "was removed") {
			t.Errorf("%s's log does not say the device was removed:\n%s", c.name, lab.LogTail(l.LogFile(c.name), 10))
		}
	}
}

// TestServerStopsWithPendingConnections stops the server while one peer sits
// in the TLS handshake and another has sent half a request head: shutdown
// must close them at once and exit 0, not wait for their deadlines.
func TestServerStopsWithPendingConnections(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "iptp-", Clients: 1})
	startLab(t, l)
	pem, err := os.ReadFile(l.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	server := net.JoinHostPort(lab.ServerIPv4, "443")
	var silent net.Conn
	var half *tls.Conn
	if err := l.Do(l.ClientNS(1), func() error {
		var err error
		if silent, err = net.DialTimeout("tcp", server, 5*time.Second); err != nil {
			return err
		}
		raw, err := net.DialTimeout("tcp", server, 5*time.Second)
		if err != nil {
			return err
		}
		half = tls.Client(raw, &tls.Config{ServerName: lab.ServerName, RootCAs: roots})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	defer half.Close()
	half.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := half.Write([]byte("POST /IPHTTPS HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server reach both phases
	start := time.Now()
	if err := l.StopServer(); err != nil {
		t.Fatalf("server stop: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the server took %v to stop (its handshake and head deadlines are 10 s)", d)
	}
	t.Logf("server stopped in %v with two connections pending", time.Since(start).Round(time.Millisecond))
}
