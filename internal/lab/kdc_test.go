package lab

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestKerberosConf checks the generated KDC profile and krb5.conf: files
// only in the KDC directory, the KDC only on KDCAddr.
func TestKerberosConf(t *testing.T) {
	d := t.TempDir()
	kdc := kdcConf(d)
	for _, w := range []string{
		"kdc_listen = " + KDCAddr + ":88", "kdc_tcp_listen = " + KDCAddr + ":88",
		KerberosRealm + " = {", "database_name = " + filepath.Join(d, "principal"),
		"key_stash_file = " + filepath.Join(d, "stash"), "kdc = STDERR",
	} {
		if !strings.Contains(kdc, w+"\n") {
			t.Errorf("kdc.conf lacks %q:\n%s", w, kdc)
		}
	}
	for _, line := range strings.Split(kdc, "\n") {
		if _, v, ok := strings.Cut(line, "= "); ok && strings.HasPrefix(strings.TrimPrefix(v, "FILE:"), "/") && !strings.HasPrefix(strings.TrimPrefix(v, "FILE:"), d+"/") {
			t.Errorf("kdc.conf names a file outside %s: %q", d, line)
		}
	}
	conf := krb5Conf()
	for _, w := range []string{"default_realm = " + KerberosRealm, "kdc = " + KDCAddr + ":88", "dns_lookup_kdc = false", ".example.test = " + KerberosRealm} {
		if !strings.Contains(conf, w+"\n") {
			t.Errorf("krb5.conf lacks %q:\n%s", w, conf)
		}
	}
	for name, ok := range map[string]bool{KerberosProxyName: true, "a.b": true, "proxy": false, "Proxy.example.test": false, "x y.test": false, "p.test\nrealm": false} {
		if hostNameRE.MatchString(name) != ok {
			t.Errorf("host name %q: match %v, want %v", name, !ok, ok)
		}
	}
}

// TestSquidConfNegotiate checks squid's Negotiate lines (before Basic), then
// has squid parse them (squidParse).
func TestSquidConfNegotiate(t *testing.T) {
	d := t.TempDir()
	o := ProxyOptions{Auth: true, Negotiate: KerberosProxyName}
	conf := squidConf(d, ProxyAddr, filepath.Join(d, "passwd"), o)
	neg := "auth_param negotiate program " + negotiateAuth + " -s HTTP/" + KerberosProxyName + "@" + KerberosRealm +
		" -k " + filepath.Join(d, serviceKeytab) + " -c " + d
	for _, w := range []string{neg, "auth_param negotiate keep_alive on", "acl authenticated proxy_auth REQUIRED", "http_access deny !authenticated"} {
		if !strings.Contains(conf, w+"\n") {
			t.Errorf("configuration lacks %q:\n%s", w, conf)
		}
	}
	if strings.Index(conf, "auth_param negotiate") > strings.Index(conf, "auth_param basic") {
		t.Errorf("Negotiate is not offered before Basic:\n%s", conf)
	}
	if n := strings.Count(conf, "acl authenticated"); n != 1 {
		t.Errorf("%d authenticated acls:\n%s", n, conf)
	}
	conf = squidConf(d, ProxyAddr, "", ProxyOptions{Negotiate: KerberosProxyName})
	if strings.Contains(conf, "auth_param basic") || !strings.Contains(conf, "http_access deny !authenticated\n") {
		t.Errorf("Negotiate only:\n%s", conf)
	}
	squidParse(t, filepath.Join(d, "negotiate.conf"), conf)
}
