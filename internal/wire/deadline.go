package wire

import (
	"net"
	"time"
)

// deadlineWriter bounds every write to a connection.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

// WithWriteDeadline returns a writer that gives each write to c at most d:
// a peer that stops reading (its window stays shut while its TCP stack keeps
// acknowledging) fails the write instead of blocking the sender forever.
func WithWriteDeadline(c net.Conn, d time.Duration) interface{ Write([]byte) (int, error) } {
	return deadlineWriter{c: c, d: d}
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}
