package server

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
	"github.com/iphttps/iphttps/internal/winerr"
)

// revocation checks client certificates against certificate revocation
// lists (CRLs) issued by the client CAs. Each list's signature is checked
// when it is loaded, against the CA bundle the certificates chain to.
type revocation struct {
	lists []*x509.RevocationList
}

// loadRevocation reads the CRL files (PEM "X509 CRL" blocks or DER) and
// keeps those signed by a certificate of the client CA bundle at caFile. A
// list signed by no CA of the bundle is an error: it could not revoke
// anything the server accepts, and is most likely the wrong file.
func loadRevocation(files []string, caFile string, now time.Time, log *slog.Logger) (*revocation, error) {
	cas, err := pki.LoadCerts(caFile)
	if err != nil {
		return nil, winerr.Errorf(winerr.CertUnknown, "client_ca: %v", err)
	}
	r := &revocation{}
	for _, f := range files {
		lists, err := readCRLs(f)
		if err != nil {
			code := winerr.RevocationOffline
			if errors.Is(err, os.ErrNotExist) {
				code = winerr.FileNotFound
			}
			return nil, winerr.Errorf(code, "crl %s: %v", f, err)
		}
		for _, l := range lists {
			issuer := findIssuer(l, cas)
			if issuer == nil {
				return nil, winerr.Errorf(winerr.RevocationOffline,
					"crl %s: issued by %q, which is not a CA of client_ca %s (or its signature does not verify)", f, l.Issuer, caFile)
			}
			if !l.NextUpdate.IsZero() && now.After(l.NextUpdate) {
				log.Warn("a CRL is past its next update: publish a fresh one and reload (SIGHUP); it is still used",
					"crl", f, "issuer", l.Issuer.String(), "next_update", l.NextUpdate)
			}
			r.lists = append(r.lists, l)
		}
	}
	return r, nil
}

// check returns a CRYPT_E_REVOKED error when a certificate of a verified
// chain (other than its root) is on a list of its issuer.
func (r *revocation) check(chains [][]*x509.Certificate) error {
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			c, issuer := chain[i], chain[i+1]
			for _, l := range r.lists {
				if !bytes.Equal(l.RawIssuer, issuer.RawSubject) {
					continue
				}
				for _, e := range l.RevokedCertificateEntries {
					if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
						return winerr.Errorf(winerr.Revoked,
							"certificate %q (serial %x) was revoked by %q on %s",
							c.Subject.String(), c.SerialNumber, l.Issuer.String(), e.RevocationTime.UTC().Format(time.RFC3339))
					}
				}
			}
		}
	}
	return nil
}

func findIssuer(l *x509.RevocationList, cas []*x509.Certificate) *x509.Certificate {
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, l.RawIssuer) && l.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// readCRLs reads one DER list or any number of PEM "X509 CRL" blocks.
func readCRLs(path string) ([]*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		l, err := x509.ParseRevocationList(b)
		if err != nil {
			return nil, fmt.Errorf("not a DER CRL: %w", err)
		}
		return []*x509.RevocationList{l}, nil
	}
	var out []*x509.RevocationList
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "X509 CRL" {
			continue
		}
		l, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("no \"X509 CRL\" PEM block")
	}
	return out, nil
}
