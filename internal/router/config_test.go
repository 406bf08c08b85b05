package router

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"none", ModeNone, false},
		{"None", ModeNone, false},
		{" NONE ", ModeNone, false},
		{"certificates", ModeCertificates, false},
		{"Certificates", ModeCertificates, false},
		{"certificate", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v", tt.in, got, err)
		}
	}
	for _, m := range []Mode{ModeNone, ModeCertificates} {
		if back, err := ParseMode(m.String()); err != nil || back != m {
			t.Errorf("ParseMode(%v.String()) = %v, %v", m, back, err)
		}
	}
	if s := Mode(7).String(); s != "Mode(7)" {
		t.Errorf("Mode(7).String() = %q", s)
	}
}

func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range DropReasons() {
		s := r.String()
		if s == "" || strings.HasPrefix(s, "DropReason(") || seen[s] {
			t.Errorf("DropReason %d has name %q", r, s)
		}
		seen[s] = true
	}
	if len(seen) != int(numDropReasons) {
		t.Errorf("%d names for %d reasons", len(seen), numDropReasons)
	}
	if s := DropReason(200).String(); s != "DropReason(200)" {
		t.Errorf("unknown reason: %q", s)
	}
	for a, want := range map[Action]string{Handled: "handled", ToHost: "to-host", Dropped: "dropped", 9: "Action(9)"} {
		if a.String() != want {
			t.Errorf("Action %d = %q, want %q", a, a.String(), want)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	cfg := Config{Prefix: netip.MustParsePrefix("2001:db8:1::5/64"), HostAddrs: []netip.Addr{a("2001:db8:1::1%eth0")}}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Config()
	want := Config{
		Prefix:            netip.MustParsePrefix(prefix),
		LinkLocal:         a("fe80::1"),
		HostAddrs:         []netip.Addr{a(hostAddr)},
		Routes:            []netip.Prefix{},
		RouterLifetime:    1800 * time.Second,
		PrefixValid:       24 * time.Hour,
		PrefixPreferred:   4 * time.Hour,
		MTU:               1280,
		MaxAddrsPerClient: 16,
	}
	if got.Prefix != want.Prefix || got.LinkLocal != want.LinkLocal || len(got.HostAddrs) != 1 || got.HostAddrs[0] != want.HostAddrs[0] ||
		got.RouterLifetime != want.RouterLifetime || got.PrefixValid != want.PrefixValid || got.PrefixPreferred != want.PrefixPreferred ||
		got.MTU != want.MTU || got.MaxAddrsPerClient != want.MaxAddrsPerClient || got.Mode != ModeNone {
		t.Errorf("Config() = %+v\nwant %+v", got, want)
	}
	// The router keeps its own copies.
	cfg.HostAddrs[0] = a("2001:db8:1::2")
	if r.Config().HostAddrs[0] != a(hostAddr) {
		t.Error("router aliases the caller's HostAddrs")
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		field string
	}{
		{"no prefix", func(c *Config) { c.Prefix = netip.Prefix{} }, "Prefix"},
		{"/48 prefix", func(c *Config) { c.Prefix = netip.MustParsePrefix("2001:db8::/48") }, "/64"},
		{"/96 prefix", func(c *Config) { c.Prefix = netip.MustParsePrefix("2001:db8::/96") }, "/64"},
		{"IPv4 prefix", func(c *Config) { c.Prefix = netip.MustParsePrefix("10.0.0.0/8") }, "Prefix"},
		{"link-local prefix", func(c *Config) { c.Prefix = netip.MustParsePrefix("fe80::/64") }, "Prefix"},
		{"multicast prefix", func(c *Config) { c.Prefix = netip.MustParsePrefix("ff02::/64") }, "Prefix"},
		{"unspecified prefix", func(c *Config) { c.Prefix = netip.MustParsePrefix("::/64") }, "Prefix"},
		{"bad mode", func(c *Config) { c.Mode = 5 }, "Mode"},
		{"global LinkLocal", func(c *Config) { c.LinkLocal = a("2001:db8::1") }, "LinkLocal"},
		{"multicast host address", func(c *Config) { c.HostAddrs = []netip.Addr{a("ff02::1")} }, "HostAddrs"},
		{"IPv4 host address", func(c *Config) { c.HostAddrs = []netip.Addr{a("192.0.2.1")} }, "HostAddrs"},
		{"invalid host address", func(c *Config) { c.HostAddrs = []netip.Addr{{}} }, "HostAddrs"},
		{"IPv4 route", func(c *Config) { c.Routes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, "Routes"},
		{"router lifetime too long", func(c *Config) { c.RouterLifetime = 3 * time.Hour }, "RouterLifetime"},
		{"negative router lifetime", func(c *Config) { c.RouterLifetime = -time.Second }, "RouterLifetime"},
		{"sub-second valid lifetime", func(c *Config) { c.PrefixValid = time.Millisecond }, "PrefixValid"},
		{"preferred beyond valid", func(c *Config) { c.PrefixValid = time.Hour; c.PrefixPreferred = 2 * time.Hour }, "PrefixPreferred"},
		{"MTU too small", func(c *Config) { c.MTU = 1000 }, "MTU"},
		{"MTU too large", func(c *Config) { c.MTU = 70000 }, "MTU"},
		{"negative address limit", func(c *Config) { c.MaxAddrsPerClient = -1 }, "MaxAddrsPerClient"},
	}
	for _, tt := range tests {
		cfg := baseConfig(ModeNone)
		tt.cfg(&cfg)
		r, err := New(cfg)
		if err == nil {
			t.Errorf("%s: New succeeded: %+v", tt.name, r.Config())
			continue
		}
		if !strings.Contains(err.Error(), tt.field) || !strings.HasPrefix(err.Error(), "router: ") {
			t.Errorf("%s: error %q does not name %s", tt.name, err, tt.field)
		}
	}
}
