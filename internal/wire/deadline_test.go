package wire

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestWithWriteDeadline(t *testing.T) {
	a, b := net.Pipe() // b never reads: every write blocks
	defer a.Close()
	defer b.Close()
	start := time.Now()
	_, err := WithWriteDeadline(a, 50*time.Millisecond).Write([]byte("x"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("write blocked %v", d)
	}
}
