package lab

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/testenv"
)

// TestApr1 checks the password hash against `openssl passwd -apr1 -salt`.
func TestApr1(t *testing.T) {
	for _, c := range []struct{ pw, salt, want string }{
		{"labpass", "abcdefgh", "$apr1$abcdefgh$lyImvh3q2du94ay/Xto4y."},
		{"pass:word", "12345678", "$apr1$12345678$7e0iQjKSrvoFWVs1Q4Oo50"},
		{"a", "xyz", "$apr1$xyz$odYVLrjkS4l6qI0ES65Ug1"},
	} {
		if got := apr1(c.pw, c.salt); got != c.want {
			t.Errorf("apr1(%q, %q) = %q, want %q", c.pw, c.salt, got, c.want)
		}
	}
	if s := randomSalt(); len(s) != 8 || strings.Trim(s, cryptAlphabet) != "" {
		t.Errorf("randomSalt = %q", s)
	}
}

// TestNCSAAuthAcceptsApr1 runs squid's helper on a password file the lab
// writes (without squid, a skip, or under CI a failure).
func TestNCSAAuthAcceptsApr1(t *testing.T) {
	testenv.Require(t, checkTools([]Tool{{Name: ncsaAuth, Package: "squid"}}))
	f := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(f, []byte(ProxyUser+":"+apr1(ProxyPassword, randomSalt())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ncsaAuth, f)
	cmd.Stdin = strings.NewReader(ProxyUser + " " + ProxyPassword + "\n" + ProxyUser + " wrong\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", ncsaAuth, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || strings.TrimSpace(lines[0]) != "OK" || !strings.HasPrefix(lines[1], "ERR") {
		t.Fatalf("basic_ncsa_auth answered %q, want OK then ERR", out)
	}
}

func TestSquidService(t *testing.T) {
	alnum := regexp.MustCompile(`^[a-zA-Z0-9]{1,32}$`)
	a80, a81 := netip.MustParseAddr(ProxyAddr), netip.MustParseAddr(ProxyAddr2)
	seen := map[string]bool{}
	for _, prefix := range []string{"iphttps-", "ipt1-", "abcdefghijklmnopqrstuvwx"} {
		for _, a := range []netip.Addr{a80, a81} {
			s := squidService(prefix, a)
			if !alnum.MatchString(s) {
				t.Errorf("squidService(%q, %s) = %q: squid wants 1 to 32 alphanumerics", prefix, a, s)
			}
			if seen[s] {
				t.Errorf("squidService(%q, %s) = %q twice", prefix, a, s)
			}
			seen[s] = true
		}
	}
}

// TestSquidConf checks the generated configuration, then has squid parse
// it (without squid, a skip, or under CI a failure, once the configuration
// itself is checked).
func TestSquidConf(t *testing.T) {
	d := t.TempDir()
	var confs [][2]string // name, configuration
	for _, c := range []struct {
		name   string
		o      ProxyOptions
		want   []string
		unwant []string
	}{
		{"open", ProxyOptions{}, []string{"http_port 192.0.2.80:3128", "cache deny all", "http_access deny CONNECT !SSL_ports", "http_access allow lab_clients"},
			[]string{"auth_param", "cache_dir", "deny CONNECT iphttps_server"}},
		{"auth", ProxyOptions{Auth: true}, []string{"auth_param basic program " + ncsaAuth + " " + filepath.Join(d, "passwd"), "http_access deny !authenticated"}, nil},
		{"deny", ProxyOptions{DenyServer: true}, []string{"acl iphttps_server dstdomain " + ServerName, "http_access deny CONNECT iphttps_server"}, []string{"auth_param"}},
	} {
		passwd := ""
		if c.o.Auth {
			passwd = filepath.Join(d, "passwd")
		}
		conf := squidConf(d, ProxyAddr, passwd, c.o)
		for _, w := range append(c.want, "cache_effective_user proxy", "pid_filename "+filepath.Join(d, "squid.pid"), "access_log stdio:"+filepath.Join(d, "access.log")) {
			if !strings.Contains(conf, w+"\n") {
				t.Errorf("%s: configuration lacks %q:\n%s", c.name, w, conf)
			}
		}
		for _, w := range c.unwant {
			if strings.Contains(conf, w) {
				t.Errorf("%s: configuration has %q:\n%s", c.name, w, conf)
			}
		}
		confs = append(confs, [2]string{c.name, conf})
	}
	for _, c := range confs {
		squidParse(t, filepath.Join(d, c[0]+".conf"), c[1])
	}
}

// squidParse has squid parse the configuration conf (written to file f) and
// fails t on any complaint. Without squid, t skips (or under CI fails).
func squidParse(t *testing.T, f, conf string) {
	t.Helper()
	testenv.Require(t, checkTools([]Tool{{Name: "squid", Package: "squid"}}))
	squid, err := lookTool("squid")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, squid, "-k", "parse", "-f", f).CombinedOutput()
	if err != nil || regexp.MustCompile(`(?m)(FATAL|ERROR|WARNING)`).Match(out) {
		t.Errorf("%s: squid -k parse: %v\n%s", filepath.Base(f), err, out)
	}
}

// TestProxyLab runs the lab's squid in every mode and the BlockDirect rule
// (root only), with a plain TCP listener standing in for the server, and
// checks that Down leaves no squid and no shared memory behind.
func TestProxyLab(t *testing.T) {
	testenv.RequireRoot(t, "creates network namespaces")
	testenv.Require(t, CheckTools())
	testenv.Require(t, CheckProxyTools())
	const prefix = "iplp-"
	l, err := Up(context.Background(), Options{Prefix: prefix, Clients: 1, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })
	srv, err := Listen(l.NS(RoleEdge), "tcp", net.JoinHostPort(ServerIPv4, "443"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from the server\n"))
			c.Close()
		}
	}()
	cli := l.ClientNS(1)
	target := net.JoinHostPort(ServerName, "443")
	direct := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := Dialer(cli)(ctx, "tcp", net.JoinHostPort(ServerIPv4, "443"))
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := direct(); err != nil {
		t.Fatalf("direct connection before BlockDirect: %v", err)
	}
	if err := l.BlockDirect(); err != nil {
		t.Fatal(err)
	}
	if err := l.BlockDirect(); err != nil {
		t.Fatalf("BlockDirect again: %v", err)
	}
	if err := direct(); err == nil {
		t.Fatal("direct connection works after BlockDirect")
	}
	if n, err := l.DirectBlocked(); err != nil || n == 0 {
		t.Errorf("DirectBlocked = %d, %v; want > 0", n, err)
	}

	open, err := l.StartProxy(ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := l.StartProxy(ProxyOptions{Addr: ProxyAddr2, Auth: true})
	if err != nil {
		t.Fatal(err)
	}
	if open != "192.0.2.80:3128" || auth != "192.0.2.81:3128" || ProxyURL(open) != "http://192.0.2.80:3128" || ProxyURL(ProxyAddr2) != "http://192.0.2.81:3128" {
		t.Fatalf("proxy addresses %q %q", open, auth)
	}
	good := ProxyUser + ":" + ProxyPassword
	for _, c := range []struct {
		proxy, creds string
		want         int
	}{
		{open, "", 200},
		{auth, "", 407},
		{auth, ProxyUser + ":wrong", 407},
		{auth, good, 200},
	} {
		code, body, err := connectVia(cli, c.proxy, target, c.creds)
		if err != nil || code != c.want {
			t.Errorf("CONNECT %s via %s (credentials %q): %d, %v; want %d", target, c.proxy, c.creds, code, err, c.want)
		}
		if code == 200 && body != "hello from the server\n" {
			t.Errorf("through %s: read %q", c.proxy, body)
		}
	}
	if err := l.StopProxy(ProxyAddr); err != nil {
		t.Errorf("StopProxy: %v", err)
	}
	if _, err := l.StartProxy(ProxyOptions{DenyServer: true}); err != nil {
		t.Fatal(err)
	}
	if code, _, err := connectVia(cli, open, target, ""); err != nil || code != 403 {
		t.Errorf("CONNECT %s via the denying proxy: %d, %v; want 403", target, code, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(l.ProxyAccessLog(ProxyAddr2))
		if strings.Contains(string(b), "CONNECT "+target+" "+ProxyUser+" ") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("access log of %s lacks the authenticated CONNECT:\n%s", ProxyAddr2, b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := l.UnblockDirect(); err != nil {
		t.Fatal(err)
	}
	if err := direct(); err != nil {
		t.Errorf("direct connection after UnblockDirect: %v", err)
	}
	if err := l.BlockDirect(); err != nil { // for Down to remove
		t.Fatal(err)
	}

	pids := []int{l.PID(ProxyName(ProxyAddr)), l.PID(ProxyName(ProxyAddr2))}
	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	waitGone(pids, 2*time.Second)
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("squid (pid %d) still runs after Down", pid)
		}
	}
	for _, a := range []string{ProxyAddr, ProxyAddr2} {
		if left, _ := filepath.Glob(filepath.Join(shmDir, squidService(prefix, netip.MustParseAddr(a))+"-*")); len(left) > 0 {
			t.Errorf("shared memory left after Down: %v", left)
		}
	}
}

// connectVia sends CONNECT target through proxy from namespace ns (with
// Basic credentials "user:password" if not empty) and returns the status
// code and, on 200, what the far end sent.
func connectVia(ns, proxy, target, creds string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dialer(ns)(ctx, "tcp", proxy)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if creds != "" {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(creds)) + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		return 0, "", err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return resp.StatusCode, "", nil
	}
	line, err := br.ReadString('\n')
	return resp.StatusCode, line, err
}
