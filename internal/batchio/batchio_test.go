package batchio

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/pki"
)

// countConn records every Write it gets.
type countConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (c *countConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestCorkGathersWrites(t *testing.T) {
	lower := &countConn{}
	c := New(lower, &sync.Pool{})
	w := Writer{Upper: writerFunc(func(p []byte) (int, error) {
		for i := 0; i < len(p); i += 3 { // the layer above writes in small pieces
			if _, err := c.Write(p[i:min(i+3, len(p))]); err != nil {
				return i, err
			}
		}
		return len(p), nil
	}), Lower: c}
	msg := []byte("0123456789abcdef")
	if n, err := w.Write(msg); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if len(lower.writes) != 1 || !bytes.Equal(lower.writes[0], msg) {
		t.Fatalf("lower got %q, want one write of %q", lower.writes, msg)
	}
	// Uncorked writes pass straight through.
	c.Write([]byte("x"))
	if len(lower.writes) != 2 || string(lower.writes[1]) != "x" {
		t.Fatalf("uncorked write: lower got %q", lower.writes)
	}
}

func TestCorkBounded(t *testing.T) {
	lower := &countConn{}
	c := New(lower, nil)
	c.Cork()
	chunk := make([]byte, 100<<10)
	for range 6 {
		c.Write(chunk)
	}
	if len(lower.writes) != 1 || len(lower.writes[0]) < flushAt {
		t.Fatalf("held bytes not sent at %d: %d writes", flushAt, len(lower.writes))
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, w := range lower.writes {
		total += len(w)
	}
	if total != 6*len(chunk) {
		t.Fatalf("sent %d bytes, want %d", total, 6*len(chunk))
	}
}

func TestCorkError(t *testing.T) {
	boom := errors.New("boom")
	lower := &countConn{fail: boom}
	c := New(lower, nil)
	c.Cork()
	if _, err := c.Write([]byte("abc")); err != nil {
		t.Fatalf("held write failed: %v", err)
	}
	if err := c.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// tlsPair returns the two ends of a TLS connection over loopback TCP; the
// server's runs on a batchio.Conn.
func tlsPair(t *testing.T) (client *tls.Conn, server Stream) {
	t.Helper()
	ca, err := pki.NewCA("batchio test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.Server(ca, pki.Options{CommonName: "server.test"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client = tls.Client(raw, &tls.Config{ServerName: "server.test", RootCAs: pool})
	lower := New(<-accepted, nil)
	upper := tls.Server(lower, &tls.Config{Certificates: []tls.Certificate{cert.TLS()}})
	errc := make(chan error, 1)
	go func() { errc <- client.Handshake() }()
	if err := upper.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); upper.Close() })
	return client, Stream{Upper: upper, Lower: lower}
}

func TestTryReadTLS(t *testing.T) {
	client, s := tlsPair(t)
	buf := make([]byte, 64<<10)
	// Nothing sent: TryRead returns at once, and the connection still works.
	start := time.Now()
	if n, err := s.TryRead(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("TryRead on an idle connection = %d, %v", n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("TryRead waited %v", d)
	}
	// Data in flight arrives through TryRead without a blocking read.
	msg := bytes.Repeat([]byte("x"), 40000) // three records
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := 0
	deadline := time.Now().Add(5 * time.Second)
	for got < len(msg) && time.Now().Before(deadline) {
		n, err := s.TryRead(buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("TryRead: %v", err)
		}
		got += n
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if got != len(msg) {
		t.Fatalf("TryRead got %d of %d bytes", got, len(msg))
	}
	// A blocking read after TryRead waits for data as usual.
	go func() {
		time.Sleep(50 * time.Millisecond)
		client.Write([]byte("later"))
	}()
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "later" {
		t.Fatalf("Read after TryRead = %q, %v", buf[:n], err)
	}
	client.Close()
	var rerr error
	for rerr == nil {
		_, rerr = s.Read(buf)
	}
	if !errors.Is(rerr, io.EOF) {
		t.Fatalf("Read at close: %v", rerr)
	}
}
