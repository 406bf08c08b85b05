package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testPAC = `
function FindProxyForURL(url, host) {
	if (isPlainHostName(host) || dnsDomainIs(host, ".intranet.test")) return "DIRECT";
	if (shExpMatch(url, "https://da.*.test/*")) return "PROXY 192.0.2.80:3128; PROXY 192.0.2.81:3128; DIRECT";
	if (isInNet(host, "203.0.113.0", "255.255.255.0")) return "PROXY 192.0.2.81:3128";
	if (localHostOrDomainIs(host, "www.example.test")) return "SOCKS 192.0.2.9:1080; DIRECT";
	if (weekdayRange("SUN", "SAT") && timeRange(0, 24) && dnsDomainLevels(host) == 2) return "PROXY 192.0.2.82:8080";
	return "DIRECT";
}`

func loadPAC(t *testing.T, src string) *PAC {
	t.Helper()
	p := filepath.Join(t.TempDir(), "proxy.pac")
	writeFile(t, p, src)
	pac, err := LoadPAC(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return pac
}

func TestPAC(t *testing.T) {
	pac := loadPAC(t, testPAC)
	cases := map[string]string{
		"intranet":             "direct",
		"app.intranet.test":    "direct",
		"da.example.test":      "http://192.0.2.80:3128 http://192.0.2.81:3128 direct",
		"203.0.113.10":         "http://192.0.2.81:3128",
		"www":                  "direct",
		"www.example.test":     "direct", // SOCKS is skipped
		"a.b.test":             "http://192.0.2.82:8080",
		"deep.a.b.c.test.test": "direct",
	}
	for host, want := range cases {
		ps, err := pac.FindProxy(context.Background(), "https://"+host+"/", host)
		if err != nil {
			t.Errorf("%s: %v", host, err)
			continue
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: %v, want %s", host, got, want)
		}
	}
}

func TestPACErrors(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"syntax":      "function FindProxyForURL(url, host) { return ",
		"no function": "var x = 1;",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		writeFile(t, p, src)
		if _, err := LoadPAC(context.Background(), p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := loadPAC(t, `function FindProxyForURL(u, h) { return "SOCKS5 x:1"; }`).FindProxy(context.Background(), "https://a/", "a"); err == nil {
		t.Error("a PAC naming only SOCKS must be an error")
	}
	// A script looping at the top level is stopped while loading.
	top := filepath.Join(dir, "top.pac")
	writeFile(t, top, "while (true) {}\nfunction FindProxyForURL(u, h) { return \"DIRECT\"; }")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := LoadPAC(ctx, top); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("a PAC looping at the top level was not stopped: %v after %v", err, time.Since(start))
	}
	start = time.Now()
	looping := loadPAC(t, `function FindProxyForURL(u, h) { for(;;){} }`)
	looping.Timeout = 200 * time.Millisecond
	_, err := looping.FindProxy(context.Background(), "https://a/", "a")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("a looping PAC script was not stopped: %v after %v", err, time.Since(start))
	}
}

func TestPACFromURLAndRoutes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
		w.Write([]byte(testPAC))
	}))
	defer srv.Close()
	cache := &Cache{Path: filepath.Join(t.TempDir(), "c.json")}
	cache.Store("da.example.test:443", "http://192.0.2.81:3128")
	c := Config{PAC: &PACSource{Location: srv.URL + "/proxy.pac"}, Cache: cache, User: "u", Password: "p"}
	rs, err := c.Routes(context.Background(), "da.example.test:443")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Proxy.String()+"("+r.Source+")")
	}
	// The cached proxy is already among the PAC's: the PAC's order stands.
	if want := "http://192.0.2.80:3128(pac) http://192.0.2.81:3128(pac) direct(pac)"; strings.Join(got, " ") != want {
		t.Errorf("routes %v, want %s", got, want)
	}
	if rs[0].Proxy.User != "u" {
		t.Errorf("credentials not applied: %+v", rs[0].Proxy)
	}
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	if _, err := (Config{PAC: &PACSource{Location: missing.URL + "/proxy.pac"}}).Routes(context.Background(), "x:443"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a PAC URL answering 404: %v", err)
	}
}

func TestPACTimeFunctions(t *testing.T) {
	now := time.Now()
	h, d, m, y := now.Hour(), now.Day(), int(now.Month()), now.Year()
	mon := months[m-1]
	next := (h + 1) % 24
	cases := map[string]bool{
		fmt.Sprintf("timeRange(%d)", h):                                     true,
		fmt.Sprintf("timeRange(%d, %d)", h, h):                              false, // empty
		fmt.Sprintf("timeRange(%d, %d)", h, next):                           true,
		fmt.Sprintf("timeRange(%d, %d)", next, h):                           false, // the other 23 hours
		fmt.Sprintf("timeRange(%d, 0, %d, 0)", h, next):                     true,
		fmt.Sprintf("dateRange(%d)", d):                                     true,
		fmt.Sprintf("dateRange(%q)", mon):                                   true,
		fmt.Sprintf("dateRange(%d)", y):                                     true,
		fmt.Sprintf("dateRange(%d, %q)", d, mon):                            true,
		fmt.Sprintf("dateRange(%d, %q)", d%28+1, mon):                       d%28+1 == d,
		fmt.Sprintf("dateRange(%d, %q, %d)", d, mon, y):                     true,
		fmt.Sprintf("dateRange(%d, %q, %d)", d, mon, y+1):                   false,
		fmt.Sprintf("dateRange(1, \"JAN\", %d, 31, \"DEC\", %d)", y, y):     true,
		fmt.Sprintf("dateRange(1, \"JAN\", %d, 31, \"DEC\", %d)", y+1, y+1): false,
		fmt.Sprintf("dateRange(%q, %d, %q, %d)", mon, y, mon, y):            true,
		`weekdayRange("SUN", "SAT")`:                                        true,
		fmt.Sprintf("weekdayRange(%q)", weekdays[now.Weekday()]):            true,
	}
	for expr, want := range cases {
		pac := loadPAC(t, "function FindProxyForURL(u, h) { return ("+expr+") ? \"DIRECT\" : \"PROXY p:1\"; }")
		ps, err := pac.FindProxy(context.Background(), "https://a/", "a")
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := ps[0].URL == nil; got != want {
			t.Errorf("%s = %v, want %v", expr, got, want)
		}
	}
}
