package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/iphttps/iphttps/internal/control"
	"github.com/iphttps/iphttps/internal/status"
)

// serveStatus serves s on a control socket in dir, as a daemon does, until
// the test ends, and returns the socket's path.
func serveStatus(t *testing.T, dir, name string, s status.Interface) string {
	t.Helper()
	path := filepath.Join(dir, name+".sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, ln, func() status.Interface { return s }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

// runCLIStdout runs `iphttps ARGS` in-process and returns what it wrote to
// the process's standard output (the show subcommands write there).
func runCLIStdout(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	t.Cleanup(func() { os.Stdout = old })
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		read <- string(b)
	}()
	_, _, err = runCLI(t, args...)
	os.Stdout = old
	w.Close()
	out := <-read
	r.Close()
	return out, err
}

func TestShowTeredo(t *testing.T) {
	dir := t.TempDir()
	cli := serveStatus(t, dir, "client-teredo0", status.Interface{Role: "client", Device: "teredo0", TeredoClient: &status.TeredoState{
		Type: "client", ServerName: "203.0.113.10", RefreshInterval: 30, ClientPort: "unspecified",
		State: "qualified", ClientType: "teredo client", Network: "unmanaged",
		NAT: "restricted", NATSpecialBehaviour: "UPNP: No, PortPreserving: Yes",
		LocalMapping: "10.1.0.2:52865", ExternalNATMapping: "198.51.100.11:52865",
		Address: "2001:0:cb00:710a:0:3a7d:39cc:9bf4", Peers: 1,
	}})
	plain := serveStatus(t, dir, "client-iphttps0", status.Interface{Role: "client", Device: "iphttps0", URL: "https://da.example.test/IPHTTPS"})
	probe := serveStatus(t, dir, "client-teredo1", status.Interface{Role: "client", Device: "teredo1", TeredoClient: &status.TeredoState{
		Type: "client", ServerName: "203.0.113.10", RefreshInterval: 30, ClientPort: "unspecified",
		State: "probe (secondary server)", ClientType: "teredo client", Network: "unmanaged",
	}})
	srv := serveStatus(t, dir, "server-iphttps-srv", status.Interface{Role: "server", Device: "iphttps-srv", Teredo: &status.TeredoServer{
		Primary: "203.0.113.10", Secondary: "203.0.113.11", Prefix: "2001:0:cb00:710a::/64",
	}})

	// Written from Windows' layout, not from the code under test.
	want := "" +
		"Teredo Parameters\n" +
		"---------------------------------------------\n" +
		"Type                    : client\n" +
		"Server Name             : 203.0.113.10\n" +
		"Client Refresh Interval : 30 seconds\n" +
		"Client Port             : unspecified\n" +
		"State                   : qualified\n" +
		"Client Type             : teredo client\n" +
		"Network                 : unmanaged\n" +
		"NAT                     : restricted\n" +
		"NAT Special Behaviour   : UPNP: No, PortPreserving: Yes\n" +
		"Local Mapping           : 10.1.0.2:52865\n" +
		"External NAT Mapping    : 198.51.100.11:52865\n" +
		"\n" +
		"Teredo Parameters\n" +
		"---------------------------------------------\n" +
		"Type                    : client\n" +
		"Server Name             : 203.0.113.10\n" +
		"Client Refresh Interval : 30 seconds\n" +
		"Client Port             : unspecified\n" +
		"State                   : probe (secondary server)\n" +
		"Client Type             : teredo client\n" +
		"Network                 : unmanaged\n" +
		"\n" +
		"Teredo Parameters\n" +
		"---------------------------------------------\n" +
		"Type                    : server\n" +
		"Primary Address         : 203.0.113.10\n" +
		"Secondary Address       : 203.0.113.11\n" +
		"Prefix                  : 2001:0:cb00:710a::/64\n"
	out, err := runCLIStdout(t, "show", "teredo", "--socket", cli+","+plain+","+probe+","+srv)
	if err != nil {
		t.Fatal(err)
	}
	if out != want {
		t.Errorf("show teredo:\n%s\nwant:\n%s\ngot  %q\nwant %q", out, want, out, want)
	}

	// Only an IP-HTTPS client: Teredo is disabled.
	out, err = runCLIStdout(t, "show", "teredo", "--socket", plain)
	if err != nil {
		t.Fatal(err)
	}
	want = "" +
		"Teredo Parameters\n" +
		"---------------------------------------------\n" +
		"Type                    : disabled\n" +
		"Server Name             : unspecified\n" +
		"Client Refresh Interval : 30 seconds\n" +
		"Client Port             : unspecified\n" +
		"State                   : offline\n" +
		"Error                   : none\n"
	if out != want {
		t.Errorf("show teredo, no Teredo daemon:\n%s\nwant:\n%s\ngot  %q\nwant %q", out, want, out, want)
	}

	// --json: one object per Teredo daemon, PowerShell's property names.
	out, err = runCLIStdout(t, "show", "teredo", "--json", "--socket", cli+","+plain+","+srv)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("show teredo --json: %v\n%s", err, out)
	}
	if len(got) != 2 {
		t.Fatalf("show teredo --json: %d objects, want 2 (the Teredo client and server)\n%s", len(got), out)
	}
	for k, v := range map[string]any{
		"Type": "client", "ServerName": "203.0.113.10", "RefreshIntervalSeconds": 30.0, "ClientPort": "unspecified",
		"State": "qualified", "ClientType": "teredo client", "Network": "unmanaged", "NAT": "restricted",
		"NATSpecialBehaviour": "UPNP: No, PortPreserving: Yes", "LocalMapping": "10.1.0.2:52865",
		"ExternalNATMapping": "198.51.100.11:52865", "Address": "2001:0:cb00:710a:0:3a7d:39cc:9bf4", "Peers": 1.0,
	} {
		if got[0][k] != v {
			t.Errorf("client object: %s = %v, want %v", k, got[0][k], v)
		}
	}
	for k, v := range map[string]any{"Type": "server", "PrimaryAddress": "203.0.113.10", "SecondaryAddress": "203.0.113.11", "Prefix": "2001:0:cb00:710a::/64"} {
		if got[1][k] != v {
			t.Errorf("server object: %s = %v, want %v", k, got[1][k], v)
		}
	}
	out, err = runCLIStdout(t, "show", "teredo", "--json", "--socket", plain)
	if err != nil {
		t.Fatal(err)
	}
	if out != "[]\n" {
		t.Errorf("show teredo --json, no Teredo daemon: %q, want \"[]\\n\"", out)
	}
}
