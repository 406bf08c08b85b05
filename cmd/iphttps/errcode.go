package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/iphttps/iphttps/internal/diagnose"
	"github.com/iphttps/iphttps/internal/winerr"
)

// errcodeWidth is the width explanations are wrapped to.
const errcodeWidth = 100

func newErrcodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "errcode CODE | --list",
		Short: "Explain an IP-HTTPS error code: meaning, causes and remedies on Linux",
		Long: `Explain a code shown as "Last Error Code" by iphttps (iphttps show interfaces) or by Windows
(netsh interface httpstunnel show interfaces, Get-NetIPHttpsState): its symbol, the Windows
message, the Interface Status that goes with it, what it means for IP-HTTPS, its causes, and
the remedies in the terms of iphttps on Linux; for a code the 6to4 and Teredo checks of
iphttps diagnose report, what it means there and what to do.

CODE is hex with 0x (0x2af9, 0x800B0109), decimal (11001, as PowerShell's LastErrorCode
property gives it) or the signed decimal of an HRESULT (-2146762487). --list prints every
known code with a one-line meaning. An unknown code exits with status 1.`,
		Example: `  iphttps errcode 0x2af9
  iphttps errcode -2146762487
  iphttps errcode --list
  iphttps errcode 0x643 --json`,
		// Flags are parsed in runErrcode: a negative decimal code such as
		// -2146762487 must not be taken for a flag.
		DisableFlagParsing: true,
		RunE:               runErrcode,
	}
	cmd.Flags().Bool("json", false, "print JSON")
	cmd.Flags().Bool("list", false, "list every known code with its symbol and a one-line meaning")
	return cmd
}

// runErrcode is the errcode command. Any error it returns makes iphttps exit
// with status 1: usage errors, unparsable codes and unknown codes.
func runErrcode(cmd *cobra.Command, args []string) error {
	var codes, rest []string
	for _, a := range args {
		if len(a) > 1 && a[0] == '-' && a[1] >= '0' && a[1] <= '9' {
			codes = append(codes, a) // a negative decimal code
		} else {
			rest = append(rest, a)
		}
	}
	fs := cmd.Flags()
	if err := fs.Parse(rest); err != nil {
		return fmt.Errorf("errcode: %w (see iphttps errcode --help)", err)
	}
	if help, _ := fs.GetBool("help"); help {
		return cmd.Help()
	}
	codes = append(codes, fs.Args()...)
	asJSON, _ := fs.GetBool("json")
	list, _ := fs.GetBool("list")
	out := cmd.OutOrStdout()
	switch {
	case list && len(codes) > 0:
		return errors.New("errcode: give either CODE or --list, not both")
	case list:
		if asJSON {
			return writeJSON(out, winerr.Known())
		}
		return writeCodeList(out, winerr.Known())
	case len(codes) != 1:
		return errors.New("errcode: want one CODE (hex 0x2af9, decimal 11001 or -2146762487), or --list")
	}
	code, err := winerr.ParseCode(codes[0])
	if err != nil {
		return fmt.Errorf("errcode: %w", err)
	}
	e, ok := winerr.Explain(code)
	if !ok {
		unknown := fmt.Errorf("%s (%s) is not an IP-HTTPS code: neither Windows nor iphttps reports it as "+
			"Last Error Code; `iphttps errcode --list` shows the codes that exist", winerr.Hex(code), codeNumbers(code))
		if asJSON {
			if err := writeJSON(out, errcodeAnswer{Asked: winerr.Hex(code), Error: unknown.Error()}); err != nil {
				return err
			}
		}
		return unknown
	}
	notes := diagnose.MethodNotes(e.Code)
	if asJSON {
		return writeJSON(out, errcodeAnswer{Asked: winerr.Hex(code), Known: true, Explanation: &e, Diagnose: notes})
	}
	return writeExplanation(out, code, e, notes)
}

// errcodeAnswer is the JSON answer for one code. Asked is the code as given;
// Explanation.Code differs from it for the HRESULT form of a Win32 code.
// Diagnose says what the code means in the 6to4 and Teredo checks of
// `iphttps diagnose` that report it.
type errcodeAnswer struct {
	Asked       string                `json:"asked"`
	Known       bool                  `json:"known"`
	Error       string                `json:"error,omitempty"`
	Explanation *winerr.Explanation   `json:"explanation,omitempty"`
	Diagnose    []diagnose.MethodNote `json:"diagnose_checks,omitempty"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("errcode: write JSON: %w", err)
	}
	return nil
}

// codeNumbers gives a code's decimal forms: unsigned, and signed when the
// top bit is set (the way PowerShell prints an HRESULT held in an int).
func codeNumbers(code uint32) string {
	if int32(code) < 0 {
		return fmt.Sprintf("%d; signed %d", code, int32(code))
	}
	return fmt.Sprint(code)
}

func writeCodeList(w io.Writer, all []winerr.Explanation) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tSYMBOL\tMEANING")
	for _, e := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", winerr.Hex(e.Code), e.Symbol, e.Summary)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("errcode: %w", err)
	}
	return nil
}

func writeExplanation(w io.Writer, asked uint32, e winerr.Explanation, notes []diagnose.MethodNote) error {
	var b strings.Builder
	if asked != e.Code {
		fmt.Fprintf(&b, "%s is HRESULT_FROM_WIN32(%s), the same error as %s.\n\n", winerr.Hex(asked), winerr.Hex(e.Code), winerr.Hex(e.Code))
	}
	fmt.Fprintf(&b, "%s (%s)  %s\n%s\n", winerr.Hex(e.Code), codeNumbers(e.Code), e.Symbol, strings.Repeat("-", 60))
	field := func(label, value string) {
		wrap(&b, value, fmt.Sprintf("%-27s: ", label), strings.Repeat(" ", 29))
	}
	field("Windows message", e.Message)
	status := e.Status
	if status == "" {
		status = "none (a server start-up error: the server exits with it)"
	}
	field("Interface Status", status)
	field("Kind", e.Family)
	documented := "no (Windows is not documented to show it for IP-HTTPS)"
	if e.Documented {
		documented = "yes (DirectAccess troubleshooting material)"
	}
	field("Documented for IP-HTTPS", documented)
	field("Reported by iphttps", e.Reported)
	field("Summary", e.Summary)
	b.WriteString("\nMeaning:\n")
	wrap(&b, e.Meaning, "  ", "  ")
	b.WriteString("\nCauses:\n")
	for _, c := range e.Causes {
		wrap(&b, c, "  - ", "    ")
	}
	b.WriteString("\nRemedies (iphttps on Linux):\n")
	for _, r := range e.Remedies {
		wrap(&b, r, "  - ", "    ")
	}
	if len(notes) > 0 {
		b.WriteString("\nIn the 6to4 and Teredo checks of `iphttps diagnose`:\n")
		for _, n := range notes {
			wrap(&b, n.Meaning, fmt.Sprintf("  %s: ", n.Check), "    ")
			for _, r := range n.Remedies {
				wrap(&b, r, "    - ", "      ")
			}
		}
	}
	if len(e.Related) > 0 {
		b.WriteString("\n")
		wrap(&b, "iphttps errcode "+strings.Join(e.Related, ", iphttps errcode "), "See also: ", "          ")
	}
	b.WriteString("\n")
	wrap(&b, e.Next, "Next step: ", "           ")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("errcode: %w", err)
	}
	return nil
}

// wrap writes text wrapped to errcodeWidth, the first line after first and
// the others after rest. Words longer than a line stay whole.
func wrap(b *strings.Builder, text, first, rest string) {
	prefix, n := first, 0
	b.WriteString(prefix)
	n = len(prefix)
	atStart := true
	for _, word := range strings.Fields(text) {
		if !atStart && n+1+len(word) > errcodeWidth {
			b.WriteString("\n")
			b.WriteString(rest)
			n, atStart = len(rest), true
		}
		if !atStart {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
		atStart = false
	}
	b.WriteString("\n")
}
