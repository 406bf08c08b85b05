package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fillOutbox appends pkt until the outbox refuses it.
func fillOutbox(t *testing.T, o *Outbox, pkt []byte) int {
	t.Helper()
	n := 0
	for o.Append(pkt) == nil {
		n++
	}
	return n
}

// fullOutbox returns a running Outbox whose writer is blocked in a write
// (let it go with g.gate) and whose queue is full of copies of pkt.
func fullOutbox(t *testing.T) (o *Outbox, g *gateWriter, wait func() error, pkt []byte) {
	t.Helper()
	o = NewOutbox(1) // MaxPacket bytes
	g = &gateWriter{entered: make(chan int, 10), gate: make(chan struct{})}
	wait = goOutbox(o, g)
	pkt = makePacket(1240, 1)
	o.Append(pkt) // the writer takes this one and blocks in Write
	<-g.entered
	fillOutbox(t, o, pkt)
	return o, g, wait, pkt
}

func TestAppendWaitsForRoom(t *testing.T) {
	o, g, wait, pkt := fullOutbox(t)

	done := make(chan error, 1)
	go func() { done <- o.AppendWait(pkt, 5*time.Second) }()
	select {
	case err := <-done:
		t.Fatalf("AppendWait returned %v on a full outbox before the writer moved", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.gate <- struct{}{} // the write completes: room for more
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AppendWait after room was made: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("AppendWait did not return after the writer made room")
	}
	if st := o.Stats(); st.DroppedFull != 1 { // only fillOutbox's last try
		t.Fatalf("dropped %d, want 1", st.DroppedFull)
	}
	close(g.gate)
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestAppendWaitStalledWriter(t *testing.T) {
	o, g, wait, pkt := fullOutbox(t)

	start := time.Now()
	if err := o.AppendWait(pkt, 20*time.Millisecond); !errors.Is(err, ErrFull) {
		t.Fatalf("AppendWait on a stuck writer: %v, want ErrFull", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("first AppendWait gave up after %v, want the full wait", d)
	}
	// The writer made no progress for StallAfter: appends drop at once.
	time.Sleep(StallAfter)
	start = time.Now()
	if err := o.AppendWait(pkt, time.Second); !errors.Is(err, ErrFull) {
		t.Fatalf("AppendWait on a stalled writer: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("AppendWait on a stalled writer waited %v", d)
	}
	// Once the writer moves, appends wait again and get through.
	g.gate <- struct{}{}
	<-g.entered // the next write started: the first one completed
	done := make(chan error, 1)
	go func() { done <- o.AppendWait(pkt, 5*time.Second) }()
	g.gate <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("AppendWait after the writer recovered: %v", err)
	}
	close(g.gate)
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestAppendWaitClosed(t *testing.T) {
	o, g, wait, pkt := fullOutbox(t)
	done := make(chan error, 1)
	go func() { done <- o.AppendWait(pkt, 10*time.Second) }()
	time.Sleep(20 * time.Millisecond)
	o.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("AppendWait on a closed outbox: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake AppendWait")
	}
	close(g.gate)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestTryFill(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := NewReader(tryConn{c}, 0)
	a, b := makePacket(100, 1), makePacket(200, 2)

	if r.TryFill() {
		t.Fatal("TryFill found data on an idle connection")
	}
	w.Write(a)
	if p, err := r.Next(); err != nil || len(p) != len(a) {
		t.Fatalf("Next = %d bytes, %v", len(p), err)
	}
	w.Write(b)
	deadline := time.Now().Add(2 * time.Second)
	for !r.TryFill() {
		if time.Now().After(deadline) {
			t.Fatal("TryFill never saw the second packet")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !r.HasPacket() {
		t.Fatal("TryFill returned true without a whole packet buffered")
	}
	if p, err := r.Next(); err != nil || len(p) != len(b) {
		t.Fatalf("Next = %d bytes, %v", len(p), err)
	}
	// The deadline is cleared: a blocking Next still waits for data.
	go func() {
		time.Sleep(50 * time.Millisecond)
		w.Write(a)
	}()
	if p, err := r.Next(); err != nil || len(p) != len(a) {
		t.Fatalf("Next after TryFill = %d bytes, %v", len(p), err)
	}
	w.Close()
	if r.TryFill() {
		t.Fatal("TryFill reported data at EOF")
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at EOF: %v", err)
	}
}

// tryConn reads without waiting the way batchio does for real connections:
// with a deadline that has passed, which a net.Conn honours only when no
// data is buffered in Go (so TryRead may miss data the kernel holds).
type tryConn struct{ net.Conn }

func (c tryConn) TryRead(p []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	return c.Read(p)
}

func TestOutboxGoIdleHoldsNoGoroutine(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	o := NewOutboxPool(0, &sync.Pool{})
	before := runtime.NumGoroutine()
	pkt := makePacket(100, 1)
	o.Append(pkt) // queued before Go: written once Go starts
	wait := goOutbox(o, w)
	for i := range 50 {
		if err := o.Append(pkt); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines while idle, %d before Go", n, before)
	}
	if st := o.Stats(); st.Packets != 51 {
		t.Fatalf("wrote %d packets, want 51", st.Packets)
	}
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if out.Len() != 51*len(pkt) {
		t.Fatalf("%d bytes out, want %d", out.Len(), 51*len(pkt))
	}
}

func TestOutboxGoWriteError(t *testing.T) {
	boom := errors.New("boom")
	o := NewOutbox(0)
	wait := goOutbox(o, writerFunc(func([]byte) (int, error) { return 0, boom }))
	o.Append(makePacket(10, 1))
	if err := wait(); !errors.Is(err, boom) {
		t.Fatalf("done(%v), want %v", err, boom)
	}
	if err := o.Append(makePacket(10, 2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after a failed write: %v", err)
	}
	o.Close() // no second done
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// fakeTryWriter is a TryWriter whose TryWrite leaves every other write held
// until Finish, as a full socket would.
type fakeTryWriter struct {
	mu                      sync.Mutex
	out, held               bytes.Buffer
	tries, writes, finishes int
	partialEvery            int
}

func (f *fakeTryWriter) TryWrite(p []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	f.held.Write(p)
	if f.partialEvery > 0 && f.tries%f.partialEvery == 0 {
		return false, nil
	}
	f.out.Write(f.held.Bytes())
	f.held.Reset()
	return true, nil
}

func (f *fakeTryWriter) Finish() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finishes++
	f.out.Write(f.held.Bytes())
	f.held.Reset()
	return nil
}

func (f *fakeTryWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	f.out.Write(f.held.Bytes()) // held bytes go first, as in batchio
	f.held.Reset()
	return f.out.Write(p)
}

func TestOutboxInlineWrite(t *testing.T) {
	f := &fakeTryWriter{}
	o := NewOutboxPool(0, &sync.Pool{})
	wait := goOutbox(o, f)
	pkt := makePacket(100, 1)
	time.Sleep(InlineQuiet)
	if err := o.Append(pkt); err != nil {
		t.Fatal(err)
	}
	// Written by Append itself: done when it returns.
	if st := o.Stats(); st.Packets != 1 || f.tries != 1 || f.writes != 0 {
		t.Fatalf("after Append: stats %+v, %d tries, %d writes", st, f.tries, f.writes)
	}
	// A batch larger than InlineMax goes to a writer goroutine.
	big := makePacket(InlineMax, 2)
	if err := o.Append(big); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if f.writes != 1 || f.out.Len() != len(pkt)+len(big) {
		t.Fatalf("%d writes, %d bytes out", f.writes, f.out.Len())
	}
}

func TestOutboxInlinePartialKeepsOrder(t *testing.T) {
	f := &fakeTryWriter{partialEvery: 3}
	o := NewOutboxPool(0, &sync.Pool{})
	wait := goOutbox(o, f)
	var want bytes.Buffer
	for i := range 2000 {
		p := taggedPacket(0, i, i%3000) // small and large
		for {
			err := o.AppendWait(p, time.Second)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
		}
		want.Write(p)
		if i%20 == 0 {
			time.Sleep(2 * InlineQuiet) // let the writer go quiet now and then
		}
	}
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(f.out.Bytes(), want.Bytes()) {
		t.Fatalf("stream out of order or incomplete: %d bytes, want %d", f.out.Len(), want.Len())
	}
	if f.finishes == 0 || f.tries == 0 {
		t.Fatalf("inline path not exercised: %d tries, %d finishes", f.tries, f.finishes)
	}
	t.Logf("%d inline tries, %d finished later, %d goroutine writes", f.tries, f.finishes, f.writes)
}

func TestAppendWaitOncePerWrite(t *testing.T) {
	// The writer started moments ago (it is "making progress"), but once a
	// wait for room has timed out, the next appends drop at once until it
	// finishes its write: a slow peer costs its producers one wait per write.
	o, g, wait, pkt := fullOutbox(t)
	if err := o.AppendWait(pkt, 20*time.Millisecond); !errors.Is(err, ErrFull) {
		t.Fatalf("first AppendWait: %v, want ErrFull", err)
	}
	start := time.Now()
	if err := o.AppendWait(pkt, time.Second); !errors.Is(err, ErrFull) {
		t.Fatalf("second AppendWait: %v, want ErrFull", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("second AppendWait in the same write waited %v", d)
	}
	close(g.gate)
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
