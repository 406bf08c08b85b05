package winerr

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
)

// Codes that DirectAccess troubleshooting material documents for IP-HTTPS
// and its prerequisites, written out here so that the explanation table
// (errcode, status) is checked against a list that does not come from it.
var (
	// Codes documented in DirectAccess material as IP-HTTPS last error codes.
	section31 = []uint32{
		0x0, 0x103, 0x34, 0x643, 0x4BE, 0x2AF9, 0x2AFC, 0x274C, 0x274D,
		0x800B0109, 0x800B0101, 0x80092013, 0x80090326, 0x00090320,
	}
	// Other codes a client meets, not documented in DirectAccess material
	// (0x80072EFD is the HRESULT form of 0x2EFD).
	section32 = []uint32{
		0x2746, 0x2745, 0x2742, 0x2743, 0x2751, 0x32, 0x2EFD, 0x80072EFD, 0x2EE2,
		0x800B010F, 0x800B010A, 0x800B010C, 0x80092010, 0x800B010E, 0x80092012,
		0x800B0110, 0x80090325, 0x80090322, 0x80090327, 0x80090328, 0x80090331,
	}
	// The codes winerr.Classify maps Linux and Go conditions to.
	section33 = []uint32{
		0x4BE, 0x34, 0x643, 0x2AF9, 0x2AFC, 0x274C, 0x274D, 0x2746, 0x2743, 0x2751,
		0x800B0109, 0x800B0101, 0x103, 0x800B0110, 0x80092013, 0x80092010,
		0x80090326, 0x00090320, 0x0,
	}
	// The status/code pairs the client reproduces exactly.
	section9 = []uint32{
		0x0, 0x103, 0x4BE, 0x34, 0x643, 0x2AF9, 0x2AFC, 0x274C, 0x274D,
		0x800B0109, 0x800B0101, 0x80092013, 0x80090326, 0x90320,
	}
)

func TestReferenceCodesExplained(t *testing.T) {
	for _, list := range [][]uint32{section31, section32, section33, section9} {
		for _, c := range list {
			if _, ok := Explain(c); !ok {
				t.Errorf("%s is a documented code but has no explanation", Hex(c))
			}
		}
	}
	// Exactly the section31 codes are documented for IP-HTTPS.
	for _, e := range Known() {
		if want := slices.Contains(section31, e.Code); e.Documented != want {
			t.Errorf("%s: Documented = %v, want %v (documented list)", Hex(e.Code), e.Documented, want)
		}
	}
}

// TestEveryConstantExplained reads the code constants from winerr.go, so a
// code added there without an explanation fails here.
func TestEveryConstantExplained(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "winerr.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "uint32" {
				continue
			}
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: value is not a literal", name.Name)
				}
				v, ok := constant.Uint64Val(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))
				if !ok {
					t.Fatalf("%s: %s is not a uint32", name.Name, lit.Value)
				}
				n++
				e, found := Explain(uint32(v))
				if !found {
					t.Errorf("%s (%s) has no explanation", name.Name, Hex(uint32(v)))
				} else if e.Code != uint32(v) {
					t.Errorf("%s (%s) is explained as %s", name.Name, Hex(uint32(v)), Hex(e.Code))
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d code constants in winerr.go: the parser missed some", n)
	}
}

func TestExplanationsComplete(t *testing.T) {
	seen := map[uint32]bool{}
	roles := []string{RoleClient, RoleServer, RoleBoth, RoleNone}
	for _, e := range Known() {
		h := Hex(e.Code)
		if seen[e.Code] {
			t.Errorf("%s explained twice", h)
		}
		seen[e.Code] = true
		if e.Symbol == "" || e.Message == "" || e.Family == "" || e.Reported == "" || e.Summary == "" ||
			e.Meaning == "" || e.Next == "" || len(e.Causes) == 0 || len(e.Remedies) == 0 {
			t.Errorf("%s (%s): a field is empty: %+v", h, e.Symbol, e)
		}
		if strings.Contains(e.Summary, "\n") || len(e.Summary) > 110 {
			t.Errorf("%s: the summary is not one short line: %q", h, e.Summary)
		}
		if !slices.Contains(roles, e.Role) {
			t.Errorf("%s: role %q", h, e.Role)
		}
		if (e.Role == RoleNone) != strings.HasPrefix(e.Reported, "never") {
			t.Errorf("%s: role %q but reported %q", h, e.Role, e.Reported)
		}
		wantStatus := StatusFor(e.Code)
		if e.Role == RoleServer {
			wantStatus = ""
		}
		if e.Status != wantStatus {
			t.Errorf("%s: status %q, want %q", h, e.Status, wantStatus)
		}
		if !strings.Contains(e.Next, "iphttps diagnose") {
			t.Errorf("%s: the next step does not name iphttps diagnose: %q", h, e.Next)
		}
		for _, r := range e.Related {
			c, err := ParseCode(r)
			if err != nil {
				t.Errorf("%s: related %q: %v", h, r, err)
				continue
			}
			if _, ok := Explain(c); !ok || c == e.Code || r != Hex(c) {
				t.Errorf("%s: related %q is not another explained code in netsh form", h, r)
			}
		}
	}
}

// TestLinuxTerms checks that the remedies speak of what plays each Windows
// component's part on Linux.
func TestLinuxTerms(t *testing.T) {
	cases := map[uint32][]string{
		InstallFailure:        {"DisabledComponents", "net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6", "ipv6.disable=1", "ip netns exec", "/dev/net/tun", "CAP_NET_ADMIN"},
		DupName:               {"Device Manager", "--interface", "ip -d link show", "ip link del", "iphttps reset"},
		HostNotFound:          {"ProxyMgr", "iphttps proxy show", "iphttps proxy reset", "--proxy", "--pac", "HTTPS_PROXY", "NRPT"},
		NoData:                {"iphttps proxy show", "--proxy-credentials", "--path", "--ra-timeout", "Last Error"},
		AddrInUse:             {"http.sys", "ss -ltnp", "--listen", "--plain-http"},
		CertUntrustedRoot:     {"--ca", "/etc/ssl/certs", "update-ca-certificates", "--self-signed", "--cert"},
		NoMoreItems:           {"subject CN", "--name-rule", "openssl"},
		TimedOut:              {"--connect-timeout", "nc -vz"},
		ConnRefused:           {"ss -ltnp", "--listen"},
		IncompleteCredentials: {"--auth-mode", "--client-ca", "--cert"},
	}
	for code, words := range cases {
		e, ok := Explain(code)
		if !ok {
			t.Fatalf("%s unknown", Hex(code))
		}
		text := strings.Join(append(append([]string{e.Meaning}, e.Causes...), e.Remedies...), " ")
		for _, w := range words {
			if !strings.Contains(text, w) {
				t.Errorf("%s: the explanation does not mention %q", Hex(code), w)
			}
		}
	}
}

func TestParseCode(t *testing.T) {
	good := map[string]uint32{
		"0x2af9":      0x2AF9,
		"0x2AF9":      0x2AF9,
		"0X2af9":      0x2AF9,
		"11001":       11001,
		" 11001\n":    11001,
		"011001":      11001, // decimal, not octal
		"0x0":         0,
		"0":           0,
		"0x800B0109":  0x800B0109,
		"0x800b0109":  0x800B0109,
		"2148204809":  0x800B0109,
		"-2146762487": 0x800B0109,
		"0x00090320":  0x90320,
		"0xffffffff":  0xFFFFFFFF,
		"4294967295":  0xFFFFFFFF,
		"-1":          0xFFFFFFFF,
		"-2147483648": 0x80000000,
	}
	for in, want := range good {
		got, err := ParseCode(in)
		if err != nil || got != want {
			t.Errorf("ParseCode(%q) = %s, %v; want %s", in, Hex(got), err, Hex(want))
		}
	}
	for _, in := range []string{"", "zz", "2af9", "2af9h", "0x", "0x1_0", "1_000", "0x100000000", "4294967296",
		"-2147483649", "+5", "1e3", "0b101", "0o17", "-0x1", "0x-1", "11001 0x2af9"} {
		if got, err := ParseCode(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseCode(%q) = %s, %v; want ErrSyntax", in, Hex(got), err)
		}
	}
}

func TestExplainForms(t *testing.T) {
	// The HRESULT form of a Win32, Winsock or WinHTTP code is that code.
	for hr, want := range map[uint32]uint32{0x80072EFD: 0x2EFD, 0x80072AF9: HostNotFound, 0x80070643: InstallFailure} {
		e, ok := Explain(hr)
		if !ok || e.Code != want {
			t.Errorf("Explain(%s) = %s, %v; want %s", Hex(hr), Hex(e.Code), ok, Hex(want))
		}
	}
	for _, c := range []uint32{0x1234, 0xFFFFFFFF, 0x80070000, 0x80070001, 0x8007FFFF, 0x2AFA, 0x800B0100, 0x103 | 0x10000} {
		if e, ok := Explain(c); ok {
			t.Errorf("Explain(%s) = %s, want unknown", Hex(c), e.Symbol)
		}
	}
	e, _ := Explain(HostNotFound)
	if e.Symbol != "WSAHOST_NOT_FOUND" || e.Message != "No such host is known." || e.Status != StatusWaiting {
		t.Errorf("0x2af9: %s / %q / %q", e.Symbol, e.Message, e.Status)
	}
	if e, _ := Explain(AddrInUse); e.Status != "" || e.Role != RoleServer {
		t.Errorf("0x2740: a server start-up code, got status %q role %q", e.Status, e.Role)
	}
}

func TestKnownIsACopy(t *testing.T) {
	k := Known()
	k[0].Causes[0] = "changed"
	k[0].Summary = "changed"
	if again := Known(); again[0].Causes[0] == "changed" || again[0].Summary == "changed" {
		t.Fatal("Known exposes the table")
	}
	e, _ := Explain(k[0].Code)
	e.Remedies[0] = "changed"
	if again, _ := Explain(k[0].Code); again.Remedies[0] == "changed" {
		t.Fatal("Explain exposes the table")
	}
}

func TestExplanationJSON(t *testing.T) {
	for code, signed := range map[uint32]any{CertUntrustedRoot: float64(-2146762487), HostNotFound: nil} {
		e, _ := Explain(code)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["hex"] != Hex(code) || m["code"] != float64(code) || m["signed"] != signed ||
			m["symbol"] != e.Symbol || m["interface_status"] != e.Status || m["causes"] == nil {
			t.Errorf("%s: JSON %s", Hex(code), b)
		}
	}
}
