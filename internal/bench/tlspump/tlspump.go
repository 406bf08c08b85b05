// Package tlspump measures the ceiling of one TLS stream: a sender writes
// large blocks into one TLS 1.3 connection for a fixed time, and the
// receiver counts the application bytes (goodput) and its own CPU time. It
// also makes the benchmarks' ECDSA P-256 certificate and tells which key
// type and cipher suite a TLS server uses.
package tlspump

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultChunk is the size of the sender's writes.
const DefaultChunk = 256 << 10

// Cert is a certificate and key written to files.
type Cert struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// Pin is "pin-sha256:" and the base64 SHA-256 of the public key
	// (SubjectPublicKeyInfo), as openconnect's --servercert takes it.
	Pin string `json:"pin"`
}

// WriteCert makes a self-signed ECDSA P-256 certificate valid for a day for
// the given IP addresses (subject CN: the first) and writes cert.pem and
// key.pem (PKCS #8) into dir.
func WriteCert(dir string, ips ...netip.Addr) (Cert, error) {
	if len(ips) == 0 {
		return Cert{}, errors.New("certificate: no address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Cert{}, fmt.Errorf("certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return Cert{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: ips[0].String()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Cert{}, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Cert{}, fmt.Errorf("marshal key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return Cert{}, fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(spki)
	c := Cert{
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
		Pin:      "pin-sha256:" + base64.StdEncoding.EncodeToString(sum[:]),
	}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return Cert{}, fmt.Errorf("write certificate: %w", err)
	}
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return Cert{}, fmt.Errorf("write key: %w", err)
	}
	return c, nil
}

// KeyType names the type of a public key: "ECDSA P-256", "RSA 2048",
// "Ed25519".
func KeyType(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// CertFileKeyType reads the first certificate of a PEM file and names its
// key type.
func CertFileKeyType(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return "", fmt.Errorf("%s: no certificate", path)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return KeyType(c.PublicKey), nil
	}
}

// Report is what one side of a pump, or a probe, saw.
type Report struct {
	Role    string `json:"role"`    // receiver, sender or probe
	Version string `json:"version"` // "TLS 1.3"
	Suite   string `json:"suite"`   // "TLS_AES_128_GCM_SHA256"
	// ServerKey is the key type of the server's certificate (sender, probe).
	ServerKey string  `json:"server_key,omitempty"`
	Bytes     uint64  `json:"bytes"`   // application bytes moved
	Seconds   float64 `json:"seconds"` // receiver: first byte to end of stream; sender: writing time
	Mbps      float64 `json:"mbps"`    // Bytes over Seconds, Mbit/s
	// CPUPct is this process's CPU time over Seconds, in % of one CPU.
	CPUPct float64 `json:"cpu_pct"`
}

// Receive accepts one connection on ln, completes a TLS 1.3 handshake with
// cert and reads until the sender closes. The goodput is measured from the
// first application byte to the end of the stream. ctx bounds the whole.
func Receive(ctx context.Context, ln net.Listener, cert tls.Certificate) (Report, error) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	raw, err := ln.Accept()
	if err != nil {
		if ctx.Err() != nil {
			return Report{}, fmt.Errorf("accept: %w", ctx.Err())
		}
		return Report{}, fmt.Errorf("accept: %w", err)
	}
	defer raw.Close()
	stopConn := context.AfterFunc(ctx, func() { raw.Close() })
	defer stopConn()
	tc := tls.Server(raw, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})
	if err := tc.HandshakeContext(ctx); err != nil {
		return Report{}, fmt.Errorf("TLS handshake: %w", err)
	}
	cs := tc.ConnectionState()
	r := Report{Role: "receiver", Version: tls.VersionName(cs.Version), Suite: tls.CipherSuiteName(cs.CipherSuite)}
	buf := make([]byte, DefaultChunk)
	var first time.Time
	var cpu0 time.Duration
	for {
		n, err := tc.Read(buf)
		if n > 0 {
			if r.Bytes == 0 {
				first, cpu0 = time.Now(), selfCPU()
			}
			r.Bytes += uint64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return r, fmt.Errorf("read after %d bytes: %w", r.Bytes, err)
		}
	}
	if r.Bytes == 0 {
		return r, errors.New("the sender sent nothing")
	}
	r.fill(time.Since(first), selfCPU()-cpu0)
	return r, nil
}

// Send connects to addr (host:port), completes a TLS 1.3 handshake trusting
// roots for serverName, writes chunk-byte blocks for dur, then closes its
// side and waits (at most 5 s) for the receiver to close.
func Send(ctx context.Context, addr, serverName string, roots *x509.CertPool, dur time.Duration, chunk int) (Report, error) {
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Report{}, fmt.Errorf("connect: %w", err)
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	tc := tls.Client(raw, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: serverName})
	if err := tc.HandshakeContext(ctx); err != nil {
		return Report{}, fmt.Errorf("TLS handshake: %w", err)
	}
	cs := tc.ConnectionState()
	r := Report{Role: "sender", Version: tls.VersionName(cs.Version), Suite: tls.CipherSuiteName(cs.CipherSuite)}
	if len(cs.PeerCertificates) > 0 {
		r.ServerKey = KeyType(cs.PeerCertificates[0].PublicKey)
	}
	buf := make([]byte, chunk)
	start, cpu0 := time.Now(), selfCPU()
	for time.Since(start) < dur {
		n, err := tc.Write(buf)
		r.Bytes += uint64(n)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return r, fmt.Errorf("write after %d bytes: %w", r.Bytes, err)
		}
	}
	r.fill(time.Since(start), selfCPU()-cpu0)
	if err := tc.CloseWrite(); err != nil {
		return r, fmt.Errorf("close: %w", err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, tc)
	return r, nil
}

// Probe completes a TLS handshake with addr using crypto/tls's default
// client settings (those of any Go client that sets no suites, such as the
// iphttps client) and reports the version, suite and server key type. It
// does not verify the certificate: it only looks.
func Probe(ctx context.Context, addr, serverName string) (Report, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Report{}, fmt.Errorf("connect: %w", err)
	}
	defer raw.Close()
	tc := tls.Client(raw, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}) // a probe that only reports
	if err := tc.HandshakeContext(ctx); err != nil {
		return Report{}, fmt.Errorf("TLS handshake: %w", err)
	}
	cs := tc.ConnectionState()
	r := Report{Role: "probe", Version: tls.VersionName(cs.Version), Suite: tls.CipherSuiteName(cs.CipherSuite)}
	if len(cs.PeerCertificates) > 0 {
		r.ServerKey = KeyType(cs.PeerCertificates[0].PublicKey)
	}
	_ = tc.Close()
	return r, nil
}

// fill sets Seconds, Mbps and CPUPct from the elapsed time and CPU time.
func (r *Report) fill(elapsed, cpu time.Duration) {
	r.Seconds = elapsed.Seconds()
	if r.Seconds > 0 {
		r.Mbps = float64(r.Bytes) * 8 / r.Seconds / 1e6
		r.CPUPct = cpu.Seconds() / r.Seconds * 100
	}
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
