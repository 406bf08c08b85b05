package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/winerr"
)

// runCLI runs `iphttps ARGS` in-process and returns its standard output and
// the exit status main would give (1 for any returned error).
func runCLI(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		return out.String(), 1, err
	}
	return out.String(), 0, nil
}

func TestErrcodeExplains(t *testing.T) {
	cases := []struct {
		arg  string
		want []string
	}{
		{"0x2af9", []string{
			"0x2af9 (11001)  WSAHOST_NOT_FOUND",
			"Windows message            : No such host is known.",
			"Interface Status           : Failed to connect to the IPHTTPS server; waiting to reconnect",
			"Documented for IP-HTTPS    : yes",
			"Meaning:", "Causes:", "Remedies (iphttps on Linux):",
			"iphttps proxy show", "iphttps proxy reset", "--proxy direct", "HTTPS_PROXY",
			"Next step: Run `iphttps diagnose",
		}},
		{"0x103", []string{
			"0x103 (259)  ERROR_NO_MORE_ITEMS",
			"Windows message            : No more data is available.",
			"Interface Status           : No usable certificate(s) found",
			"--name-rule standard",
		}},
		{"0x800b0109", []string{
			"0x800b0109 (2148204809; signed -2146762487)  CERT_E_UNTRUSTEDROOT",
			"Interface Status           : Failed to connect to the IPHTTPS server; waiting to reconnect",
			"--ca", "update-ca-certificates",
		}},
		{"0x643", []string{
			"0x643 (1603)  ERROR_INSTALL_FAILURE",
			"Windows message            : Fatal error during installation.",
			"Interface Status           : Interface creation failure",
			"net.ipv6.conf.all.disable_ipv6", "ipv6.disable=1", "DisabledComponents",
		}},
		{"0x34", []string{
			"0x34 (52)  ERROR_DUP_NAME",
			"Interface Status           : Interface creation failure",
			"ip link del", "iphttps reset", "--interface",
		}},
		{"0x2740", []string{
			"0x2740 (10048)  WSAEADDRINUSE",
			"Interface Status           : none (a server start-up error",
			"ss -ltnp", "http.sys",
		}},
		// Neighbours in winerror.h (WSAECONNABORTED 10053, WSAECONNRESET
		// 10054): each number prints its own symbol and message.
		{"0x2745", []string{
			"0x2745 (10053)  WSAECONNABORTED",
			"Windows message            : An established connection was aborted by the software in your host machine.",
		}},
		{"0x2746", []string{
			"0x2746 (10054)  WSAECONNRESET",
			"Windows message            : An existing connection was forcibly closed by the remote host.",
		}},
		// The codes of diagnose's 6to4 and Teredo checks say what they
		// mean there.
		{"0x2743", []string{
			"0x2743 (10051)  WSAENETUNREACH",
			"In the 6to4 and Teredo checks of `iphttps diagnose`:",
			"6to4-address: This host's IPv4 address towards the relay is not public", "--6to4-lab",
			"6to4-mapping: The relay's Teredo server sees this host at another address",
		}},
		{"0x274c", []string{
			"6to4-reachability: No echo came back over IPv4 protocol 41", "tcpdump -ni any ip proto 41",
			"teredo-primary: No valid router advertisement", "tcpdump -ni any udp port 3544",
			"teredo-secondary:", "--teredo-secondary", "teredo-relay:", "ICMPv6 echo requests",
		}},
		{"0x2afc", []string{
			"teredo-nat: The NAT is symmetric", "--teredo-client-port", "teredo-primary: The server saw this client",
		}},
	}
	for _, c := range cases {
		out, status, err := runCLI(t, "errcode", c.arg)
		if status != 0 || err != nil {
			t.Fatalf("errcode %s: status %d, %v", c.arg, status, err)
		}
		flat := strings.Join(strings.Fields(out), " ") // remedies wrap across lines
		for _, w := range c.want {
			if !strings.Contains(out, w) && !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
				t.Errorf("errcode %s: output lacks %q:\n%s", c.arg, w, out)
			}
		}
	}
}

func TestErrcodeForms(t *testing.T) {
	for hex, others := range map[string][]string{
		"0x800b0109": {"0x800B0109", "2148204809", "-2146762487", "--json=false", "-2146762487"},
		"0x2af9":     {"0x2AF9", "11001", "0X2af9"},
		"0x90320":    {"0x00090320", "590624"},
	} {
		want, _, _ := runCLI(t, "errcode", hex)
		for _, o := range others {
			args := []string{"errcode", o}
			if strings.HasPrefix(o, "--") {
				args = []string{"errcode", o, "-2146762487"}
			}
			got, status, err := runCLI(t, args...)
			if status != 0 || got != want {
				t.Errorf("errcode %v: status %d (%v), output differs from errcode %s", args[1:], status, err, hex)
			}
		}
	}
	out, status, _ := runCLI(t, "errcode", "0x80072efd")
	if status != 0 || !strings.HasPrefix(out, "0x80072efd is HRESULT_FROM_WIN32(0x2efd)") ||
		!strings.Contains(out, "ERROR_WINHTTP_CANNOT_CONNECT") {
		t.Errorf("errcode 0x80072efd: status %d:\n%s", status, out)
	}
}

func TestErrcodeUnknownAndUsage(t *testing.T) {
	out, status, err := runCLI(t, "errcode", "0x1234")
	if status != 1 || err == nil || out != "" ||
		!strings.HasPrefix(err.Error(), "0x1234 (4660) is not an IP-HTTPS code") {
		t.Errorf("unknown code: status %d, err %v, out %q", status, err, out)
	}
	out, status, err = runCLI(t, "errcode", "--json", "0xdeadbeef")
	var ans errcodeAnswer
	if status != 1 || err == nil || json.Unmarshal([]byte(out), &ans) != nil || ans.Known || ans.Asked != "0xdeadbeef" ||
		!strings.Contains(ans.Error, "is not an IP-HTTPS code") {
		t.Errorf("unknown code, JSON: status %d, err %v, out %s", status, err, out)
	}
	for _, args := range [][]string{
		{"errcode"}, {"errcode", "zz"}, {"errcode", "2af9h"}, {"errcode", "0x2af9", "0x103"},
		{"errcode", "--list", "0x2af9"}, {"errcode", "--bogus", "0x2af9"}, {"errcode", "-99999999999"},
	} {
		if _, status, err := runCLI(t, args...); status != 1 || err == nil {
			t.Errorf("%v: status %d, err %v; want a usage error", args, status, err)
		}
	}
	out, status, _ = runCLI(t, "errcode", "--help")
	if status != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "--list") {
		t.Errorf("--help: status %d:\n%s", status, out)
	}
}

func TestErrcodeJSON(t *testing.T) {
	out, status, err := runCLI(t, "errcode", "-2146762487", "--json")
	if status != 0 {
		t.Fatal(err)
	}
	var ans struct {
		Asked       string         `json:"asked"`
		Known       bool           `json:"known"`
		Explanation map[string]any `json:"explanation"`
	}
	if err := json.Unmarshal([]byte(out), &ans); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	x := ans.Explanation
	if ans.Asked != "0x800b0109" || !ans.Known || x["hex"] != "0x800b0109" || x["signed"] != float64(-2146762487) ||
		x["symbol"] != "CERT_E_UNTRUSTEDROOT" || x["interface_status"] != winerr.StatusWaiting ||
		x["documented_for_iphttps"] != true || len(x["remedies"].([]any)) == 0 || strings.Contains(out, "diagnose_checks") {
		t.Errorf("JSON answer: %s", out)
	}

	// A code of the 6to4 and Teredo checks: what it means in each.
	out, status, err = runCLI(t, "errcode", "0x274c", "--json")
	if status != 0 {
		t.Fatal(err)
	}
	var tr errcodeAnswer
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var checks []string
	for _, n := range tr.Diagnose {
		if n.Meaning == "" || len(n.Remedies) == 0 {
			t.Errorf("note %+v", n)
		}
		checks = append(checks, n.Check)
	}
	if strings.Join(checks, " ") != "6to4-reachability teredo-primary teredo-secondary teredo-nat teredo-relay" {
		t.Errorf("0x274c: diagnose_checks %v", checks)
	}
}

func TestErrcodeList(t *testing.T) {
	out, status, err := runCLI(t, "errcode", "--list")
	if status != 0 {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	known := winerr.Known()
	if len(lines) != len(known)+1 || !strings.HasPrefix(lines[0], "CODE") {
		t.Fatalf("want a header and %d rows:\n%s", len(known), out)
	}
	for i, e := range known {
		if f := strings.Fields(lines[i+1]); len(f) < 3 || f[0] != winerr.Hex(e.Code) || f[1] != e.Symbol {
			t.Errorf("row %d: %q, want %s %s", i+1, lines[i+1], winerr.Hex(e.Code), e.Symbol)
		}
	}
	out, status, _ = runCLI(t, "errcode", "--list", "--json")
	var all []map[string]any
	if status != 0 || json.Unmarshal([]byte(out), &all) != nil || len(all) != len(known) {
		t.Errorf("--list --json: status %d, %d entries", status, len(all))
	}
}

// TestErrcodeFlagsExist checks that every iphttps flag an explanation names
// exists on some iphttps command.
func TestErrcodeFlagsExist(t *testing.T) {
	flags := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd())
	// cobra's --help (added at execution), and flags of another program the
	// remedies quote (docker run).
	other := map[string]bool{"help": true, "device": true, "cap-add": true, "sysctl": true}
	flagRE := regexp.MustCompile(`(?:^|[\s(` + "`" + `])--([a-z][a-z0-9-]*)`)
	n := 0
	check := func(what, text string) {
		for _, m := range flagRE.FindAllStringSubmatch(text, -1) {
			n++
			if !flags[m[1]] && !other[m[1]] {
				t.Errorf("%s names --%s, which no iphttps command has", what, m[1])
			}
		}
	}
	for _, e := range winerr.Known() {
		check(winerr.Hex(e.Code), strings.Join(append(append([]string{e.Meaning, e.Reported, e.Next}, e.Causes...), e.Remedies...), "\n"))
		// The notes errcode prints for diagnose's 6to4 and Teredo checks.
		for _, note := range diagnose.MethodNotes(e.Code) {
			check(winerr.Hex(e.Code)+" ("+note.Check+")", strings.Join(append([]string{note.Meaning}, note.Remedies...), "\n"))
		}
	}
	if n < 40 {
		t.Errorf("found only %d flags in the explanations: the pattern misses some", n)
	}
}

func TestErrcodeRegistered(t *testing.T) {
	if c, _, err := newRootCmd().Find([]string{"errcode"}); err != nil || c.Name() != "errcode" {
		t.Fatalf("errcode is not a subcommand of iphttps: %v", err)
	}
}
