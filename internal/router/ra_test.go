package router

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/mdlayher/ndp"
)

func TestBuildRA(t *testing.T) {
	route := netip.MustParsePrefix("2001:db8:c0::/48")
	pio := func(onLink bool, valid, preferred time.Duration) *ndp.PrefixInformation {
		return &ndp.PrefixInformation{
			PrefixLength:                   64,
			OnLink:                         onLink,
			AutonomousAddressConfiguration: true,
			ValidLifetime:                  valid,
			PreferredLifetime:              preferred,
			Prefix:                         a(anycast),
		}
	}
	rio := func(p netip.Prefix, lifetime time.Duration) *ndp.RouteInformation {
		return &ndp.RouteInformation{PrefixLength: uint8(p.Bits()), Preference: ndp.Medium, RouteLifetime: lifetime, Prefix: p.Addr()}
	}
	linkPrefix := netip.MustParsePrefix(prefix)

	tests := []struct {
		name     string
		cfg      func(*Config)
		lifetime time.Duration
		opts     []ndp.Option
	}{
		{
			name: "none, defaults: L=0, router lifetime 0, route to the prefix",
			cfg:  func(c *Config) {},
			opts: []ndp.Option{ndp.NewMTU(1280), pio(false, 24*time.Hour, 4*time.Hour), rio(route, 1800*time.Second), rio(linkPrefix, 1800*time.Second)},
		},
		{
			name: "none, isolated: no route to the prefix",
			cfg:  func(c *Config) { c.IsolateClients = true },
			opts: []ndp.Option{ndp.NewMTU(1280), pio(false, 24*time.Hour, 4*time.Hour), rio(route, 1800*time.Second)},
		},
		{
			name: "certificates: L=1, no route to the prefix",
			cfg:  func(c *Config) { c.Mode = ModeCertificates },
			opts: []ndp.Option{ndp.NewMTU(1280), pio(true, 24*time.Hour, 4*time.Hour), rio(route, 1800*time.Second)},
		},
		{
			name:     "default route and custom values",
			lifetime: 600 * time.Second,
			cfg: func(c *Config) {
				c.Mode = ModeCertificates
				c.DefaultRoute = true
				c.RouterLifetime = 600 * time.Second
				c.PrefixValid = 2 * time.Hour
				c.PrefixPreferred = time.Hour
				c.MTU = 1400
				c.Routes = []netip.Prefix{route, netip.MustParsePrefix("2001:db8:d0::/56")}
			},
			opts: []ndp.Option{ndp.NewMTU(1400), pio(true, 2*time.Hour, time.Hour), rio(route, 600*time.Second), rio(netip.MustParsePrefix("2001:db8:d0::/56"), 600*time.Second)},
		},
		{
			name: "no routes, none, isolated",
			cfg:  func(c *Config) { c.Routes = nil; c.IsolateClients = true },
			opts: []ndp.Option{ndp.NewMTU(1280), pio(false, 24*time.Hour, 4*time.Hour)},
		},
		{
			name: "prefix among the routes is not repeated",
			cfg:  func(c *Config) { c.Routes = []netip.Prefix{linkPrefix} },
			opts: []ndp.Option{ndp.NewMTU(1280), pio(false, 24*time.Hour, 4*time.Hour), rio(linkPrefix, 1800*time.Second)},
		},
		{
			name:     "default route in mode none",
			lifetime: 1800 * time.Second,
			cfg:      func(c *Config) { c.DefaultRoute = true; c.Routes = nil },
			opts:     []ndp.Option{ndp.NewMTU(1280), pio(false, 24*time.Hour, 4*time.Hour), rio(linkPrefix, 1800*time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(ModeNone)
			tt.cfg(&cfg)
			r, err := New(cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			for _, dst := range []netip.Addr{packet.AllNodes(), a(llA)} {
				b, err := r.BuildRA(dst)
				if err != nil {
					t.Fatalf("BuildRA: %v", err)
				}
				if packet.Src(b) != a(serverLL) || packet.Dst(b) != dst || packet.HopLimit(b) != 255 || !packet.WellFormed(b) {
					t.Errorf("RA header %v -> %v hop %d", packet.Src(b), packet.Dst(b), packet.HopLimit(b))
				}
				if !packet.VerifyICMPv6Checksum(b) {
					t.Error("bad checksum")
				}
				m, err := packet.ParseND(b)
				if err != nil {
					t.Fatalf("ParseND: %v", err)
				}
				ra := m.(*ndp.RouterAdvertisement)
				want := &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: tt.lifetime, Options: tt.opts}
				if !reflect.DeepEqual(ra, want) {
					t.Errorf("RA =\n%#v\nwant\n%#v", ra, want)
				}
				for _, o := range ra.Options {
					if _, ok := o.(*ndp.LinkLayerAddress); ok {
						t.Error("RA carries a link-layer address option")
					}
				}
				if got := r.raTo(dst); string(got) != string(b) {
					t.Errorf("raTo(%v) differs from BuildRA", dst)
				}
			}
		})
	}
}

func TestAdvertise(t *testing.T) {
	f := newFixture(t, baseConfig(ModeNone))
	f.clear()
	want, err := f.r.BuildRA(packet.AllNodes())
	if err != nil {
		t.Fatal(err)
	}
	f.r.Advertise(f.cs[1])
	if got := f.ports[1].take(); len(got) != 1 || string(got[0]) != string(want) {
		t.Errorf("Advertise: client B got %d packets, want the RA to ff02::1", len(got))
	}
	f.r.AdvertiseAll()
	for i, p := range f.ports {
		if got := p.take(); len(got) != 1 || string(got[0]) != string(want) {
			t.Errorf("AdvertiseAll: client %c got %d packets", 'A'+i, len(got))
		}
	}
	if s := f.r.Stats(); s.RouterAdvertisements != 4 {
		t.Errorf("RouterAdvertisements = %d, want 4", s.RouterAdvertisements)
	}
	// A detached client is skipped.
	f.r.Detach(f.cs[0])
	f.r.AdvertiseAll()
	f.r.Advertise(f.cs[0])
	if got := f.ports[0].take(); len(got) != 0 {
		t.Errorf("detached client got %d RAs", len(got))
	}
}

func TestAdvertiseInterval(t *testing.T) {
	tests := []struct {
		cfg  func(*Config)
		want time.Duration
	}{
		{func(c *Config) {}, 600 * time.Second},
		{func(c *Config) { c.RouterLifetime = 90 * time.Second }, 30 * time.Second},
		{func(c *Config) { c.PrefixValid = 3 * time.Second; c.PrefixPreferred = 3 * time.Second }, 4 * time.Second},
	}
	for _, tt := range tests {
		cfg := baseConfig(ModeNone)
		tt.cfg(&cfg)
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AdvertiseInterval(); got != tt.want {
			t.Errorf("AdvertiseInterval = %v, want %v", got, tt.want)
		}
	}
}
