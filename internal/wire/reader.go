package wire

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// DefaultReaderSize is the buffer size NewReader uses when given size <= 0.
const DefaultReaderSize = 256 << 10

// maxEmptyReads bounds how often a Read may return (0, nil) in a row.
const maxEmptyReads = 100

var errBadRead = errors.New("wire: reader returned an invalid count")

// Reader reads one direction of an IP-HTTPS connection for its whole life:
// first the HTTP head (ReadRequest or ReadResponse), then the IPv6 packets
// (Next). Bytes that follow the head in the same read stay buffered and are
// returned by Next. A Reader is not safe for concurrent use.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int   // buf[r:w] holds unread bytes
	rerr error // sticky error from rd, seen once the buffer is drained
	err  error // sticky error returned by Next

	// With a pool, the large buffer is borrowed only while data flows:
	// reads that start with nothing buffered go to small, and when the
	// last read was small too, the large buffer goes back to the pool. An
	// idle connection holds only small.
	pool  *sync.Pool
	size  int
	small []byte
	big   *[]byte // borrowed from pool; nil when not held
	lastN int     // bytes the last read returned
}

// smallReadSize is the buffer an idle pooled Reader reads into: a packet of
// the link MTU (1280) fits.
const smallReadSize = 2048

// NewReader returns a Reader that reads from r through a buffer of size
// bytes. size <= 0 means DefaultReaderSize; a size below MaxPacket is raised
// to MaxPacket so that any packet fits.
func NewReader(r io.Reader, size int) *Reader {
	if size <= 0 {
		size = DefaultReaderSize
	}
	size = max(size, MaxPacket)
	return &Reader{rd: r, buf: make([]byte, size)}
}

// NewReaderPool is NewReader with its large buffer borrowed from pool (which
// must hold only *[]byte values) while data flows, and given back when the
// connection goes quiet: many idle connections then hold small buffers only.
func NewReaderPool(r io.Reader, size int, pool *sync.Pool) *Reader {
	if size <= 0 {
		size = DefaultReaderSize
	}
	size = max(size, MaxPacket)
	rd := &Reader{rd: r, pool: pool, size: size, small: make([]byte, smallReadSize)}
	rd.borrow()
	return rd
}

// borrow makes the large buffer current, keeping the unread bytes.
func (r *Reader) borrow() {
	if r.big == nil {
		if b, ok := r.pool.Get().(*[]byte); ok && len(*b) == r.size {
			r.big = b
		} else {
			b := make([]byte, r.size)
			r.big = &b
		}
	}
	if len(r.buf) > 0 && &r.buf[0] == &(*r.big)[0] {
		return
	}
	r.w = copy(*r.big, r.buf[r.r:r.w])
	r.r = 0
	r.buf = *r.big
}

// settle picks the buffer for the next read, for a pooled Reader: the small
// one when nothing is buffered and the last read was small (the large one
// goes back to the pool), else the large one.
func (r *Reader) settle() {
	if r.pool == nil {
		return
	}
	if r.r == r.w && r.lastN < len(r.small) {
		if r.big != nil {
			r.pool.Put(r.big)
			r.big = nil
		}
		r.buf, r.r, r.w = r.small, 0, 0
		return
	}
	r.borrow()
}

// Release gives the large buffer back to the pool (for a connection that
// ended); the Reader must not be used afterwards.
func (r *Reader) Release() {
	if r.pool != nil && r.big != nil {
		r.pool.Put(r.big)
		r.big = nil
		r.buf = nil
	}
}

// Buffered returns the number of bytes read from the underlying reader but
// not yet returned.
func (r *Reader) Buffered() int { return r.w - r.r }

// ReadRequest reads and parses a request head. maxHead bounds its size
// including the final CRLF CRLF (<= 0 means DefaultMaxHead); a larger head
// is a *HeadError with Status 400, as is any malformed head. If the stream
// ends before any byte it returns io.EOF, if it ends inside the head an
// error wrapping io.ErrUnexpectedEOF.
func (r *Reader) ReadRequest(maxHead int) (*Request, error) {
	head, err := r.readHead(maxHead)
	if err != nil {
		return nil, err
	}
	return parseRequest(head)
}

// ReadResponse reads and parses a response head, like ReadRequest.
func (r *Reader) ReadResponse(maxHead int) (*Response, error) {
	head, err := r.readHead(maxHead)
	if err != nil {
		return nil, err
	}
	return parseResponse(head)
}

// readHead returns the bytes up to and including the first CRLF CRLF and
// consumes them. A LF not preceded by CR is rejected at once.
func (r *Reader) readHead(maxHead int) ([]byte, error) {
	if maxHead <= 0 {
		maxHead = DefaultMaxHead
	}
	maxHead = min(maxHead, len(r.buf))
	scanned := 0 // bytes of buf[r.r:] already scanned
	for {
		b := r.buf[r.r:r.w]
		if len(b) > maxHead {
			b = b[:maxHead]
		}
		for i := scanned; i < len(b); i++ {
			if b[i] != '\n' {
				continue
			}
			if i == 0 || b[i-1] != '\r' {
				return nil, badHead("bare LF in head")
			}
			if i >= 3 && b[i-2] == '\n' && b[i-3] == '\r' {
				r.r += i + 1
				return b[:i+1], nil
			}
		}
		scanned = len(b)
		if len(b) == maxHead {
			return nil, badHead("head too large")
		}
		if r.rerr != nil {
			switch {
			case r.rerr == io.EOF && len(b) == 0:
				return nil, io.EOF
			case r.rerr == io.EOF:
				return nil, fmt.Errorf("wire: reading HTTP head: %w", io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("wire: reading HTTP head: %w", r.rerr)
		}
		if r.r == r.w || len(r.buf)-r.r < maxHead {
			r.compact()
		}
		r.fill()
	}
}

// Next returns the next IPv6 packet. The slice points into the Reader's
// buffer and is valid only until the next call to any Reader method.
//
// Errors: io.EOF at a packet boundary; ErrTruncated (which wraps
// io.ErrUnexpectedEOF) inside a packet; ErrNotIPv6 or ErrJumbogram when the
// stream cannot be framed (close the connection); other read errors wrapped.
// Once Next has failed it keeps returning the same error.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	for {
		b := r.buf[r.r:r.w]
		if len(b) > 0 {
			if b[0]>>4 != 6 {
				return nil, r.fail(ErrNotIPv6)
			}
			if len(b) >= HeaderLen {
				pl := int(b[4])<<8 | int(b[5])
				if pl == 0 && b[6] == 0 {
					return nil, r.fail(ErrJumbogram)
				}
				if n := HeaderLen + pl; len(b) >= n {
					r.r += n
					return b[:n:n], nil
				}
			}
		}
		if r.rerr != nil {
			switch {
			case r.rerr == io.EOF && len(b) == 0:
				return nil, r.fail(io.EOF)
			case r.rerr == io.EOF:
				return nil, r.fail(ErrTruncated)
			}
			return nil, r.fail(fmt.Errorf("wire: reading packets: %w", r.rerr))
		}
		// Keep at least MaxPacket bytes free after w, so each read has room
		// for many packets and the current packet always fits.
		if r.r == r.w || len(r.buf)-r.w < MaxPacket {
			r.compact()
		}
		r.fill()
	}
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// compact moves the unread bytes to the start of the buffer.
func (r *Reader) compact() {
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
}

// fill reads once into all the free space after w. It must not be called
// with a full buffer.
func (r *Reader) fill() {
	r.settle()
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.w:])
		r.lastN = n
		if n < 0 || n > len(r.buf)-r.w {
			r.rerr = errBadRead
			return
		}
		r.w += n
		if err != nil {
			r.rerr = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.rerr = io.ErrNoProgress
}

// TryReader is a reader that can also read without waiting: TryRead returns
// what is available at once, or 0 and an error wrapping
// os.ErrDeadlineExceeded when nothing is (batchio.Stream is one).
type TryReader interface {
	io.Reader
	TryRead(p []byte) (int, error)
}

// TryFill reads once more without waiting, when the underlying reader is a
// TryReader: it reports whether bytes were added. Callers use it to keep
// batching work while data is still coming, and to flush only when the next
// read would block.
func (r *Reader) TryFill() bool {
	tr, ok := r.rd.(TryReader)
	if !ok || r.err != nil || r.rerr != nil {
		return false
	}
	if r.pool != nil {
		r.borrow()
	}
	if r.r == r.w || len(r.buf)-r.w < MaxPacket {
		r.compact()
	}
	if r.w == len(r.buf) {
		return false
	}
	n, err := tr.TryRead(r.buf[r.w:])
	r.lastN = n
	if n < 0 || n > len(r.buf)-r.w {
		r.rerr = errBadRead
		return false
	}
	r.w += n
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		r.rerr = err
	}
	return n > 0
}
