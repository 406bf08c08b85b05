package proxy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jcmturner/gokrb5/v8/client"
	krb5config "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/iphttps/iphttps/internal/winerr"
)

// How the client answers a proxy's 407 challenge (proxy_auth).
const (
	// AuthAuto answers Negotiate when the proxy offers it and Kerberos is
	// configured, else Basic when the proxy offers it.
	AuthAuto = "auto"
	// AuthBasic answers only Basic.
	AuthBasic = "basic"
	// AuthNegotiate answers only Negotiate (Kerberos): the password never
	// goes to the proxy.
	AuthNegotiate = "negotiate"
)

// ParseAuth checks a proxy_auth value; "" is AuthAuto.
func ParseAuth(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", AuthAuto:
		return AuthAuto, nil
	case AuthBasic:
		return AuthBasic, nil
	case AuthNegotiate:
		return AuthNegotiate, nil
	}
	return "", fmt.Errorf("proxy_auth %q: want auto, basic or negotiate", s)
}

// Kerberos is what Negotiate (SPNEGO with Kerberos, RFC 4559) needs: the
// krb5.conf naming the realms and their KDCs and, optionally, a keytab to
// log in with instead of the proxy user's password. It is read once and
// only read afterwards, so proxies share it.
type Kerberos struct {
	ConfPath   string
	KeytabPath string
	conf       *krb5config.Config
	keytab     *keytab.Keytab
}

// LoadKerberos reads the krb5.conf at confPath and, if keytabPath is not
// empty, the keytab there.
func LoadKerberos(confPath, keytabPath string) (*Kerberos, error) {
	if confPath == "" {
		return nil, errors.New("Kerberos: no krb5.conf given (proxy_krb5_conf)")
	}
	conf, err := krb5config.Load(confPath)
	if err != nil {
		return nil, fmt.Errorf("Kerberos: krb5.conf %s: %w", confPath, err)
	}
	k := &Kerberos{ConfPath: confPath, KeytabPath: keytabPath, conf: conf}
	if keytabPath != "" {
		if k.keytab, err = keytab.Load(keytabPath); err != nil {
			return nil, fmt.Errorf("Kerberos: keytab %s: %w", keytabPath, err)
		}
		if len(k.keytab.Entries) == 0 {
			return nil, fmt.Errorf("Kerberos: keytab %s has no keys", keytabPath)
		}
	}
	return k, nil
}

// principal is the client principal ("user@REALM") of user: user's own
// realm when it names one, else krb5.conf's default realm; with a keytab
// and no user, the keytab's first principal.
func (k *Kerberos) principal(user string) (name, realm string, err error) {
	if user == "" && k.keytab != nil {
		e := k.keytab.Entries[0].Principal
		return strings.Join(e.Components, "/"), e.Realm, nil
	}
	if user == "" {
		return "", "", errors.New("no Kerberos credentials: give a keytab (proxy_keytab) or user:password (--proxy-credentials FILE)")
	}
	if i := strings.LastIndex(user, "@"); i >= 0 {
		return user[:i], user[i+1:], nil
	}
	if k.conf.LibDefaults.DefaultRealm == "" {
		return "", "", fmt.Errorf("user %q names no realm and %s has no default_realm", user, k.ConfPath)
	}
	return user, k.conf.LibDefaults.DefaultRealm, nil
}

// canLogIn says whether the credentials suffice for a Kerberos login.
func (k *Kerberos) canLogIn(user string) bool {
	return k != nil && (k.keytab != nil || user != "")
}

// negotiate returns the Proxy-Authorization value for proxy p: "Negotiate"
// and an SPNEGO NegTokenInit carrying a Kerberos AP-REQ for the service
// principal HTTP/<proxy host>, and a description of it for messages. Each
// call logs in afresh (an AS exchange, then a TGS exchange) and keeps no
// ticket. The KDC exchanges cannot be cancelled; ctx ending returns at once
// and leaves them to their own timeouts.
func (k *Kerberos) negotiate(ctx context.Context, p Proxy) (auth, sent string, err error) {
	host := p.URL.Hostname()
	spn := "HTTP/" + host
	name, realm, err := k.principal(p.User)
	if err != nil {
		return "", "", fmt.Errorf("Kerberos: cannot get a ticket for %s: %w", spn, err)
	}
	// The service's realm as gokrb5 finds it: krb5.conf's domain_realm,
	// else the client's own realm.
	spnRealm := k.conf.ResolveRealm(host)
	if spnRealm == "" {
		spnRealm = realm
	}
	spnFull := spn + "@" + spnRealm
	who := name + "@" + realm
	type result struct {
		auth string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var cl *client.Client
		if k.keytab != nil {
			cl = client.NewWithKeytab(name, realm, k.keytab, k.conf, client.DisablePAFXFAST(true))
		} else {
			cl = client.NewWithPassword(name, realm, p.Password, k.conf, client.DisablePAFXFAST(true))
		}
		defer cl.Destroy() // stops the session's renewal goroutine
		s := spnego.SPNEGOClient(cl, spn)
		if err := s.AcquireCred(); err != nil {
			done <- result{err: err}
			return
		}
		tok, err := s.InitSecContext()
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := tok.Marshal()
		if err != nil {
			done <- result{err: fmt.Errorf("SPNEGO token: %w", err)}
			return
		}
		done <- result{auth: "Negotiate " + base64.StdEncoding.EncodeToString(b)}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return "", "", fmt.Errorf("Kerberos: cannot get a ticket for %s as %s: %w", spnFull, who, r.err)
		}
		return r.auth, fmt.Sprintf("the Kerberos ticket of %s for %s", who, spnFull), nil
	case <-ctx.Done():
		return "", "", fmt.Errorf("Kerberos: cannot get a ticket for %s as %s: %w", spnFull, who, ctx.Err())
	}
}

// challenge is one authentication scheme a proxy offers, with its data
// (a token68 or auth-params, as received).
type challenge struct {
	scheme string
	data   string
}

// challenges parses Proxy-Authenticate values (RFC 9110 11.6.1): each is a
// comma-separated list of challenges, a challenge being a scheme and
// optionally a token68 or comma-separated auth-params (which may hold
// quoted commas).
func challenges(values []string) []challenge {
	var cs []challenge
	for _, v := range values {
		for _, elem := range splitList(v) {
			elem = strings.TrimSpace(elem)
			if elem == "" {
				continue
			}
			tok, rest, _ := strings.Cut(elem, " ")
			rest = strings.TrimSpace(rest)
			if !isToken(tok) || strings.HasPrefix(rest, "=") {
				// An auth-param of the current challenge.
				if n := len(cs); n > 0 {
					if cs[n-1].data != "" {
						cs[n-1].data += ", "
					}
					cs[n-1].data += elem
				}
				continue
			}
			cs = append(cs, challenge{scheme: tok, data: rest})
		}
	}
	return cs
}

// splitList splits s at commas outside quoted strings.
func splitList(s string) []string {
	var out []string
	start, quoted, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// Scheme names as the client sends them.
const (
	schemeBasic     = "Basic"
	schemeNegotiate = "Negotiate"
)

// choose picks the scheme to answer a 407 offering cs with p's settings:
// Negotiate when offered, allowed (proxy_auth auto or negotiate) and
// Kerberos can log in; else Basic when offered, allowed (auto or basic) and
// a user is set. With none, why says what is missing.
func (p Proxy) choose(cs []challenge) (scheme, why string) {
	offers := func(name string) bool {
		for _, c := range cs {
			if strings.EqualFold(c.scheme, name) {
				return true
			}
		}
		return false
	}
	mode := p.Auth
	if mode == "" {
		mode = AuthAuto
	}
	negotiate, basic := offers(schemeNegotiate), offers(schemeBasic)
	if mode != AuthBasic && negotiate && p.Kerberos.canLogIn(p.User) {
		return schemeNegotiate, ""
	}
	if mode != AuthNegotiate && basic && p.User != "" {
		return schemeBasic, ""
	}
	var hints []string
	switch {
	case mode == AuthNegotiate && !negotiate:
		hints = append(hints, "it does not offer Negotiate, and proxy_auth is negotiate")
	case mode == AuthBasic && !basic:
		hints = append(hints, "it does not offer Basic, and proxy_auth is basic")
	case negotiate && mode != AuthBasic && p.Kerberos == nil:
		hints = append(hints, "for Negotiate give a Kerberos configuration (--proxy-krb5-conf) and credentials")
	case negotiate && mode != AuthBasic:
		hints = append(hints, "for Negotiate give a keytab (--proxy-keytab) or user:password (--proxy-credentials FILE)")
	}
	switch {
	case basic && mode == AuthNegotiate:
	case basic && p.User == "":
		hints = append(hints, "give credentials with --proxy-credentials FILE")
	case !basic && !negotiate:
		hints = append(hints, "the client speaks only Basic and Negotiate")
	}
	if len(hints) == 0 {
		hints = append(hints, "the client has no credentials for the schemes offered")
	}
	return "", strings.Join(hints, "; ")
}

// authenticate answers a 407 challenge with the scheme choose picks, on the
// same connection when the proxy keeps it. With no scheme to answer, resp is
// returned as it is and t.why says why. A Kerberos failure is an error with
// code 0x2AFC: the proxy's challenge cannot be met.
func (t *tunnel) authenticate(ctx context.Context, resp *http.Response) (*http.Response, error) {
	offered := resp.Header.Values("Proxy-Authenticate")
	scheme, why := t.p.choose(challenges(offered))
	var auth string
	switch scheme {
	case "":
		t.why = why
		return resp, nil
	case schemeBasic:
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(t.p.User+":"+t.p.Password))
		t.sent = fmt.Sprintf("the credentials of user %q", t.p.User)
	case schemeNegotiate:
		var err error
		if auth, t.sent, err = t.p.Kerberos.negotiate(ctx, t.p); err != nil {
			resp.Body.Close()
			return nil, winerr.New(winerr.NoData, fmt.Errorf("proxy %s requires authentication (%s; it offers %s): %w",
				t.p, resp.Status, strings.Join(offered, ", "), err))
		}
	}
	if err := t.again(ctx, resp); err != nil {
		return nil, err
	}
	return t.connect(auth)
}
