package winerr

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// The numbers below are written as the Windows SDK headers define them,
// not taken from this package: Win32 and Winsock codes in decimal
// (winerror.h: ERROR_NO_MORE_ITEMS 259L; WSABASEERR 10000 + n), WinHTTP
// codes as WINHTTP_ERROR_BASE (12000) + n (winhttp.h), HRESULTs in hex
// (winerror.h: _HRESULT_TYPEDEF_(0x800B0109L)). A constant given the wrong
// number, or two constants with their numbers swapped, fails here.

// codeConstants are the package's exported code constants: the Go name,
// the constant itself, the number Windows defines and its symbol.
var codeConstants = []struct {
	name   string
	value  uint32
	want   uint32
	symbol string
}{
	{"Success", Success, 0, "ERROR_SUCCESS"},
	{"FileNotFound", FileNotFound, 2, "ERROR_FILE_NOT_FOUND"},
	{"DupName", DupName, 52, "ERROR_DUP_NAME"},
	{"InvalidParameter", InvalidParameter, 87, "ERROR_INVALID_PARAMETER"},
	{"NoMoreItems", NoMoreItems, 259, "ERROR_NO_MORE_ITEMS"},
	{"InvalidNetName", InvalidNetName, 1214, "ERROR_INVALID_NETNAME"},
	{"InstallFailure", InstallFailure, 1603, "ERROR_INSTALL_FAILURE"},
	{"AddrInUse", AddrInUse, 10048, "WSAEADDRINUSE"},
	{"NetUnreach", NetUnreach, 10051, "WSAENETUNREACH"},
	{"ConnAborted", ConnAborted, 10053, "WSAECONNABORTED"},
	{"ConnReset", ConnReset, 10054, "WSAECONNRESET"},
	{"TimedOut", TimedOut, 10060, "WSAETIMEDOUT"},
	{"ConnRefused", ConnRefused, 10061, "WSAECONNREFUSED"},
	{"HostUnreach", HostUnreach, 10065, "WSAEHOSTUNREACH"},
	{"HostNotFound", HostNotFound, 11001, "WSAHOST_NOT_FOUND"},
	{"NoData", NoData, 11004, "WSANO_DATA"},
	{"IncompleteCredentials", IncompleteCredentials, 0x00090320, "SEC_I_INCOMPLETE_CREDENTIALS"},
	{"IllegalMessage", IllegalMessage, 0x80090326, "SEC_E_ILLEGAL_MESSAGE"},
	{"CertUnknown", CertUnknown, 0x80090327, "SEC_E_CERT_UNKNOWN"},
	{"Revoked", Revoked, 0x80092010, "CRYPT_E_REVOKED"},
	{"RevocationOffline", RevocationOffline, 0x80092013, "CRYPT_E_REVOCATION_OFFLINE"},
	{"CertExpired", CertExpired, 0x800B0101, "CERT_E_EXPIRED"},
	{"CertUntrustedRoot", CertUntrustedRoot, 0x800B0109, "CERT_E_UNTRUSTEDROOT"},
	{"CertWrongUsage", CertWrongUsage, 0x800B0110, "CERT_E_WRONG_USAGE"},
}

// tableOnlyCodes are the codes the explanation table holds with no
// constant (codes iphttps explains but never reports), with the number
// Windows defines and its symbol.
var tableOnlyCodes = []struct {
	want   uint32
	symbol string
}{
	{50, "ERROR_NOT_SUPPORTED"},
	{10050, "WSAENETDOWN"},
	{12002, "ERROR_WINHTTP_TIMEOUT"},
	{12029, "ERROR_WINHTTP_CANNOT_CONNECT"},
	{0x80090322, "SEC_E_WRONG_PRINCIPAL"},
	{0x80090325, "SEC_E_UNTRUSTED_ROOT"},
	{0x80090328, "SEC_E_CERT_EXPIRED"},
	{0x80090331, "SEC_E_ALGORITHM_MISMATCH"},
	{0x80092012, "CRYPT_E_NO_REVOCATION_CHECK"},
	{0x800B010A, "CERT_E_CHAINING"},
	{0x800B010C, "CERT_E_REVOKED"},
	{0x800B010E, "CERT_E_REVOCATION_FAILURE"},
	{0x800B010F, "CERT_E_CN_NO_MATCH"},
}

// TestCodeValues pins every code to the number and symbol Windows gives
// it: each constant has the number of its symbol, Explain (what `iphttps
// errcode` prints) names that symbol for that number, every code the
// explanation table holds has a row above, and so has every exported code
// constant in the package's source (a constant added without a row fails
// here, and so does a row naming the wrong constant).
func TestCodeValues(t *testing.T) {
	inSource := exportedCodes(t)
	if len(inSource) < 20 {
		t.Fatalf("found only %d code constants in the source: the parser missed some", len(inSource))
	}
	rows := map[uint32]string{} // number -> symbol, over both tables
	add := func(want uint32, symbol string) {
		if prev, dup := rows[want]; dup {
			t.Errorf("%s has two rows: %s and %s", withDecimal(want), prev, symbol)
		}
		rows[want] = symbol
	}
	named := map[string]bool{}
	for _, c := range codeConstants {
		add(c.want, c.symbol)
		named[c.name] = true
		if c.value != c.want {
			t.Errorf("%s = %s, but %s is %s", c.name, withDecimal(c.value), c.symbol, withDecimal(c.want))
		}
		if v, ok := inSource[c.name]; !ok {
			t.Errorf("row %s: the package has no exported code constant of that name", c.name)
		} else if v != c.value {
			t.Errorf("row %s holds %s, but the constant of that name is %s in the source", c.name, Hex(c.value), Hex(v))
		}
		e, ok := Explain(c.value)
		switch {
		case !ok:
			t.Errorf("%s (%s): no explanation", c.name, Hex(c.value))
		case e.Code != c.value || e.Symbol != c.symbol:
			t.Errorf("%s (%s) is explained as %s %s, want %s", c.name, Hex(c.value), Hex(e.Code), e.Symbol, c.symbol)
		}
	}
	for name, v := range inSource {
		if !named[name] {
			t.Errorf("%s (%s) has no row in codeConstants: add it with the number and symbol from winerror.h", name, Hex(v))
		}
	}
	for _, c := range tableOnlyCodes {
		add(c.want, c.symbol)
		e, ok := Explain(c.want)
		switch {
		case !ok:
			t.Errorf("%s %s: no explanation", c.symbol, withDecimal(c.want))
		case e.Code != c.want || e.Symbol != c.symbol:
			t.Errorf("%s is explained as %s %s, want %s", withDecimal(c.want), Hex(e.Code), e.Symbol, c.symbol)
		}
	}
	for _, e := range Known() {
		if symbol, ok := rows[e.Code]; !ok || symbol != e.Symbol {
			t.Errorf("the explanation table has %s %s, which no row of this test pins (row: %q)", Hex(e.Code), e.Symbol, symbol)
		}
	}
}

// exportedCodes returns the exported constants of the package's non-test
// files that are codes, by name, with their values. Every exported
// constant is a code unless it is a string; a code must be written as a
// literal (the form winerror.h gives), so its value can be read here.
func exportedCodes(t *testing.T) map[string]uint32 {
	t.Helper()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	codes := map[string]uint32{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !name.IsExported() {
						continue
					}
					if len(vs.Values) != len(vs.Names) {
						t.Fatalf("%s: %s has no value of its own (iota or a repeated value): write each code as a literal", p, name.Name)
					}
					if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok {
						t.Fatalf("%s: %s is neither a string nor a number literal: write each code as a literal", p, name.Name)
					}
					if lit.Kind == token.STRING {
						continue
					}
					v, ok := constant.Uint64Val(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))
					if !ok || v > 0xFFFFFFFF {
						t.Fatalf("%s: %s = %s is not a 32-bit code", p, name.Name, lit.Value)
					}
					codes[name.Name] = uint32(v)
				}
			}
		}
	}
	return codes
}

// withDecimal is v in hex and decimal, as errcode prints it.
func withDecimal(v uint32) string { return fmt.Sprintf("%s (%d)", Hex(v), v) }
