package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteJSON writes the report as indented JSON (the layout doc.go
// describes).
func WriteJSON(w io.Writer, r Report) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	if err := e.Encode(r); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

// WriteHeader writes the first lines of the text report; title says what
// is diagnosed (Options.Title, Report.Title).
func WriteHeader(w io.Writer, title string) error {
	_, err := fmt.Fprintf(w, "\n%s\n%s\n", title, strings.Repeat("-", 60))
	return err
}

// WriteCheck writes one check in the text layout:
//
//	FAIL  tcp  TCP connection to the server's port  0x274d
//	      saw    203.0.113.10:443: ... refused
//	      cause  ...
//	      fix    ...
func WriteCheck(w io.Writer, c Check) error {
	var b strings.Builder
	code := ""
	if c.Code != nil && c.Status != Pass {
		code = "  " + c.Code.String()
	}
	fmt.Fprintf(&b, "%-7s %-21s %s%s\n", c.Status, c.Name, c.Title, code)
	const indent = "        "
	field := func(label, text string) {
		if text == "" {
			return
		}
		for i, line := range strings.Split(text, "\n") {
			if i == 0 {
				fmt.Fprintf(&b, "%s%-7s %s\n", indent, label, line)
			} else {
				fmt.Fprintf(&b, "%s%-7s %s\n", indent, "", line)
			}
		}
	}
	if c.Status == Skipped {
		field("reason", c.Reason)
	}
	for i, f := range c.Saw {
		label := ""
		if i == 0 {
			label = "saw"
		}
		fmt.Fprintf(&b, "%s%-7s %s: %s\n", indent, label, f.Key, f.Value)
	}
	switch c.Status {
	case Pass:
		field("note", c.Cause)
	case Warn, Fail:
		field("cause", c.Cause)
		field("fix", c.Fix)
		field("status", c.InterfaceStatus)
		if c.Symbol != "" {
			field("code", fmt.Sprintf("%s %s: `iphttps errcode %s` explains it", c.Code, c.Symbol, c.Code))
		}
		if c.Status == Fail {
			for i, r := range c.Remedies {
				label := ""
				if i == 0 {
					label = "remedy"
				}
				fmt.Fprintf(&b, "%s%-7s - %s\n", indent, label, r)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSummary writes the last lines of the text report.
func WriteSummary(w io.Writer, r Report) error {
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
	}
	tally := fmt.Sprintf("%d passed, %d warned, %d failed, %d skipped", counts[Pass], counts[Warn], counts[Fail], counts[Skipped])
	var line string
	switch r.Result {
	case Fail:
		status := ""
		if r.InterfaceStatus != "" {
			status = " " + r.InterfaceStatus
		}
		line = fmt.Sprintf("Result: FAIL at %s: %s%s (%s)", r.Failed, r.Code, status, tally)
	case Warn:
		line = fmt.Sprintf("Result: WARN: the client can connect; see the warnings (%s)", tally)
	default:
		line = fmt.Sprintf("Result: PASS: the client can connect (%s)", tally)
	}
	if _, err := fmt.Fprintln(w, strings.Repeat("-", 60)); err != nil {
		return err
	}
	if r.Verdict != nil {
		if err := writeVerdict(w, *r.Verdict); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%s in %v\n\n", line, r.Duration.Round(time.Millisecond))
	return err
}

// WriteText writes the whole report in the text layout.
func WriteText(w io.Writer, r Report) error {
	if err := WriteHeader(w, r.Title()); err != nil {
		return err
	}
	for _, c := range r.Checks {
		if err := WriteCheck(w, c); err != nil {
			return err
		}
	}
	return WriteSummary(w, r)
}
