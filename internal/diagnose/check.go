package diagnose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/iphttps/iphttps/internal/winerr"
)

// Check names: the stable identifiers of the checks, in the order they run.
// Scripts and tests match on these (the JSON "name" field); they never change
// meaning once released.
const (
	CheckIPv6           = "platform-ipv6"        // IPv6 enabled in this network namespace (0x643)
	CheckTUN            = "platform-tun"         // /dev/net/tun usable, CAP_NET_ADMIN (0x643)
	CheckInterface      = "platform-interface"   // no stale or duplicate device of that name (0x34)
	CheckURL            = "url"                  // iphttps.ParseURL (0x4be)
	CheckDNS            = "dns"                  // the server name resolves (0x2af9, 0x2afc)
	CheckProxy          = "proxy"                // the proxy in effect, and its CONNECT (0x2af9, 0x2afc)
	CheckTCP            = "tcp"                  // TCP to the server's port (0x274c, 0x274d, ...)
	CheckTLS            = "tls"                  // the TLS handshake (0x80090326, 0x90320, ...)
	CheckCertChain      = "cert-chain"           // chain to a trusted root (0x800b0109)
	CheckCertValidity   = "cert-validity"        // within its validity period (0x800b0101)
	CheckCertName       = "cert-name"            // Windows' name rule (0x103)
	CheckCertUsage      = "cert-usage"           // Server Authentication usage (0x103)
	CheckCertRevocation = "cert-revocation"      // CRL distribution points reachable (0x80092013, 0x80092010)
	CheckPOST           = "iphttps-post"         // the IP-HTTPS request is answered 200 (0x2afc)
	CheckRA             = "router-advertisement" // an RA with a /64 prefix arrives (0x2afc)

	// With --6to4-relay, after the platform checks (sixtofour.go).
	Check6to4Address      = "6to4-address"      // the local IPv4 address towards the relay is public (0x2743)
	Check6to4Mapping      = "6to4-mapping"      // the relay's Teredo server sees that address: no NAT (0x2743)
	Check6to4Reachability = "6to4-reachability" // an echo over protocol 41 to the relay's 6to4 address (0x274c)

	// With --teredo-server, after the 6to4 checks (teredo.go).
	CheckTeredoPrimary   = "teredo-primary"   // the primary address answers the qualification (0x274c, 0x2afc)
	CheckTeredoSecondary = "teredo-secondary" // the secondary address answers (WARN 0x274c)
	CheckTeredoNAT       = "teredo-nat"       // the NAT type as the client reports it (0x2afc symmetric, 0x274c unknown)
	CheckTeredoRelay     = "teredo-relay"     // an echo through the server to --teredo-echo-host (0x274c)
)

// CheckNames lists the checks of a diagnosis of an IP-HTTPS URL alone, in
// run order.
func CheckNames() []string {
	return append(platformCheckNames(), ipHTTPSCheckNames()...)
}

// SixToFourCheckNames lists the checks --6to4-relay adds, in run order.
// They run after the platform checks; then Teredo's, then IP-HTTPS's from
// url on: the order DirectAccess tries the methods in.
func SixToFourCheckNames() []string {
	return []string{Check6to4Address, Check6to4Mapping, Check6to4Reachability}
}

// TeredoCheckNames lists the checks --teredo-server adds, in run order,
// after 6to4's and before IP-HTTPS's.
func TeredoCheckNames() []string {
	return []string{CheckTeredoPrimary, CheckTeredoSecondary, CheckTeredoNAT, CheckTeredoRelay}
}

func platformCheckNames() []string { return []string{CheckIPv6, CheckTUN, CheckInterface} }

func ipHTTPSCheckNames() []string {
	return []string{CheckURL, CheckDNS, CheckProxy, CheckTCP, CheckTLS, CheckCertChain, CheckCertValidity,
		CheckCertName, CheckCertUsage, CheckCertRevocation, CheckPOST, CheckRA}
}

// Status is the outcome of one check.
type Status string

// Outcomes. WARN does not fail the diagnosis; FAIL does; SKIPPED means the
// check did not run (Check.Reason says why).
const (
	Pass    Status = "PASS"
	Warn    Status = "WARN"
	Fail    Status = "FAIL"
	Skipped Status = "SKIPPED"
)

// Code is a Windows code (Win32, Winsock or HRESULT). It is written as netsh
// writes it: "0x2afc".
type Code uint32

// String is the netsh form of the code.
func (c Code) String() string { return winerr.Hex(uint32(c)) }

// MarshalJSON writes the code as a string, "0x2afc".
func (c Code) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON reads "0x2afc" (or a JSON number).
func (c *Code) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n uint32
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("code: want \"0x...\" or a number: %w", err)
		}
		*c = Code(n)
		return nil
	}
	var n uint32
	if _, err := fmt.Sscanf(s, "0x%x", &n); err != nil {
		return fmt.Errorf("code %q: want 0x followed by hex digits", s)
	}
	*c = Code(n)
	return nil
}

// Fact is one thing a check saw.
type Fact struct {
	Key, Value string
}

// Facts is what a check saw, in the order it saw it. In JSON it is an object
// whose keys keep that order; a key appears once.
type Facts []Fact

// Add appends key: value (formatted with fmt.Sprint), replacing an earlier
// value of the same key.
func (f *Facts) Add(key string, value any) {
	v := fmt.Sprint(value)
	for i := range *f {
		if (*f)[i].Key == key {
			(*f)[i].Value = v
			return
		}
	}
	*f = append(*f, Fact{key, v})
}

// Get returns the value of key.
func (f Facts) Get(key string) (string, bool) {
	for _, x := range f {
		if x.Key == key {
			return x.Value, true
		}
	}
	return "", false
}

// MarshalJSON writes an object with the keys in order.
func (f Facts) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, x := range f {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(x.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(x.Value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads an object of strings, keeping the order of its keys.
func (f *Facts) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("facts: want a JSON object")
	}
	*f = nil
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return fmt.Errorf("facts: %w", err)
		}
		key, _ := t.(string)
		var v string
		if err := d.Decode(&v); err != nil {
			return fmt.Errorf("facts %q: %w", key, err)
		}
		*f = append(*f, Fact{key, v})
	}
	return nil
}

// Check is the result of one check.
type Check struct {
	// Name is one of the Check* constants.
	Name string `json:"name"`
	// Title says in a few words what was checked.
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Code is the Windows code the condition maps to: 0x0 for PASS, the
	// code Windows would report for FAIL (and for WARN, the code it would
	// report if the condition were enforced). Absent for SKIPPED.
	Code *Code `json:"code,omitempty"`
	// InterfaceStatus is the Windows "Interface Status" string that goes
	// with Code on a FAIL.
	InterfaceStatus string `json:"interface_status,omitempty"`
	// Saw is what the check actually saw.
	Saw Facts `json:"saw,omitempty"`
	// Cause is the likely cause of a FAIL or WARN (a note on a PASS).
	Cause string `json:"cause,omitempty"`
	// Fix is what to do about it.
	Fix string `json:"fix,omitempty"`
	// Symbol is Code's Windows name (WSAECONNREFUSED) and Remedies the
	// general remedies for it, as `iphttps errcode` gives them (WARN, FAIL).
	Symbol   string   `json:"symbol,omitempty"`
	Remedies []string `json:"remedies,omitempty"`
	// Reason says why a check was SKIPPED.
	Reason string `json:"reason,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"duration_ns"`
}

// result helpers, used by the checks.

func pass(saw Facts, note string) Check {
	return Check{Status: Pass, Code: codePtr(winerr.Success), Saw: saw, Cause: note}
}

func warn(code uint32, saw Facts, cause, fix string) Check {
	return Check{Status: Warn, Code: codePtr(code), Saw: saw, Cause: cause, Fix: fix}
}

func fail(code uint32, saw Facts, cause, fix string) Check {
	return Check{Status: Fail, Code: codePtr(code), Saw: saw, Cause: cause, Fix: fix}
}

// notApplicable is a check that does not apply (plain HTTP has no TLS, for
// example); the checks that need it still run.
func notApplicable(saw Facts, why string) Check {
	return Check{Status: Skipped, Saw: saw, Reason: why}
}

// took rounds a duration for people: two or three digits.
func took(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d < 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

func codePtr(c uint32) *Code {
	v := Code(c)
	return &v
}

// Step is one check of a plan.
type Step struct {
	Name  string
	Title string
	// Needs names the checks this one builds on: when one of them failed,
	// or was skipped because of a failure, this check is SKIPPED.
	Needs []string
	// Budget, when longer than the Runner's Timeout, is how long the
	// check takes by design (a Teredo qualification, 6to4's echoes): it
	// gets that long, and a little more, whatever the Timeout.
	Budget time.Duration
	// NoInterfaceStatus: the check is not about the IP-HTTPS interface
	// (6to4, Teredo), so a FAIL gets no Interface Status.
	NoInterfaceStatus bool
	// Run performs the check. The runner fills in Name, Title and
	// Duration, the InterfaceStatus for the code, and its Symbol and
	// Remedies unless the check set its own.
	Run func(ctx context.Context) Check
}

// budgetMargin is what a step with a Budget gets on top of it.
const budgetMargin = 2 * time.Second

// Runner runs steps in order, each bounded by Timeout.
type Runner struct {
	// Timeout bounds each check (default 10 s).
	Timeout time.Duration
	// Explain returns the explanation of a code (winerr.Explain), for
	// the symbol and the general remedies (optional).
	Explain func(code uint32) (winerr.Explanation, bool)
	// Log receives a line per check (optional).
	Log *slog.Logger
	// Progress, when set, is called after each check.
	Progress func(Check)
}

// DefaultTimeout bounds each check unless Runner.Timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Run runs the steps in order and returns their results, in the same order.
// A step whose needs failed is SKIPPED with the reason; the others run.
func (r *Runner) Run(ctx context.Context, steps []Step) []Check {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	blocked := map[string]string{} // check name -> why it blocks the checks that need it
	out := make([]Check, 0, len(steps))
	for _, st := range steps {
		var c Check
		why := ""
		for _, n := range st.Needs {
			if b, ok := blocked[n]; ok {
				why = b
				break
			}
		}
		switch {
		case why != "":
			c = Check{Status: Skipped, Reason: why}
		case ctx.Err() != nil:
			c = Check{Status: Skipped, Reason: fmt.Sprintf("the diagnosis was interrupted (%v)", context.Cause(ctx))}
		default:
			start := time.Now()
			limit := timeout
			if st.Budget > 0 && st.Budget+budgetMargin > limit {
				limit = st.Budget + budgetMargin
			}
			cctx, cancel := context.WithTimeout(ctx, limit)
			c = st.Run(cctx)
			cancel()
			c.Duration = time.Since(start)
			if ctx.Err() != nil && c.Status == Fail {
				// Interrupted (Ctrl-C): what failed is the wait, not the check.
				c = Check{Status: Skipped, Reason: fmt.Sprintf("the diagnosis was interrupted (%v)", context.Cause(ctx)), Duration: c.Duration}
			}
		}
		c.Name, c.Title = st.Name, st.Title
		switch {
		case c.Status == Fail:
			blocked[st.Name] = fmt.Sprintf("%s failed", st.Name)
		case c.Status == Skipped && why != "":
			blocked[st.Name] = why
		case c.Status == Skipped && ctx.Err() != nil:
			blocked[st.Name] = c.Reason
		}
		if c.Code != nil && c.Status == Fail && !st.NoInterfaceStatus {
			c.InterfaceStatus = winerr.StatusFor(uint32(*c.Code))
		}
		if c.Code != nil && *c.Code != 0 && (c.Status == Fail || c.Status == Warn) && r.Explain != nil {
			if e, ok := r.Explain(uint32(*c.Code)); ok {
				if c.Symbol == "" {
					c.Symbol = e.Symbol
				}
				if c.Remedies == nil {
					c.Remedies = e.Remedies
				}
			}
		}
		log.Debug("check", "name", c.Name, "status", c.Status, "code", c.Code, "took", c.Duration, "cause", c.Cause)
		if r.Progress != nil {
			r.Progress(c)
		}
		out = append(out, c)
	}
	return out
}
