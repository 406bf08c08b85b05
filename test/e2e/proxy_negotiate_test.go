package e2e

import (
	"regexp"
	"testing"

	"github.com/iphttps/iphttps/internal/lab"
)

// negotiateProxy2Name is the DNS name of the second Negotiate proxy, on
// lab.ProxyAddr2.
const negotiateProxy2Name = "krbproxy2.example.test"

// TestProxyNegotiate runs a real MIT KDC (krb5kdc) and squid requiring
// Kerberos (negotiate_kerberos_auth, with the keytab of
// HTTP/krbproxy.example.test) in the Internet router; the clients' direct
// way to the server is blocked. The client must get a ticket from the KDC
// and answer squid's 407 with Negotiate: with the password from
// --proxy-credentials and with a keytab it comes up; with a wrong password,
// or without Kerberos configured, it reports 0x2afc and why. A second squid
// offers Negotiate and Basic: a client with Kerberos configured answers
// Negotiate, one with only Basic credentials answers Basic; when its keytab
// goes stale, the client reports the rejected ticket.
func TestProxyNegotiate(t *testing.T) {
	requireLab(t)
	if err := lab.CheckProxyTools(); err != nil {
		t.Fatal(err)
	}
	if err := lab.CheckKerberosTools(); err != nil {
		t.Fatal(err)
	}
	l := newLab(t, lab.Options{Prefix: "ipxk-", Clients: 6, DNSRecords: []string{
		lab.KerberosProxyRecord(lab.ProxyAddr),
		negotiateProxy2Name + "," + lab.ProxyAddr2,
	}})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	if err := l.BlockDirect(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartKDC(); err != nil {
		t.Fatal(err)
	}
	startProxy(t, l, lab.ProxyOptions{Negotiate: lab.KerberosProxyName})
	startProxy(t, l, lab.ProxyOptions{Addr: lab.ProxyAddr2, Negotiate: negotiateProxy2Name, Auth: true})
	url := lab.ProxyURL(lab.KerberosProxyName)
	url2 := lab.ProxyURL(negotiateProxy2Name)
	keytab, err := l.KerberosKeytab()
	if err != nil {
		t.Fatal(err)
	}
	krb := []string{"--proxy-krb5-conf", l.Krb5Conf()}
	good := writeCredentials(t, l, "krb-good.credentials", lab.KerberosUser+":"+lab.KerberosPassword)
	bad := writeCredentials(t, l, "krb-bad.credentials", lab.KerberosUser+":wrong")
	basic := writeCredentials(t, l, "basic.credentials", lab.ProxyUser+":"+lab.ProxyPassword)
	startProxyClient(t, l, 1, nil, append([]string{"--proxy", url, "--proxy-credentials", good}, krb...)...)
	startProxyClient(t, l, 2, nil, append([]string{"--proxy", url, "--proxy-credentials", bad}, krb...)...)
	startProxyClient(t, l, 3, nil, append([]string{"--proxy", url, "--proxy-keytab", keytab, "--proxy-auth", "negotiate"}, krb...)...)
	startProxyClient(t, l, 4, nil, "--proxy", url, "--proxy-credentials", basic)
	startProxyClient(t, l, 5, nil, append([]string{"--proxy", url2, "--proxy-credentials", good}, krb...)...)
	startProxyClient(t, l, 6, nil, "--proxy", url2, "--proxy-credentials", basic)

	spn := "HTTP/" + lab.KerberosProxyName + "@" + lab.KerberosRealm
	principal := lab.KerberosUser + "@" + lab.KerberosRealm
	t.Run("Password", func(t *testing.T) { waitProxyActive(t, l, 1, url) })
	t.Run("WrongPassword", func(t *testing.T) {
		s := waitFailure(t, l, 2, codeNoData, "Kerberos: cannot get a ticket for "+spn+" as "+principal)
		if !regexp.MustCompile(`407`).MatchString(s.LastError) {
			t.Errorf("last error %q does not name the proxy's 407", s.LastError)
		}
	})
	t.Run("Keytab", func(t *testing.T) { waitProxyActive(t, l, 3, url) })
	t.Run("NoKerberos", func(t *testing.T) { waitFailure(t, l, 4, codeNoData, "--proxy-krb5-conf") })
	t.Run("NegotiatePreferred", func(t *testing.T) { waitProxyActive(t, l, 5, url2) })
	t.Run("BasicFallback", func(t *testing.T) { waitProxyActive(t, l, 6, url2) })
	t.Run("AccessLog", func(t *testing.T) {
		tunnel := func(i int, user string) *regexp.Regexp {
			return regexp.MustCompile(`(?m)^.* ` + regexp.QuoteMeta(lab.ClientIPv4(i)) + ` TCP_TUNNEL/200 \d+ CONNECT ` +
				regexp.QuoteMeta(lab.ServerName+":443") + ` ` + regexp.QuoteMeta(user) + ` .*$`)
		}
		for _, c := range []struct {
			i    int
			ip   string
			user string
		}{{1, lab.ProxyAddr, principal}, {3, lab.ProxyAddr, principal}, {5, lab.ProxyAddr2, principal}, {6, lab.ProxyAddr2, lab.ProxyUser}} {
			if err := l.StopClient(c.i); err != nil {
				t.Errorf("stop %s: %v", lab.ClientName(c.i), err)
			}
			t.Logf("squid: %s", waitAccessLog(t, l, c.ip, tunnel(c.i, c.user)))
		}
		waitAccessLog(t, l, lab.ProxyAddr, regexp.MustCompile(`(?m)^.* `+regexp.QuoteMeta(lab.ClientIPv4(4))+` TCP_DENIED/407 .*$`))
	})
	// The second proxy's keytab goes stale: the client gets a ticket the
	// proxy cannot read, and must not fall back to Basic.
	t.Run("TicketRejected", func(t *testing.T) {
		if err := l.ChangeServiceKey(negotiateProxy2Name); err != nil {
			t.Fatal(err)
		}
		startProxyClient(t, l, 5, nil, append([]string{"--proxy", url2, "--proxy-credentials", good}, krb...)...)
		waitFailure(t, l, 5, codeNoData, "rejected the Kerberos ticket of "+principal+" for HTTP/"+negotiateProxy2Name+"@"+lab.KerberosRealm)
	})
}
