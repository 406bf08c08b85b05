package iphttps

import (
	"testing"

	"github.com/iphttps/iphttps/internal/winerr"
)

func TestParseURL(t *testing.T) {
	good := []struct{ in, host, port, path string }{
		{"https://da.example.com/IPHTTPS", "da.example.com", "443", "/IPHTTPS"},
		{"https://da.example.com:44500/IPHTTPS", "da.example.com", "44500", "/IPHTTPS"},
		{"HTTPS://DA.example.com/iphttps", "DA.example.com", "443", "/iphttps"},
	}
	for _, g := range good {
		tg, err := ParseURL(g.in, false, false)
		if err != nil || tg.Host != g.host || tg.Port != g.port || tg.Path != g.path || tg.URL != g.in {
			t.Errorf("ParseURL(%q) = %+v, %v", g.in, tg, err)
		}
	}
	for _, b := range []string{"", "https://192.0.2.1/IPHTTPS", "https://[2001:db8::1]/IPHTTPS", "http://da.example.com/IPHTTPS",
		"ftp://x/IPHTTPS", "https://da.example.com", "https://da.example.com/", "https://u@da.example.com/IPHTTPS", "https://da.example.com/IPHTTPS?x=1"} {
		_, err := ParseURL(b, false, false)
		if c, _ := winerr.CodeOf(err); c != winerr.InvalidNetName {
			t.Errorf("ParseURL(%q): want 0x4be, got %v", b, err)
		}
	}
	if _, err := ParseURL("https://192.0.2.1/IPHTTPS", true, false); err != nil {
		t.Errorf("allowIP: %v", err)
	}
	for in, want := range map[string]string{
		"https://da.example.com/IPHTTPS":       "da.example.com",
		"https://da.example.com:44500/IPHTTPS": "da.example.com:44500",
		"https://[2001:db8::1]/IPHTTPS":        "[2001:db8::1]",
	} {
		if tg, err := ParseURL(in, true, false); err != nil || tg.HostHeader != want {
			t.Errorf("Host header for %s = %q (%v), want %q", in, tg.HostHeader, err, want)
		}
	}
	if tg, err := ParseURL("http://da.example.com/IPHTTPS", false, true); err != nil || tg.HTTPS || tg.Port != "80" {
		t.Errorf("allowHTTP: %+v %v", tg, err)
	}
}
