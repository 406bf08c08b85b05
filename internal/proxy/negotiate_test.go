package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/iphttps/iphttps/internal/winerr"
)

func TestParseAuth(t *testing.T) {
	for in, want := range map[string]string{"": AuthAuto, "auto": AuthAuto, "Basic": AuthBasic, "negotiate": AuthNegotiate} {
		if got, err := ParseAuth(in); err != nil || got != want {
			t.Errorf("ParseAuth(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"ntlm", "kerberos", "digest"} {
		if _, err := ParseAuth(in); err == nil {
			t.Errorf("ParseAuth(%q) accepted", in)
		}
	}
}

func TestChallenges(t *testing.T) {
	str := func(cs []challenge) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.scheme+"{"+c.data+"}")
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"Negotiate"}, "Negotiate{}"},
		{[]string{"Negotiate", `Basic realm="proxy"`}, `Negotiate{} Basic{realm="proxy"}`},
		{[]string{`Basic realm="a, b", Negotiate`}, `Basic{realm="a, b"} Negotiate{}`},
		{[]string{`Digest realm="x", qop="auth", nonce="n", Negotiate YII=, NTLM`}, `Digest{realm="x", qop="auth", nonce="n"} Negotiate{YII=} NTLM{}`},
		{[]string{`Basic realm = "x", charset="UTF-8"`}, `Basic{realm = "x", charset="UTF-8"}`},
		{[]string{`Basic realm="q\"uo,te"`, ""}, `Basic{realm="q\"uo,te"}`},
		{[]string{`realm="orphan"`}, ""},
	} {
		if got := str(challenges(c.in)); got != c.want {
			t.Errorf("challenges(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// testKrb5Conf writes a krb5.conf of realm EXAMPLE.TEST whose KDC is kdc.
func testKrb5Conf(t *testing.T, kdc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "krb5.conf")
	writeFile(t, p, fmt.Sprintf("[libdefaults]\n default_realm = EXAMPLE.TEST\n dns_lookup_kdc = false\n[realms]\n EXAMPLE.TEST = {\n  kdc = %s\n }\n", kdc))
	return p
}

func TestChoose(t *testing.T) {
	k, err := LoadKerberos(testKrb5Conf(t, "127.0.0.1:88"), "")
	if err != nil {
		t.Fatal(err)
	}
	neg, basic, both, ntlm := "Negotiate", `Basic realm="x"`, `Negotiate, Basic realm="x"`, "NTLM"
	for _, c := range []struct {
		name    string
		p       Proxy
		offer   string
		want    string
		whyWord string
	}{
		{"auto prefers Negotiate", Proxy{User: "alice", Kerberos: k}, both, schemeNegotiate, ""},
		{"auto: Basic without Kerberos", Proxy{User: "alice"}, both, schemeBasic, ""},
		{"auto: Basic when Negotiate not offered", Proxy{User: "alice", Kerberos: k}, basic, schemeBasic, ""},
		{"basic never Negotiate", Proxy{User: "alice", Auth: AuthBasic, Kerberos: k}, both, schemeBasic, ""},
		{"negotiate never Basic", Proxy{User: "alice", Auth: AuthNegotiate, Kerberos: k}, basic, "", "does not offer Negotiate"},
		{"negotiate", Proxy{User: "alice", Auth: AuthNegotiate, Kerberos: k}, both, schemeNegotiate, ""},
		{"Negotiate without Kerberos", Proxy{User: "alice"}, neg, "", "--proxy-krb5-conf"},
		{"Kerberos without credentials", Proxy{Kerberos: k}, neg, "", "--proxy-keytab"},
		{"no credentials at all", Proxy{}, basic, "", "--proxy-credentials"},
		{"only NTLM", Proxy{User: "alice", Kerberos: k}, ntlm, "", "only Basic and Negotiate"},
		{"basic, Negotiate only", Proxy{User: "alice", Auth: AuthBasic, Kerberos: k}, neg, "", "does not offer Basic"},
	} {
		got, why := c.p.choose(challenges([]string{c.offer}))
		if got != c.want || (c.whyWord != "" && !strings.Contains(why, c.whyWord)) {
			t.Errorf("%s: %q (why %q), want %q (why mentioning %q)", c.name, got, why, c.want, c.whyWord)
		}
	}
}

func TestLoadKerberos(t *testing.T) {
	conf := testKrb5Conf(t, "127.0.0.1:88")
	kt := keytab.New()
	if err := kt.AddEntry("svc/client", "OTHER.TEST", "secret", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		t.Fatal(err)
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ktPath := filepath.Join(t.TempDir(), "client.keytab")
	if err := os.WriteFile(ktPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKerberos(conf, ktPath)
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]string{"": "svc/client@OTHER.TEST", "bob": "bob@EXAMPLE.TEST", "bob@B.TEST": "bob@B.TEST"} {
		if name, realm, err := k.principal(user); err != nil || name+"@"+realm != want {
			t.Errorf("principal(%q) = %s@%s, %v; want %s", user, name, realm, err, want)
		}
	}
	for _, bad := range [][2]string{{"", ""}, {filepath.Join(t.TempDir(), "none"), ""}, {conf, filepath.Join(t.TempDir(), "none")}, {conf, conf}} {
		if _, err := LoadKerberos(bad[0], bad[1]); err == nil {
			t.Errorf("LoadKerberos(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

const negotiate407 = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n"

// TestConnectNegotiateFails: a proxy offering Negotiate and Basic, a client
// with Kerberos whose KDC refuses connections: 0x2AFC naming the ticket it
// could not get, and no fallback to Basic (the proxy sees one request).
func TestConnectNegotiateFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadKDC := ln.Addr().String()
	ln.Close()
	k, err := LoadKerberos(testKrb5Conf(t, deadKDC), "")
	if err != nil {
		t.Fatal(err)
	}
	p, got := fakeProxy(t, negotiate407, "HTTP/1.1 200 Connection established\r\n\r\n")
	p.User, p.Password, p.Kerberos = "alice", "s3cret", k
	_, err = Connect(ctx, &d, p, "da.example.test:443")
	code, _ := winerr.CodeOf(err)
	if want := "Kerberos: cannot get a ticket for HTTP/127.0.0.1@EXAMPLE.TEST as alice@EXAMPLE.TEST"; code != winerr.NoData || err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "407") {
		t.Errorf("dead KDC: %v (code %s), want 0x2afc and %q", err, winerr.Hex(code), want)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password: %v", err)
	}
	<-got
	select {
	case r := <-got:
		t.Errorf("a second request after Negotiate failed (Proxy-Authorization %q): no fallback to Basic", r.Header.Get("Proxy-Authorization"))
	case <-time.After(100 * time.Millisecond):
	}

	// proxy_auth basic: the same proxy gets Basic.
	p, got = fakeProxy(t, negotiate407, "HTTP/1.1 200 Connection established\r\n\r\n")
	p.User, p.Password, p.Kerberos, p.Auth = "alice", "s3cret", k, AuthBasic
	conn, err := Connect(ctx, &d, p, "da.example.test:443")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	<-got
	if r := <-got; !strings.HasPrefix(r.Header.Get("Proxy-Authorization"), "Basic ") {
		t.Errorf("proxy_auth basic sent %q", r.Header.Get("Proxy-Authorization"))
	}
}

// TestConnectNegotiateCancel: a KDC that never answers does not hold
// Connect past its context.
func TestConnectNegotiateCancel(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	k, err := LoadKerberos(testKrb5Conf(t, pc.LocalAddr().String()), "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := fakeProxy(t, negotiate407)
	p.User, p.Password, p.Kerberos = "alice", "s3cret", k
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var d net.Dialer
	start := time.Now()
	_, err = Connect(ctx, &d, p, "da.example.test:443")
	if took := time.Since(start); err == nil || took > 2*time.Second || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
		t.Errorf("silent KDC: %v after %s, want the context's deadline within 2s", err, took)
	}
}
