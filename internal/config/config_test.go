package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestMergeFlagsWinOverFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("url = \"https://da.example.test/IPHTTPS\"\ninterface = \"fromfile0\"\nreconnect_initial = \"5s\"\nroute = [\"2001:db8:c0::/64\"]\nlog_level = \"debug\"\n"), 0o644)
	cur := DefaultClient()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.StringVar(&cur.Interface, "interface", cur.Interface, "")
	fs.DurationVar(&cur.ReconnectInitial, "reconnect-initial", cur.ReconnectInitial, "")
	fs.StringVar(&cur.Level, "log-level", cur.Level, "")
	if err := fs.Parse([]string{"--interface", "flag0"}); err != nil {
		t.Fatal(err)
	}
	file, err := Load(p, DefaultClient())
	if err != nil {
		t.Fatal(err)
	}
	Merge(&cur, file, fs)
	if cur.Interface != "flag0" {
		t.Errorf("flag lost: interface=%q", cur.Interface)
	}
	if cur.ReconnectInitial != 5*time.Second || cur.URL != "https://da.example.test/IPHTTPS" || len(cur.Routes) != 1 || cur.Level != "debug" {
		t.Errorf("file values lost: %+v", cur)
	}
	if cur.ReconnectMax != 15*time.Minute {
		t.Errorf("default lost: %v", cur.ReconnectMax)
	}
}

func TestUnknownKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("prefx = \"2001:db8:1::/64\"\n"), 0o644)
	_, err := Load(p, DefaultServer())
	if err == nil || !strings.Contains(err.Error(), "prefx") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
}

// The example files shipped in examples/ stay valid.
func TestExamplesLoad(t *testing.T) {
	s, err := Load("../../examples/server.toml", DefaultServer())
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix != "2001:db8:1::/64" || len(s.Routes) != 1 || s.RAInterval != 200*time.Second {
		t.Errorf("server example: %+v", s)
	}
	c, err := Load("../../examples/client.toml", DefaultClient())
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://da.example.com/IPHTTPS" || c.ReconnectMax != 15*time.Minute {
		t.Errorf("client example: %+v", c)
	}
}

// The DirectAccess examples name all three methods.
func TestDirectAccessExamplesLoad(t *testing.T) {
	s, err := Load("../../examples/directaccess-server.toml", DefaultServer())
	if err != nil {
		t.Fatal(err)
	}
	if s.Teredo != "203.0.113.10" || s.SixToFour != "203.0.113.10" || s.Listen != "203.0.113.10:443" {
		t.Errorf("server example: teredo %q, 6to4 %q, listen %q", s.Teredo, s.SixToFour, s.Listen)
	}
	c, err := Load("../../examples/directaccess-client.toml", DefaultClient())
	if err != nil {
		t.Fatal(err)
	}
	if c.URL == "" || c.TeredoServer != "203.0.113.10" || c.SixToFourRelay != "203.0.113.10" ||
		len(c.PathsOrder) != 3 || c.PathsRecheck != 5*time.Minute {
		t.Errorf("client example: %+v", c)
	}
}
