// Package pki makes the certificates iphttps needs for trials, labs and tests:
// a CA, server certificates whose subject CN is the IP-HTTPS host name (the
// rule Windows clients enforce), and client certificates for the
// "certificates" authentication mode. Keys are ECDSA P-256.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Cert is a certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	DER  []byte
}

// Options describe a certificate to issue. Zero values give sensible defaults:
// valid from one hour ago for one year.
type Options struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// ExtraSubject adds an organization to the subject (for "subject with extra
	// information" scenarios).
	Organization string
	NotBefore    time.Time
	NotAfter     time.Time
	// ExtKeyUsage defaults to server authentication for Server and client
	// authentication for Client.
	ExtKeyUsage []x509.ExtKeyUsage
	// CRLDistributionPoints are written into the certificate.
	CRLDistributionPoints []string
}

// NewCA makes a self-signed CA certificate.
func NewCA(name string) (*Cert, error) {
	return issue(nil, Options{CommonName: name}, true)
}

// Server issues a server certificate signed by ca (self-signed when ca is nil).
// The subject CN and, unless DNSNames is set, the SAN are o.CommonName.
func Server(ca *Cert, o Options) (*Cert, error) {
	if o.DNSNames == nil && o.IPs == nil && o.CommonName != "" {
		if ip := net.ParseIP(o.CommonName); ip != nil {
			o.IPs = []net.IP{ip}
		} else {
			o.DNSNames = []string{o.CommonName}
		}
	}
	if o.ExtKeyUsage == nil {
		o.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	return issue(ca, o, false)
}

// Client issues a client-authentication certificate signed by ca.
func Client(ca *Cert, o Options) (*Cert, error) {
	if ca == nil {
		return nil, errors.New("pki: a client certificate needs a CA")
	}
	if o.ExtKeyUsage == nil {
		o.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return issue(ca, o, false)
}

func issue(ca *Cert, o Options, isCA bool) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.AddDate(1, 0, 0)
	}
	subj := pkix.Name{CommonName: o.CommonName}
	if o.Organization != "" {
		subj.Organization = []string{o.Organization}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subj,
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPs,
		ExtKeyUsage:           o.ExtKeyUsage,
		BasicConstraintsValid: true,
		CRLDistributionPoints: o.CRLDistributionPoints,
	}
	if isCA {
		tmpl.IsCA = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %q: %w", o.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse %q: %w", o.CommonName, err)
	}
	return &Cert{Cert: c, Key: key, DER: der}, nil
}

// CertPEM returns the certificate in PEM form.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
}

// KeyPEM returns the private key in PKCS#8 PEM form.
func (c *Cert) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TLS returns the pair as a tls.Certificate.
func (c *Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.DER}, PrivateKey: c.Key, Leaf: c.Cert}
}

// Fingerprint is the SHA-256 of the certificate, hex, for logs and pinning.
func (c *Cert) Fingerprint() string {
	sum := sha256.Sum256(c.DER)
	return hex.EncodeToString(sum[:])
}

// WriteFiles writes base.pem (certificate) and base.key (key, mode 0600) in dir
// and returns their paths.
func (c *Cert) WriteFiles(dir, base string) (certPath, keyPath string, err error) {
	certPath = filepath.Join(dir, base+".pem")
	keyPath = filepath.Join(dir, base+".key")
	if err := os.WriteFile(certPath, c.CertPEM(), 0o644); err != nil {
		return "", "", fmt.Errorf("pki: write certificate: %w", err)
	}
	k, err := c.KeyPEM()
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, k, 0o600); err != nil {
		return "", "", fmt.Errorf("pki: write key: %w", err)
	}
	return certPath, keyPath, nil
}

// LoadPool reads a PEM bundle of CA certificates.
func LoadPool(path string) (*x509.CertPool, error) {
	certs, err := LoadCerts(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// LoadCerts reads the certificates of a PEM bundle; other blocks are skipped.
func LoadCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return out, nil
}

// CRL issues a certificate revocation list signed by ca that revokes the
// given certificates, valid from now until nextUpdate, in PEM form.
func CRL(ca *Cert, number int64, nextUpdate time.Time, revoked ...*x509.Certificate) ([]byte, error) {
	now := time.Now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: nextUpdate,
	}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: CRL of %q: %w", ca.Cert.Subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}
