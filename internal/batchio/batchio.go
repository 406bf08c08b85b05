// Package batchio is the connection under a tunnel's TLS layer, made for
// moving packets in batches.
//
// Writes: crypto/tls writes every record (at most 16 KiB of data) with its
// own Write on the underlying connection; a 256 KiB batch of packets would
// cost sixteen sends, each pushing its own segments through the TCP stack.
// Under a cork those records are appended to a buffer and go out in one send
// when the batch is done.
//
// Reads: a reader that batches work (packets gathered for one write to a TUN
// device) must know when the next read would wait, to flush first. TryRead
// reads through the TLS layer without waiting for the network: TLS returns
// the records it already holds or can complete from what the kernel has.
package batchio

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Conn is a net.Conn whose writes can be held back (Cork) and sent together
// (Flush). It is safe for concurrent use: writes made by the layer above
// from other goroutines (a TLS alert, a key update) take their place in
// order with the held bytes.
type Conn struct {
	net.Conn
	pool *sync.Pool // *[]byte buffers, shared by many Conns; may be nil

	raw    syscall.RawConn // for reads that do not wait; nil if c has none
	nowait atomic.Bool     // the next reads must not wait
	mu     sync.Mutex
	corked bool
	held   bool // FlushNoWait left bytes behind: writes queue behind them until Flush
	buf    *[]byte
	err    error // a failed send while corked, returned by Flush
}

// flushAt is the size at which held bytes are sent even under a cork, so a
// buffer never grows without bound.
const flushAt = 512 << 10

// bufSize holds flushAt plus the largest write a TLS connection makes (a
// record of 16 KiB and its overhead), so a buffer never grows.
const bufSize = flushAt + 20<<10

// New wraps c. Buffers come from pool (which must hold *[]byte values) and go
// back to it after every Flush, so an idle Conn holds none; with a nil pool
// the Conn keeps its one buffer.
func New(c net.Conn, pool *sync.Pool) *Conn {
	bc := &Conn{Conn: c, pool: pool}
	if sc, ok := c.(syscall.Conn); ok {
		bc.raw, _ = sc.SyscallConn()
	}
	return bc
}

// Read reads from the connection; while a TryRead is under way it reads only
// what the kernel already holds, failing with os.ErrDeadlineExceeded (a
// temporary net.Error, which TLS does not hold against the connection)
// instead of waiting.
func (c *Conn) Read(p []byte) (int, error) {
	if !c.nowait.Load() {
		return c.Conn.Read(p)
	}
	if c.raw == nil {
		return 0, os.ErrDeadlineExceeded
	}
	var (
		n   int
		err error
	)
	cerr := c.raw.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), p)
		return true // one attempt, never wait
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case err == unix.EAGAIN || err == unix.EINTR:
		return 0, os.ErrDeadlineExceeded
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// Stream is the reading side of a connection stacked on a Conn: Read is
// Upper's, TryRead is a Read of Upper during which Lower does not wait.
type Stream struct {
	Upper io.Reader
	Lower *Conn
}

func (s Stream) Read(p []byte) (int, error) { return s.Upper.Read(p) }

// TryRead reads what can be had without waiting for the network. It
// returns 0 and os.ErrDeadlineExceeded when that is nothing.
func (s Stream) TryRead(p []byte) (int, error) {
	s.Lower.nowait.Store(true)
	defer s.Lower.nowait.Store(false)
	return s.Upper.Read(p)
}

// Cork holds back the following writes until Flush.
func (c *Conn) Cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// Write sends p, or under a cork appends it to the held bytes.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked && !c.held {
		return c.Conn.Write(p)
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.buf == nil {
		c.buf = c.getBuf()
	}
	*c.buf = append(*c.buf, p...)
	if len(*c.buf) >= flushAt {
		if err := c.sendLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends the held bytes and lifts the cork. It returns the error of any
// send that failed since Cork.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked, c.held = false, false
	err := c.sendLocked()
	c.releaseLocked()
	if c.err != nil {
		err, c.err = c.err, nil
	}
	return err
}

// FlushNoWait is Flush that sends only what the socket takes at once. It
// reports whether everything went; if not, the rest stays held, later
// writes queue behind it, and Flush must be called to send it.
func (c *Conn) FlushNoWait() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.err != nil {
		err := c.err
		c.err = nil
		c.releaseLocked()
		return true, err
	}
	if c.buf == nil || len(*c.buf) == 0 {
		c.releaseLocked()
		return true, nil
	}
	if c.raw == nil {
		err := c.sendLocked()
		c.releaseLocked()
		c.err = nil
		return true, err
	}
	b := *c.buf
	var (
		n    int
		werr error
	)
	if err := c.raw.Write(func(fd uintptr) bool {
		n, werr = unix.Write(int(fd), b)
		return true // one attempt, never wait
	}); err != nil {
		c.releaseLocked()
		return true, err
	}
	switch {
	case werr == unix.EAGAIN || werr == unix.EINTR:
		n = 0
	case werr != nil:
		c.releaseLocked()
		return true, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	}
	if n == len(b) {
		c.releaseLocked()
		return true, nil
	}
	*c.buf = b[:copy(b, b[n:])]
	c.held = true
	return false, nil
}

// releaseLocked empties the buffer and gives it back to the pool, if any.
func (c *Conn) releaseLocked() {
	if c.buf == nil {
		return
	}
	*c.buf = (*c.buf)[:0]
	if c.pool != nil {
		c.putBuf(c.buf)
		c.buf = nil
	}
}

func (c *Conn) sendLocked() error {
	if c.buf == nil || len(*c.buf) == 0 {
		return nil
	}
	b := *c.buf
	*c.buf = b[:0]
	n, err := c.Conn.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		c.err = err
	}
	return err
}

func (c *Conn) getBuf() *[]byte {
	if c.pool != nil {
		if b, ok := c.pool.Get().(*[]byte); ok && cap(*b) >= bufSize {
			*b = (*b)[:0]
			return b
		}
	}
	b := make([]byte, 0, bufSize)
	return &b
}

func (c *Conn) putBuf(b *[]byte) {
	if cap(*b) == bufSize {
		*b = (*b)[:0]
		c.pool.Put(b)
	}
}

// Writer writes through the layer above a corked connection: each Write
// corks lower, writes p to upper, and flushes, so everything upper makes of
// p leaves in as few sends as the buffer allows.
type Writer struct {
	Upper io.Writer
	Lower *Conn
}

// TryWrite writes p like Write but sends only what the socket takes at once:
// it reports whether everything went. If not, Finish sends the rest.
func (w Writer) TryWrite(p []byte) (bool, error) {
	w.Lower.Cork()
	if _, err := w.Upper.Write(p); err != nil {
		w.Lower.FlushNoWait() // lift the cork without waiting; the error stands
		return true, err
	}
	return w.Lower.FlushNoWait()
}

// Finish sends what TryWrite left behind, waiting as long as it takes.
func (w Writer) Finish() error { return w.Lower.Flush() }

func (w Writer) Write(p []byte) (int, error) {
	w.Lower.Cork()
	n, err := w.Upper.Write(p)
	if ferr := w.Lower.Flush(); err == nil {
		err = ferr
	}
	return n, err
}
