package wire

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// TryWriter is a writer that can also write without waiting for the network
// (batchio.Writer): TryWrite reports whether all of p went out; if not, the
// rest is held and Finish sends it.
type TryWriter interface {
	io.Writer
	TryWrite(p []byte) (bool, error)
	Finish() error
}

// InlineMax is the most pending bytes an appending goroutine writes itself
// (through a TryWriter, when no writer runs and the last write is at least
// InlineQuiet ago) instead of starting a writer goroutine.
const (
	InlineMax   = 4 << 10
	InlineQuiet = time.Millisecond
)

// StallAfter is how long an Outbox's writer may go without finishing a write
// before AppendBatchWait stops waiting for it.
const StallAfter = 50 * time.Millisecond

// DefaultOutboxLimit is the pending-byte limit NewOutbox uses when given
// limit <= 0.
const DefaultOutboxLimit = 256 << 10

var (
	// ErrFull means the Outbox already holds its limit of pending bytes; the
	// packet was dropped (as a router drops on a full queue).
	ErrFull = errors.New("wire: outbox full, packet dropped")
	// ErrClosed means the Outbox was closed, or its writer failed.
	ErrClosed = errors.New("wire: outbox closed")
)

// OutboxStats are an Outbox's counters. Packets, Bytes and Writes count what
// was written successfully; DroppedFull and DroppedInvalid count packets
// refused with ErrFull and with a framing error.
type OutboxStats struct {
	Packets, Bytes, Writes      uint64
	DroppedFull, DroppedInvalid uint64
}

// Outbox is the sending side of one connection: a bounded queue of bytes
// that coalesces packets so that everything pending goes out in one Write.
//
// Any number of goroutines may call Append, AppendBatch, Close and Stats;
// one writer goroutine, started by Go while packets are pending, writes.
// Producers append into a pending buffer under a mutex; the writer swaps it
// with its spare buffer and writes it without holding the mutex. In steady
// state neither side allocates.
type Outbox struct {
	limit int
	pool  *sync.Pool // optional source of *[]byte buffers; nil keeps them

	mu          sync.Mutex
	pending     *[]byte // producers append here; nil until needed
	pendingPkts int
	spare       *[]byte // the writer's other buffer; nil while writing or released
	closed      bool
	room        chan struct{} // closed by the writer after a write, when someone waits for room
	progress    time.Time     // when the writer last finished a write (or Go started)
	waited      bool          // a wait for room timed out since the last write: no more waiting until the next

	// Go's state: its writer and done function, whether a writer goroutine
	// is running, and whether done was called.
	spawn             atomic.Bool
	w                 io.Writer
	tw                TryWriter // w, when it can write without waiting
	done              func(error)
	writing, finished bool

	packets, bytes, writes      atomic.Uint64
	droppedFull, droppedInvalid atomic.Uint64
}

// NewOutbox returns an Outbox holding at most limit pending bytes (limit <= 0
// means DefaultOutboxLimit; a smaller limit than MaxPacket is raised to
// MaxPacket so that every valid packet fits in an empty Outbox). Its two
// buffers of limit bytes are allocated on first use and kept.
func NewOutbox(limit int) *Outbox { return NewOutboxPool(limit, nil) }

// NewOutboxPool is NewOutbox with a pool of buffers shared between Outboxes.
// pool, if not nil, must hold only *[]byte values (its New may be nil);
// buffers smaller than the limit are discarded. The Outbox takes its buffers
// from pool when it needs them and gives both back whenever it goes idle
// (nothing pending after a write), so idle connections hold no buffer.
func NewOutboxPool(limit int, pool *sync.Pool) *Outbox {
	if limit <= 0 {
		limit = DefaultOutboxLimit
	}
	return &Outbox{
		limit: max(limit, MaxPacket),
		pool:  pool,
	}
}

// Append queues a copy of pkt. It returns nil; ErrFull if pkt does not fit
// (dropped); ErrClosed; or ErrNotIPv6, ErrJumbogram or ErrBadLength (all
// wrapping ErrBadFrame) if pkt is not exactly one IPv6 packet. It never
// blocks on the writer.
func (o *Outbox) Append(pkt []byte) error {
	if err := CheckPacket(pkt); err != nil {
		o.droppedInvalid.Add(1)
		return err
	}
	o.mu.Lock()
	wake, err := o.appendLocked(pkt)
	o.mu.Unlock()
	if wake {
		o.signal()
	}
	return err
}

// AppendWait is Append that may wait for room, as AppendBatchWait.
func (o *Outbox) AppendWait(pkt []byte, wait time.Duration) error {
	_, err := o.AppendBatchWait([][]byte{pkt}, wait)
	return err
}

// AppendBatch queues copies of pkts in order under one lock. It stops at the
// first packet that fails and returns how many were queued and that error.
func (o *Outbox) AppendBatch(pkts [][]byte) (n int, err error) {
	return o.AppendBatchWait(pkts, 0)
}

// AppendBatchWait is AppendBatch that, when the queue is full, waits up to
// wait for the writer to make room before it drops a packet with ErrFull.
// It waits only while the writer is making progress: when its last write
// finished more than StallAfter ago (a peer that stopped reading), appends
// drop at once, so a stuck connection cannot slow down its producers. Once
// a wait has timed out, appends drop at once until the writer finishes its
// write: a slow peer costs its producers at most one wait per write.
func (o *Outbox) AppendBatchWait(pkts [][]byte, wait time.Duration) (n int, err error) {
	var deadline time.Time
	for {
		var room chan struct{}
		k, wake, err := o.appendSome(pkts[n:], wait > 0, &room)
		n += k
		if wake {
			o.signal()
		}
		if room == nil {
			return n, err
		}
		// Full: wait for the writer to finish its write.
		if deadline.IsZero() {
			deadline = time.Now().Add(wait)
		}
		d := time.Until(deadline)
		if d <= 0 {
			return n, o.timedOut(pkts[n:])
		}
		t := time.NewTimer(d)
		select {
		case <-room:
			t.Stop()
		case <-t.C:
			return n, o.timedOut(pkts[n:])
		}
	}
}

// appendSome queues pkts under the lock until one fails. When the queue is
// full and the caller may wait (and the writer is not stalled), it returns
// the channel the writer closes after its next write in *room instead of dropping.
func (o *Outbox) appendSome(pkts [][]byte, mayWait bool, room *chan struct{}) (n int, wake bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, pkt := range pkts {
		if err = CheckPacket(pkt); err != nil {
			o.droppedInvalid.Add(1)
			return n, wake, err
		}
		if mayWait && !o.closed && o.pending != nil && len(*o.pending)+len(pkt) > o.limit &&
			!o.waited && time.Since(o.progress) < StallAfter {
			if o.room == nil {
				o.room = make(chan struct{})
			}
			*room = o.room
			return n, wake, nil
		}
		var w bool
		if w, err = o.appendLocked(pkt); err != nil {
			return n, wake, err
		}
		wake = wake || w
		n++
	}
	return n, wake, nil
}

// timedOut drops the first of pkts after a wait for room.
func (o *Outbox) timedOut(pkts [][]byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	o.waited = true // until the writer finishes its write, appends drop at once
	if len(pkts) > 0 {
		o.droppedFull.Add(1)
	}
	return ErrFull
}

// appendLocked copies a checked packet into pending and reports whether
// pending was empty before (a writer must then be started).
func (o *Outbox) appendLocked(pkt []byte) (bool, error) {
	if o.closed {
		return false, ErrClosed
	}
	if o.pending == nil {
		o.pending = o.getBuf()
	}
	buf := *o.pending
	if len(buf)+len(pkt) > o.limit {
		o.droppedFull.Add(1)
		return false, ErrFull
	}
	*o.pending = append(buf, pkt...)
	o.pendingPkts++
	return len(buf) == 0, nil
}

func (o *Outbox) signal() {
	if !o.spawn.Load() {
		return // Go starts the writer for what was queued before it
	}
	o.mu.Lock()
	start := !o.writing && !o.finished && !o.empty()
	// Inline only after a quiet spell: a burst of packets queued one by
	// one must not turn into one write each.
	inline := start && o.tw != nil && len(*o.pending) <= InlineMax && time.Since(o.progress) >= InlineQuiet
	o.writing = o.writing || start
	var (
		buf  *[]byte
		pkts int
	)
	if inline {
		buf, pkts = o.takeLocked()
	}
	o.mu.Unlock()
	switch {
	case inline:
		o.writeInline(buf, pkts)
	case start:
		go o.drain()
	}
}

// Close stops the Outbox: further appends get ErrClosed, and Go's done is
// called with nil once what was pending is written. Close
// may be called more than once.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.closed = true
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
	var finish, start bool
	if o.spawn.Load() && !o.writing && !o.finished {
		// No writer is running: finish here, or start one for what an
		// append queued just before.
		if o.empty() {
			finish, o.finished = true, true
			o.releaseLocked()
		} else {
			start, o.writing = true, true
		}
	}
	o.mu.Unlock()
	switch {
	case finish:
		o.done(nil)
	case start:
		go o.drain()
	default:
		o.signal()
	}
}

// Go writes pending packets to w, from a goroutine that exists only while
// there are packets to write: an idle connection holds no goroutine for its
// sending side. Each write carries everything that was pending, in append
// order. On a write error the Outbox is closed and whatever was pending is
// discarded. done is called once, from that goroutine or from
// Close: with nil once the Outbox is closed and drained, or with the error
// of a failed write (the Outbox is then closed).
func (o *Outbox) Go(w io.Writer, done func(error)) {
	o.mu.Lock()
	o.w, o.done = w, done
	o.tw, _ = w.(TryWriter)
	o.progress = time.Now()
	o.spawn.Store(true)
	start := !o.empty() || o.closed
	o.writing = start
	o.mu.Unlock()
	if start {
		go o.drain()
	}
}

// drain is Go's writer: it writes until nothing is pending, then ends.
func (o *Outbox) drain() {
	for {
		o.mu.Lock()
		if o.empty() {
			finish := o.stopLocked()
			o.mu.Unlock()
			if finish {
				o.done(nil)
			}
			return
		}
		buf, pkts := o.takeLocked()
		o.mu.Unlock()
		if err := o.write(o.w, buf, pkts); err != nil {
			o.failed(err)
			return
		}
	}
}

// writeInline writes a small batch from the goroutine that queued it, when
// no writer was running: a packet of an interactive exchange then leaves
// without waking another goroutine. The write does not wait for the
// network; if the socket cannot take it all, a goroutine finishes it.
func (o *Outbox) writeInline(buf *[]byte, pkts int) {
	size := len(*buf)
	sent, err := o.tw.TryWrite(*buf)
	if err == nil && !sent {
		go func() {
			if err := o.wrote(buf, size, pkts, o.tw.Finish()); err != nil {
				o.failed(err)
				return
			}
			o.drain()
		}()
		return
	}
	if err := o.wrote(buf, size, pkts, err); err != nil {
		o.failed(err)
		return
	}
	o.mu.Lock()
	if !o.empty() { // queued meanwhile
		o.mu.Unlock()
		go o.drain()
		return
	}
	finish := o.stopLocked()
	o.mu.Unlock()
	if finish {
		o.done(nil)
	}
}

// stopLocked records that the writer ended with nothing pending; it reports
// whether done must now be called (the Outbox was closed).
func (o *Outbox) stopLocked() bool {
	o.writing = false
	if o.closed && !o.finished {
		o.finished = true
		o.releaseLocked()
		return true
	}
	return false
}

// failed ends Go's writer after a write error.
func (o *Outbox) failed(err error) {
	o.mu.Lock()
	o.writing = false
	finish := !o.finished
	o.finished = true
	o.mu.Unlock()
	if finish {
		o.done(err)
	}
}

func (o *Outbox) empty() bool { return o.pending == nil || len(*o.pending) == 0 }

// takeLocked hands the pending buffer to the writer.
func (o *Outbox) takeLocked() (*[]byte, int) {
	buf, pkts := o.pending, o.pendingPkts
	o.pending, o.spare, o.pendingPkts = o.spare, nil, 0
	return buf, pkts
}

// write writes one taken buffer and does the bookkeeping; on error the
// Outbox is closed and the error returned wrapped.
func (o *Outbox) write(w io.Writer, buf *[]byte, pkts int) error {
	size := len(*buf)
	n, err := w.Write(*buf)
	if err == nil && n != size {
		err = io.ErrShortWrite
	}
	return o.wrote(buf, size, pkts, err)
}

// wrote is the bookkeeping after a write of size bytes (pkts packets) from buf.
func (o *Outbox) wrote(buf *[]byte, size, pkts int, err error) error {
	*buf = (*buf)[:0]
	o.mu.Lock()
	o.spare = buf
	o.progress, o.waited = time.Now(), false
	if o.room != nil {
		close(o.room) // wake producers waiting for room
		o.room = nil
	}
	if err != nil {
		o.closed = true
		o.releaseLocked()
		o.mu.Unlock()
		return fmt.Errorf("wire: writing %d bytes of packets: %w", size, err)
	}
	if o.pool != nil && o.empty() {
		o.releaseLocked() // idle: give both buffers back
	}
	o.mu.Unlock()
	o.writes.Add(1)
	o.packets.Add(uint64(pkts))
	o.bytes.Add(uint64(size))
	return nil
}

// Stats returns a snapshot of the counters.
func (o *Outbox) Stats() OutboxStats {
	return OutboxStats{
		Packets:        o.packets.Load(),
		Bytes:          o.bytes.Load(),
		Writes:         o.writes.Load(),
		DroppedFull:    o.droppedFull.Load(),
		DroppedInvalid: o.droppedInvalid.Load(),
	}
}

func (o *Outbox) getBuf() *[]byte {
	if o.pool != nil {
		if b, ok := o.pool.Get().(*[]byte); ok && cap(*b) >= o.limit {
			*b = (*b)[:0]
			return b
		}
	}
	b := make([]byte, 0, o.limit)
	return &b
}

// releaseLocked drops the buffers (into the pool, if any). pending must be
// empty or discardable.
func (o *Outbox) releaseLocked() {
	for _, b := range [...]*[]byte{o.pending, o.spare} {
		if b != nil && o.pool != nil {
			*b = (*b)[:0]
			o.pool.Put(b)
		}
	}
	o.pending, o.spare, o.pendingPkts = nil, nil, 0
}
