package diagnose

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/iphttps"
	"github.com/iphttps/iphttps/internal/winerr"
)

// handshake is what the TLS check leaves for the later checks.
type handshake struct {
	Conn     *iphttps.Conn
	State    tls.ConnectionState
	Asked    bool // the server asked for a client certificate
	HaveCert bool
}

// checkTLS runs the client's TLS handshake (iphttps.Handshake) on raw. Its
// configuration is the client's without the verification, which the
// certificate checks do one part at a time.
func checkTLS(ctx context.Context, raw net.Conn, host string, rule iphttps.NameRule, certs []tls.Certificate) (Check, *handshake) {
	var saw Facts
	saw.Add("server name (SNI)", host)
	cfg := iphttps.TLSConfig(host, nil, rule, certs, nil)
	cfg.VerifyConnection = nil
	var (
		asked bool
		cs    tls.ConnectionState
		err   error // crypto/tls's, as it came
	)
	tr := &iphttps.Trace{
		CertificateRequested: func() { asked = true },
		TLSHandshakeDone:     func(s tls.ConnectionState, e error) { cs, err = s, e },
	}
	start := time.Now()
	tc, _ := iphttps.Handshake(ctx, raw, cfg, tr)
	elapsed := took(time.Since(start))
	if tc == nil {
		saw.Add("handshake", fmt.Sprintf("%v after %v", err, elapsed))
		if asked {
			saw.Add("client certificate", "requested by the server")
		}
		return tlsFailure(err, saw, asked, len(certs) > 0), nil
	}
	saw.Add("version", tls.VersionName(cs.Version))
	saw.Add("cipher suite", tls.CipherSuiteName(cs.CipherSuite))
	saw.Add("handshake time", elapsed)
	saw.Add("certificates sent", len(cs.PeerCertificates))
	if len(cs.PeerCertificates) > 0 {
		saw.Add("server certificate", cs.PeerCertificates[0].Subject.String())
	}
	h := &handshake{Conn: tc, State: cs, Asked: asked, HaveCert: len(certs) > 0}
	switch {
	case asked && len(certs) > 0:
		saw.Add("client certificate", "requested; sent "+certSubject(certs[0]))
	case asked:
		saw.Add("client certificate", "requested; none configured")
		if cs.Version >= tls.VersionTLS13 {
			// The server judges the client certificate after the
			// handshake; the request check will see its verdict.
			return warn(winerr.IncompleteCredentials, saw,
				"the server asks for a client certificate (authentication mode certificates) and none is configured: it will probably close the connection",
				"give the client a certificate from the server's client CA with --cert FILE --key FILE"), h
		}
		saw.Add("note", "the server accepted the handshake without one")
	default:
		saw.Add("client certificate", "not requested")
	}
	if len(cs.PeerCertificates) == 0 {
		return fail(winerr.CertUnknown, saw, "the server sent no certificate", "configure the server's certificate"), h
	}
	return pass(saw, ""), h
}

func certSubject(c tls.Certificate) string {
	if c.Leaf != nil {
		return c.Leaf.Subject.String()
	}
	if len(c.Certificate) > 0 {
		if l, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
			return l.Subject.String()
		}
	}
	return "a certificate"
}

// tlsFailure classifies a failed handshake (or a TLS failure on the first
// read) as the client does.
func tlsFailure(err error, saw Facts, asked, haveCert bool) Check {
	if asked && !haveCert {
		return fail(winerr.IncompleteCredentials, saw,
			"the server requires a client certificate (authentication mode certificates, or a pre-authenticating front end) and none is configured",
			"give the client a certificate from the CA the server trusts for clients, with --cert FILE --key FILE")
	}
	code := codeOf(err)
	var rh tls.RecordHeaderError
	var cause, fix string
	switch {
	case code == winerr.IncompleteCredentials:
		cause = "the server rejected the client certificate, or requires one"
		fix = "use a client certificate from the CA the server trusts for clients (--cert, --key)"
	case errors.As(err, &rh):
		cause = "the server does not speak TLS on this port (plain HTTP, or another service)"
		fix = "check the port in the URL and what listens there; a server behind a TLS terminator needs the terminator's address"
	case code == winerr.IllegalMessage:
		cause = fmt.Sprintf("the server aborted the TLS handshake (%v): no TLS version or cipher suite in common (a server offering only NULL cipher suites or TLS 1.0/1.1 does not work with this client, which needs TLS 1.2 or 1.3), or a client-certificate setup problem in front of the server", err)
		fix = "allow TLS 1.2 (or 1.3) with an encrypted cipher suite on the server or the load balancer in front of it"
	case code == winerr.ConnReset:
		cause = "the connection was closed during the TLS handshake: a middlebox (TLS-inspecting proxy, IPS) or the server dropped it"
		fix = "look for a device in the path that inspects or blocks TLS; IP-HTTPS needs TLS end to end"
	case code == winerr.TimedOut:
		cause = "no TLS answer in time: the server (or a proxy on the way) accepted TCP but does not complete the handshake"
		fix = "check the server's logs and load; a TLS-inspecting or stalled middlebox can cause this"
	default:
		cause = fmt.Sprintf("the TLS handshake failed: %v", err)
		fix = "check the server's TLS configuration"
	}
	return fail(code, saw, cause, fix)
}

// describeCert adds what a certificate holds to saw.
func describeCert(saw *Facts, c *x509.Certificate) {
	saw.Add("subject", c.Subject.String())
	sans := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	if len(sans) == 0 {
		saw.Add("subject alternative names", "none")
	} else {
		saw.Add("subject alternative names", strings.Join(sans, ", "))
	}
	saw.Add("issuer", c.Issuer.String())
}

// validityTime is a time at which every certificate sent is within its
// validity, if there is one (else now): the chain can then be judged apart
// from expiry.
func validityTime(chain []*x509.Certificate, now time.Time) time.Time {
	from, to := chain[0].NotBefore, chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotBefore.After(from) {
			from = c.NotBefore
		}
		if c.NotAfter.Before(to) {
			to = c.NotAfter
		}
	}
	switch {
	case from.After(to):
		return now
	case now.Before(from):
		return from
	case now.After(to):
		return to
	}
	return now
}

// verify builds the chain of the certificates sent to roots (system roots
// when nil) at time at, for usage.
func verify(chain []*x509.Certificate, roots *x509.CertPool, at time.Time, usage x509.ExtKeyUsage) ([][]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	return chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
}

func isExpiry(err error) bool {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		return true
	}
	var ua x509.UnknownAuthorityError
	// An expired intermediate shows as an unknown authority with a hint.
	return errors.As(err, &ua) && isExpiryHint(ua)
}

func isExpiryHint(ua x509.UnknownAuthorityError) bool {
	// The hint is not exported; its text names the expiry.
	return strings.Contains(ua.Error(), "expired") || strings.Contains(ua.Error(), "not yet valid")
}

// chainText is "leaf <- issuer <- root".
func chainText(chain []*x509.Certificate) string {
	parts := make([]string, len(chain))
	for i, c := range chain {
		parts[i] = c.Subject.String()
	}
	return strings.Join(parts, " <- ")
}

// signedPath reports whether chain[0] leads, by signatures alone (no
// dates), through the certificates sent to one of roots; it returns that
// path.
func signedPath(chain []*x509.Certificate, roots []*x509.Certificate) ([]*x509.Certificate, bool) {
	path := []*x509.Certificate{chain[0]}
	cur := chain[0]
	for range len(chain) + 1 {
		for _, r := range roots {
			if bytes.Equal(cur.RawIssuer, r.RawSubject) && cur.CheckSignatureFrom(r) == nil {
				if !bytes.Equal(cur.Raw, r.Raw) {
					path = append(path, r)
				}
				return path, true
			}
		}
		next := (*x509.Certificate)(nil)
		for _, c := range chain[1:] {
			if bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			return nil, false
		}
		path, cur = append(path, next), next
	}
	return nil, false
}

// checkCertChain verifies that the certificates sent chain to a trusted
// root. Expiry is left to the validity check: an expired chain is judged at
// a time within its validity, or, when the certificates share no such time,
// by signatures alone against rootCerts (the --ca certificates; nil for the
// system roots, which cannot be listed).
//
// viaProxy names the proxy the connection goes through, if any: an untrusted
// chain then may be the proxy's own (TLS inspection).
func checkCertChain(chain []*x509.Certificate, roots *x509.CertPool, rootCerts []*x509.Certificate, rootsName, viaProxy string, now time.Time) (Check, [][]*x509.Certificate) {
	var saw Facts
	describeCert(&saw, chain[0])
	saw.Add("intermediates sent", len(chain)-1)
	saw.Add("trusted roots", rootsName)
	chains, err := verify(chain, roots, now, x509.ExtKeyUsageAny)
	note := ""
	if err != nil && isExpiry(err) {
		at := validityTime(chain, now)
		chains2, err2 := verify(chain, roots, at, x509.ExtKeyUsageAny)
		switch {
		case err2 == nil || !isExpiry(err2):
			chains, err = chains2, err2
			note = fmt.Sprintf("judged at %s, within the validity of the certificates sent (their validity is the next check)", at.UTC().Format(time.RFC3339))
		case rootCerts != nil:
			if path, ok := signedPath(chain, rootCerts); ok {
				saw.Add("chain", chainText(path)+" (signatures only)")
				return pass(saw, "the certificates share no validity period with the CA, so the chain is judged by its signatures alone (their validity is the next check)"), [][]*x509.Certificate{path}
			}
			err = x509.UnknownAuthorityError{Cert: chain[len(chain)-1]}
		default:
			saw.Add("verification", err)
			return warn(winerr.CertUntrustedRoot, saw,
				"the trust in the chain cannot be judged apart from the expiry (the certificates share no validity period with a trusted root)",
				"fix the validity first (next check)"), nil
		}
	}
	if err == nil {
		saw.Add("chain", chainText(chains[0]))
		return pass(saw, note), chains
	}
	saw.Add("verification", err)
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		cause := fmt.Sprintf("the certificate chain ends in a root this host does not trust (issuer %s)", chain[len(chain)-1].Issuer)
		if last := chain[len(chain)-1]; bytes.Equal(last.RawIssuer, last.RawSubject) {
			cause = fmt.Sprintf("the chain ends in the self-signed certificate %s, which this host does not trust", last.Subject)
		}
		if viaProxy != "" {
			cause += fmt.Sprintf("; the connection goes through proxy %s: a proxy that inspects TLS presents its own certificate, which IP-HTTPS cannot use (it needs TLS end to end: exempt the server from inspection)", viaProxy)
		}
		return fail(winerr.CertUntrustedRoot, saw, cause,
			"trust the CA that issued the server certificate: --ca FILE (or install it in the system store: /usr/local/share/ca-certificates/ and update-ca-certificates); if the server's self-signed certificate was renewed, give clients the new one; a server must send its intermediate certificates (in its --cert file)"), nil
	}
	return fail(codeOf(err), saw, fmt.Sprintf("the certificate chain is not valid: %v", err),
		"reissue the server certificate from a CA allowed to issue it"), nil
}

// expiryWarning is how early an approaching expiry is reported.
const expiryWarning = 14 * 24 * time.Hour

// checkCertValidity checks every certificate sent against now.
func checkCertValidity(chain []*x509.Certificate, now time.Time) Check {
	var saw Facts
	saw.Add("now", now.UTC().Format(time.RFC3339))
	saw.Add("valid from", chain[0].NotBefore.UTC().Format(time.RFC3339))
	saw.Add("valid until", chain[0].NotAfter.UTC().Format(time.RFC3339))
	for i, c := range chain {
		what := "the server certificate"
		if i > 0 {
			what = "the intermediate " + c.Subject.String()
			saw.Add(fmt.Sprintf("intermediate %d valid", i), fmt.Sprintf("%s to %s", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339)))
		}
		switch {
		case now.After(c.NotAfter):
			return fail(winerr.CertExpired, saw,
				fmt.Sprintf("%s expired on %s", what, c.NotAfter.UTC().Format(time.RFC3339)),
				"renew the certificate, install it on the server (--cert, --key) and restart it; if it should still be valid, check this host's clock (timedatectl)")
		case now.Before(c.NotBefore):
			return fail(winerr.CertExpired, saw,
				fmt.Sprintf("%s is not valid before %s: it is new, or this host's clock is behind", what, c.NotBefore.UTC().Format(time.RFC3339)),
				"check this host's clock (timedatectl, NTP)")
		}
	}
	if left := chain[0].NotAfter.Sub(now); left < expiryWarning {
		return warn(winerr.CertExpired, saw,
			fmt.Sprintf("the server certificate expires in %v", left.Round(time.Hour)),
			"renew the certificate before it expires")
	}
	return pass(saw, "")
}

// checkCertName applies the client's name rule (iphttps.CheckName).
func checkCertName(leaf *x509.Certificate, host string, rule iphttps.NameRule) Check {
	var saw Facts
	ruleName := "windows (subject CN = URL host; the SANs, when present, must include it)"
	if rule == iphttps.NameRuleStandard {
		ruleName = "standard (the URL host in the subject alternative names)"
	}
	saw.Add("name rule", ruleName)
	saw.Add("URL host", host)
	saw.Add("subject CN", leaf.Subject.CommonName)
	describeCert(&saw, leaf)
	if err := iphttps.CheckName(leaf, host, rule); err != nil {
		return fail(codeOf(err), saw, message(err),
			fmt.Sprintf("reissue the server certificate with subject CN=%s (only the CN) and %s among its DNS names, or change the URL to the name in the certificate", host, host))
	}
	if rule == iphttps.NameRuleWindows {
		var extra pkix.Name // the subject without its CN, rendered by pkix
		for _, a := range leaf.Subject.Names {
			if !a.Type.Equal([]int{2, 5, 4, 3}) { // commonName
				extra.ExtraNames = append(extra.ExtraNames, a)
			}
		}
		if len(extra.ExtraNames) > 0 {
			return warn(winerr.NoMoreItems, saw,
				fmt.Sprintf("the subject holds more than the CN (%s): KB2980635 lists extra subject information among the causes of 0x103 on Windows clients (iphttps accepts it)", extra.String()),
				fmt.Sprintf("for Windows clients, reissue the certificate with the subject CN=%s only", host))
		}
	}
	return pass(saw, "")
}

func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	}
	return fmt.Sprintf("usage %d", u)
}

// checkCertUsage checks the Server Authentication usage of the leaf and,
// when the chain was verified, that the CAs allow it. The client reports
// a missing usage as 0x103 ("No usable certificate(s) found"); CryptoAPI's
// own name for it is CERT_E_WRONG_USAGE (0x800b0110).
func checkCertUsage(chain []*x509.Certificate, roots *x509.CertPool, trusted bool, now time.Time) Check {
	var saw Facts
	leaf := chain[0]
	var names []string
	ok := len(leaf.ExtKeyUsage) == 0 && len(leaf.UnknownExtKeyUsage) == 0
	for _, u := range leaf.ExtKeyUsage {
		names = append(names, ekuName(u))
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			ok = true
		}
	}
	for _, u := range leaf.UnknownExtKeyUsage {
		names = append(names, u.String())
	}
	if len(names) == 0 {
		saw.Add("extended key usage", "none (any usage)")
	} else {
		saw.Add("extended key usage", strings.Join(names, ", "))
	}
	fix := "reissue the server certificate with the Server Authentication extended key usage (1.3.6.1.5.5.7.3.1)"
	if !ok {
		return fail(winerr.NoMoreItems, saw,
			"the server certificate is not for server authentication (CERT_E_WRONG_USAGE, 0x800b0110, in CryptoAPI terms; the IP-HTTPS client reports it as 0x103)", fix)
	}
	if trusted {
		if _, err := verify(chain, roots, validityTime(chain, now), x509.ExtKeyUsageServerAuth); err != nil {
			var inv x509.CertificateInvalidError
			if errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage {
				saw.Add("verification", err)
				return fail(winerr.NoMoreItems, saw,
					"a CA in the chain does not allow server authentication (its extended key usages exclude it)", "issue the server certificate from a CA allowed to issue server certificates")
			}
		}
	}
	note := ""
	if len(names) == 0 {
		note = "no extended key usage extension: valid for any usage; Windows' guidance is to include Server Authentication"
	}
	return pass(saw, note)
}

// crlLimit bounds a CRL download.
const crlLimit = 16 << 20

// crlTimeout bounds each CRL download.
const crlTimeout = 5 * time.Second

// checkRevocation fetches the CRLs the certificates name (the leaf and
// each CA below the root) and looks for the leaf's serial. Windows 8 and
// later connect when a CRL cannot be fetched (Windows 7, and
// StrongCRLRequired, do not): an unreachable CRL is a warning. chains are
// the verified chains, if any.
func checkRevocation(ctx context.Context, hc *http.Client, chain []*x509.Certificate, chains [][]*x509.Certificate, now time.Time) Check {
	var saw Facts
	certs := chain
	if len(chains) > 0 {
		certs = chains[0]
	}
	var warnings []string
	points := 0
	for i, c := range certs {
		if i > 0 && i == len(certs)-1 && bytes.Equal(c.RawIssuer, c.RawSubject) {
			break // the root is not checked
		}
		var issuer *x509.Certificate
		if i+1 < len(certs) {
			issuer = certs[i+1]
		}
		for _, u := range c.CRLDistributionPoints {
			points++
			if !strings.HasPrefix(strings.ToLower(u), "http://") && !strings.HasPrefix(strings.ToLower(u), "https://") {
				saw.Add("CRL "+u, "not fetched (only http and https are reachable from the Internet)")
				continue
			}
			crl, err := fetchCRL(ctx, hc, u)
			if err != nil {
				saw.Add("CRL "+u, err)
				warnings = append(warnings, fmt.Sprintf("the CRL %s cannot be fetched: %v", u, err))
				continue
			}
			desc := fmt.Sprintf("%d entries, this update %s", len(crl.RevokedCertificateEntries), crl.ThisUpdate.UTC().Format(time.RFC3339))
			if !crl.NextUpdate.IsZero() {
				desc += ", next update " + crl.NextUpdate.UTC().Format(time.RFC3339)
			}
			if issuer != nil {
				if err := crl.CheckSignatureFrom(issuer); err != nil {
					saw.Add("CRL "+u, desc+", signature NOT from the issuer")
					warnings = append(warnings, fmt.Sprintf("the CRL %s is not signed by %s: %v", u, issuer.Subject, err))
					continue
				}
				desc += ", signature OK"
			}
			saw.Add("CRL "+u, desc)
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber != nil && e.SerialNumber.Cmp(c.SerialNumber) == 0 {
					return fail(winerr.Revoked, saw,
						fmt.Sprintf("%s (serial %x) was revoked on %s", c.Subject, c.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339)),
						"issue a new server certificate, install it on the server and restart it")
				}
			}
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				warnings = append(warnings, fmt.Sprintf("the CRL %s expired on %s (its next update is overdue)", u, crl.NextUpdate.UTC().Format(time.RFC3339)))
			}
		}
	}
	if points == 0 {
		saw.Add("CRL distribution points", "none")
		return pass(saw, "the certificates name no CRL distribution point: Windows 8 and later connect without a revocation check (the default); Windows 7 clients and StrongCRLRequired need a reachable CRL")
	}
	if len(warnings) > 0 {
		return warn(winerr.RevocationOffline, saw,
			strings.Join(warnings, "; ")+". Windows 7 clients (and StrongCRLRequired) fail with 0x80092013; Windows 8 and later, and iphttps, connect anyway",
			"publish the CRL (and the delta CRL) at that URL, reachable from the Internet without authentication and kept current (IIS: allowDoubleEscaping for the '+' in delta CRL names)")
	}
	return pass(saw, "")
}

// fetchCRL downloads and parses a CRL (DER or PEM).
func fetchCRL(ctx context.Context, hc *http.Client, u string) (*x509.RevocationList, error) {
	ctx, cancel := context.WithTimeout(ctx, crlTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %w", u, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CRL %s: HTTP %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, crlLimit))
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %w", u, err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: not a CRL: %w", u, err)
	}
	return crl, nil
}
