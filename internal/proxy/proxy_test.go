package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/winerr"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRoutes(t *testing.T) {
	cache := &Cache{Path: filepath.Join(t.TempDir(), "c.json")}
	target := "da.example.test:443"
	str := func(rs []Route) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Proxy.String()+"("+r.Source+")")
		}
		return strings.Join(s, " ")
	}
	cases := []struct {
		name string
		c    Config
		want string
	}{
		{"nothing: direct", Config{Getenv: env(nil)}, "direct()"},
		{"explicit direct ignores env", Config{Explicit: Direct, Getenv: env(map[string]string{"HTTPS_PROXY": "http://p:3128"})}, "direct()"},
		{"explicit", Config{Explicit: "http://192.0.2.80:3128"}, "http://192.0.2.80:3128(configuration)"},
		{"explicit without scheme and port", Config{Explicit: "proxy.example"}, "http://proxy.example:80(configuration)"},
		{"env upper", Config{Getenv: env(map[string]string{"HTTPS_PROXY": "http://192.0.2.80:3128"})}, "http://192.0.2.80:3128(environment)"},
		{"env lower", Config{Getenv: env(map[string]string{"https_proxy": "192.0.2.80:3128"})}, "http://192.0.2.80:3128(environment)"},
		{"no_proxy exact", Config{Getenv: env(map[string]string{"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "da.example.test"})}, "direct()"},
		{"no_proxy domain", Config{Getenv: env(map[string]string{"HTTPS_PROXY": "http://p:3128", "no_proxy": ".example.test"})}, "direct()"},
		{"no_proxy other", Config{Getenv: env(map[string]string{"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "other.test"})}, "http://p:3128(environment)"},
	}
	for _, c := range cases {
		rs, err := c.c.Routes(context.Background(), target)
		if err != nil || str(rs) != c.want {
			t.Errorf("%s: %s (%v), want %s", c.name, str(rs), err, c.want)
		}
	}
	if err := cache.Store(target, "http://192.0.2.81:3128"); err != nil {
		t.Fatal(err)
	}
	rs, _ := Config{Explicit: "http://192.0.2.80:3128", User: "u", Password: "p", Cache: cache}.Routes(context.Background(), target)
	if got := str(rs); got != "http://192.0.2.81:3128(cache) http://192.0.2.80:3128(configuration)" || rs[0].Proxy.User != "u" {
		t.Errorf("with cache: %s %+v", got, rs[0].Proxy)
	}
	rs, _ = Config{Explicit: "http://192.0.2.81:3128", Cache: cache}.Routes(context.Background(), target)
	if got := str(rs); got != "http://192.0.2.81:3128(configuration)" {
		t.Errorf("cache equal to configuration is tried once: %s", got)
	}
	rs, _ = Config{Explicit: Direct, Cache: cache}.Routes(context.Background(), target)
	if got := str(rs); got != "direct()" {
		t.Errorf("direct configuration does not use the cache: %s", got)
	}
	// The cache belongs to one server.
	rs, _ = Config{Explicit: "http://192.0.2.80:3128", Cache: cache}.Routes(context.Background(), "other.example.test:443")
	if got := str(rs); got != "http://192.0.2.80:3128(configuration)" {
		t.Errorf("cache used for another server: %s", got)
	}
	// Credentials in one proxy's URL never go to the cached proxy.
	rs, _ = Config{Getenv: env(map[string]string{"HTTPS_PROXY": "http://alice:s3cret@192.0.2.80:3128"}), Cache: cache}.Routes(context.Background(), target)
	if len(rs) != 2 || rs[0].Source != "cache" || rs[0].Proxy.User != "" || rs[1].Proxy.User != "alice" {
		t.Errorf("credentials crossed proxies: %+v", rs)
	}
	if err := cache.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, ok := cache.Load(target); ok {
		t.Error("cache not reset")
	}
	if _, err := (Config{Explicit: "socks5://p:1080"}).Routes(context.Background(), target); err == nil {
		t.Error("socks5 accepted")
	}
	_, err := Config{Getenv: env(map[string]string{"HTTPS_PROXY": "socks5://alice:s3cret@p:1080"})}.Routes(context.Background(), target)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password or accepts socks5: %v", err)
	}
	for in, want := range map[string]string{
		"http://alice:s3cret@p:3128": "http://alice:xxxxx@p:3128",
		"http://p:3128":              "http://p:3128",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeProxy answers the CONNECT requests of one connection with answers, in
// turn, and reports the requests.
func fakeProxy(t *testing.T, answers ...string) (Proxy, <-chan *http.Request) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan *http.Request, len(answers))
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for _, a := range answers {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			got <- req
			io.WriteString(c, a)
		}
		io.Copy(io.Discard, c)
	}()
	p, _ := Parse("http://" + ln.Addr().String())
	return p, got
}

const basic407 = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 5\r\n\r\ndenied"

func TestConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer

	// Challenge first, then Basic on the same connection.
	p, got := fakeProxy(t, basic407[:len(basic407)-1], "HTTP/1.1 200 Connection established\r\n\r\nHELLO")
	p.User, p.Password = "lab", "labpass"
	conn, err := Connect(ctx, &d, p, "da.example.test:443")
	if err != nil {
		t.Fatal(err)
	}
	first, second := <-got, <-got
	if first.Method != "CONNECT" || first.Host != "da.example.test:443" || first.RequestURI != "da.example.test:443" {
		t.Errorf("request %s %s host %s", first.Method, first.RequestURI, first.Host)
	}
	if first.Header.Get("Proxy-Authorization") != "" {
		t.Error("credentials sent before the proxy asked for them")
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("lab:labpass")); second.Header.Get("Proxy-Authorization") != want {
		t.Errorf("Proxy-Authorization %q", second.Header.Get("Proxy-Authorization"))
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(conn, b); err != nil || string(b) != "HELLO" {
		t.Errorf("bytes after the answer lost: %q %v", b, err)
	}
	conn.Close()

	// A scheme we do not speak: the 407 is reported.
	p, _ = fakeProxy(t, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Digest realm=\"x\"\r\nContent-Length: 0\r\n\r\n")
	p.User, p.Password = "lab", "labpass"
	if _, err := Connect(ctx, &d, p, "da.example.test:443"); err == nil || !strings.Contains(err.Error(), "407") {
		t.Errorf("Digest-only proxy: %v", err)
	}

	for _, c := range []struct{ answer, words string }{
		{basic407[:len(basic407)-1], "requires authentication"},
		{"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "refused CONNECT"},
		{"garbage\r\n\r\n", "no answer"},
	} {
		p, _ := fakeProxy(t, c.answer)
		_, err := Connect(ctx, &d, p, "da.example.test:443")
		if code, _ := winerr.CodeOf(err); code != winerr.NoData || !strings.Contains(err.Error(), c.words) {
			t.Errorf("answer %q: %v (code %s), want 0x2afc and %q", c.answer, err, winerr.Hex(code), c.words)
		}
	}

	// Nothing listens: the proxy cannot be reached.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead, _ := Parse("http://" + ln.Addr().String())
	ln.Close()
	_, err = Connect(ctx, &d, dead, "da.example.test:443")
	if code, _ := winerr.CodeOf(err); code != winerr.HostNotFound || !strings.Contains(err.Error(), "proxy") {
		t.Errorf("dead proxy: %v, want 0x2af9", err)
	}
}

func TestReadCredentials(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cred")
	for content, ok := range map[string]bool{"lab:labpass\n": true, "lab:pa:ss": true, "nocolon": false, ":x": false} {
		writeFile(t, p, content)
		u, pw, err := ReadCredentials(p)
		if (err == nil) != ok {
			t.Errorf("%q: %v", content, err)
		}
		if ok && (u != "lab" || pw == "") {
			t.Errorf("%q: %q %q", content, u, pw)
		}
	}
}
