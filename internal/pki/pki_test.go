package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestChainVerifies(t *testing.T) {
	ca, err := NewCA("iphttps test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Server(ca, Options{CommonName: "da.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, err := ca.WriteFiles(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	pool, err := LoadPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "da.example.test"}); err != nil {
		t.Fatalf("server certificate does not verify against its CA: %v", err)
	}
	if srv.Cert.Subject.CommonName != "da.example.test" {
		t.Fatalf("CN = %q", srv.Cert.Subject.CommonName)
	}
	cli, err := Client(ca, Options{CommonName: "client1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client certificate must not verify for server authentication")
	}
}

func TestLoadPoolRejectsGarbage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(p, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPool(p); err == nil {
		t.Fatal("LoadPool accepted a file without certificates")
	}
}
