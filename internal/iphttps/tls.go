package iphttps

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/winerr"
)

// NameRule selects how the server certificate's name is checked.
type NameRule int

const (
	// NameRuleWindows is what Windows' IP-HTTPS client enforces: the subject
	// CN must be the URL host (a wildcard CN may match one label), and when the
	// certificate lists DNS names the host must be among them too.
	NameRuleWindows NameRule = iota
	// NameRuleStandard is the web's rule (RFC 6125): the host must be in the
	// subject alternative names.
	NameRuleStandard
)

// ParseNameRule parses "windows" or "standard".
func ParseNameRule(s string) (NameRule, error) {
	switch strings.ToLower(s) {
	case "", "windows":
		return NameRuleWindows, nil
	case "standard":
		return NameRuleStandard, nil
	}
	return 0, fmt.Errorf("name_rule %q: want windows or standard", s)
}

// TLSConfig builds the client's TLS configuration: normal chain validation
// against roots (system roots when nil) with the server-authentication usage,
// then the name rule (now nil means time.Now). Name failures carry 0x103 ("No usable certificate(s)
// found"), as Windows reports them.
func TLSConfig(host string, roots *x509.CertPool, rule NameRule, certs []tls.Certificate, now func() time.Time) *tls.Config {
	if now == nil {
		now = time.Now
	}
	return &tls.Config{
		ServerName:         host,
		Certificates:       certs,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below, with the Windows name rule
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs.PeerCertificates, host, roots, rule, now())
		},
	}
}

func verifyServer(chain []*x509.Certificate, host string, roots *x509.CertPool, rule NameRule, now time.Time) error {
	if len(chain) == 0 {
		return winerr.Errorf(winerr.CertUnknown, "the server sent no certificate")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("server certificate %q: %w", leaf.Subject.String(), err)
	}
	return CheckName(leaf, host, rule)
}

// CheckName applies the name rule to the server's leaf certificate.
func CheckName(leaf *x509.Certificate, host string, rule NameRule) error {
	if rule == NameRuleStandard {
		if err := leaf.VerifyHostname(host); err != nil {
			return winerr.New(winerr.NoMoreItems, err)
		}
		return nil
	}
	cn := leaf.Subject.CommonName
	if cn == "" {
		return winerr.Errorf(winerr.NoMoreItems, "server certificate has no subject CN (SAN-only certificates are not usable for IP-HTTPS): want CN=%s", host)
	}
	if n := commonNames(leaf); n > 1 {
		return winerr.Errorf(winerr.NoMoreItems, "server certificate subject has %d common names (%s): the subject must be exactly CN=%s", n, leaf.Subject, host)
	}
	if !nameMatches(cn, host) {
		if strings.Contains(strings.ToLower(cn), strings.ToLower(host)) {
			return winerr.Errorf(winerr.NoMoreItems, "server certificate subject CN %q carries more than the URL host %q (extra information in the subject): the CN must be exactly the host name", cn, host)
		}
		return winerr.Errorf(winerr.NoMoreItems, "server certificate subject CN %q does not match the URL host %q", cn, host)
	}
	if len(leaf.DNSNames) > 0 {
		for _, n := range leaf.DNSNames {
			if nameMatches(n, host) {
				return nil
			}
		}
		return winerr.Errorf(winerr.NoMoreItems, "server certificate subject alternative names %v do not include the URL host %q", leaf.DNSNames, host)
	}
	return nil
}

// commonNames counts the CN attributes of the certificate's subject.
func commonNames(c *x509.Certificate) int {
	n := 0
	for _, a := range c.Subject.Names {
		if a.Type.Equal(oidCommonName) {
			n++
		}
	}
	return n
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// nameMatches compares a certificate name with host, case-insensitively; a
// leading "*." matches exactly one label.
func nameMatches(pattern, host string) bool {
	pattern = strings.TrimSuffix(strings.ToLower(pattern), ".")
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if pattern == host {
		return true
	}
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		i := strings.IndexByte(host, '.')
		return i > 0 && host[i+1:] == rest
	}
	return false
}
