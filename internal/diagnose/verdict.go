package diagnose

import (
	"fmt"
	"io"
	"strings"
)

// The methods, as the verdict names them.
const (
	MethodSixToFour = "6to4"
	MethodTeredo    = "Teredo"
	MethodIPHTTPS   = "IP-HTTPS"
)

// Verdict says which method would carry the traffic: the first, in the
// order DirectAccess tries them (6to4, Teredo, IP-HTTPS), whose checks
// passed.
type Verdict struct {
	// Method is that method; empty when none would.
	Method string `json:"method"`
	// Reasons say why not for each method diagnosed before it (for every
	// one diagnosed when none would), in that order.
	Reasons []Reason `json:"reasons"`
}

// Reason is why a method would not carry the traffic: its first failed
// check (a failed platform check counts for every method), or else the
// check that decides the method (6to4-reachability, teredo-nat,
// router-advertisement) when it did not pass.
type Reason struct {
	Method string `json:"method"`
	Check  string `json:"check"`
	// Code is the failed check's code; absent when the check was skipped.
	Code *Code `json:"code,omitempty"`
	// Cause is the failed check's cause, or why it was skipped.
	Cause string `json:"cause"`
}

// method is a method's checks, and the check that decides it: the method
// works when that one passed and none of the others failed.
type method struct {
	name     string
	checks   []string
	decisive string
}

// methods are the methods diagnosed by o, in DirectAccess's order.
func (o Options) methods() []method {
	var ms []method
	if o.SixToFourRelay.IsValid() {
		ms = append(ms, method{MethodSixToFour, SixToFourCheckNames(), Check6to4Reachability})
	}
	if o.TeredoServer != "" {
		ms = append(ms, method{MethodTeredo, TeredoCheckNames(), CheckTeredoNAT})
	}
	if o.ipHTTPS() {
		ms = append(ms, method{MethodIPHTTPS, ipHTTPSCheckNames(), CheckRA})
	}
	return ms
}

// verdict judges the methods o diagnosed by their checks.
func verdict(o Options, checks []Check) Verdict {
	byName := make(map[string]Check, len(checks))
	for _, c := range checks {
		byName[c.Name] = c
	}
	v := Verdict{Reasons: []Reason{}}
	for _, m := range o.methods() {
		r, failed := whyNot(m, byName)
		if !failed {
			v.Method = m.name
			break
		}
		v.Reasons = append(v.Reasons, r)
	}
	return v
}

// whyNot says why m would not carry the traffic; failed is false when it
// would.
func whyNot(m method, byName map[string]Check) (r Reason, failed bool) {
	for _, name := range append(platformCheckNames(), m.checks...) {
		if c, ok := byName[name]; ok && c.Status == Fail {
			return Reason{Method: m.name, Check: name, Code: c.Code, Cause: c.Cause}, true
		}
	}
	d, ok := byName[m.decisive]
	if ok && (d.Status == Pass || d.Status == Warn) {
		return Reason{}, false
	}
	cause := d.Reason
	if cause == "" {
		cause = "not run"
	}
	return Reason{Method: m.name, Check: m.decisive, Cause: cause}, true
}

// writeVerdict writes the verdict in the text layout:
//
//	Verdict: Teredo would carry the traffic (DirectAccess tries 6to4, Teredo, IP-HTTPS in that order)
//	        not 6to4: 6to4-mapping 0x2743: behind a NAT: ...
func writeVerdict(w io.Writer, v Verdict) error {
	var b strings.Builder
	if v.Method != "" {
		fmt.Fprintf(&b, "Verdict: %s would carry the traffic (DirectAccess tries 6to4, Teredo, IP-HTTPS in that order)\n", v.Method)
	} else {
		b.WriteString("Verdict: no method would carry the traffic\n")
	}
	for _, r := range v.Reasons {
		code := ""
		if r.Code != nil {
			code = " " + r.Code.String()
		}
		fmt.Fprintf(&b, "        not %s: %s%s: %s\n", r.Method, r.Check, code, r.Cause)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
