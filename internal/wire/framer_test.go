package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// taggedPacket returns a packet whose payload starts with producer and seq.
func taggedPacket(producer, seq, payload int) []byte {
	p := makePacket(max(payload, 8), uint64(producer<<20|seq))
	binary.BigEndian.PutUint32(p[40:], uint32(producer))
	binary.BigEndian.PutUint32(p[44:], uint32(seq))
	return p
}

// goOutbox starts Go and returns a function that waits for done.
func goOutbox(o *Outbox, w io.Writer) func() error {
	done := make(chan error, 2)
	o.Go(w, func(err error) { done <- err })
	return func() error {
		select {
		case err := <-done:
			select {
			case <-done:
				panic("done called twice")
			case <-time.After(20 * time.Millisecond):
			}
			return err
		case <-time.After(10 * time.Second):
			panic("done was not called")
		}
	}
}

func TestOutboxConcurrent(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		const producers, perProducer = 8, 500
		var o *Outbox
		if pooled {
			o = NewOutboxPool(0, &sync.Pool{})
		} else {
			o = NewOutbox(MaxPacket)
		}
		var out bytes.Buffer
		wait := goOutbox(o, &out)

		var wg sync.WaitGroup
		var full sync.Map
		for id := range producers {
			wg.Go(func() {
				for seq := range perProducer {
					pkt := taggedPacket(id, seq, (id*perProducer+seq)%1500)
					if seq%10 == 9 { // sometimes in batches of one
						if n, err := o.AppendBatch([][]byte{pkt}); n == 1 && err == nil {
							continue
						}
					}
					for {
						err := o.Append(pkt)
						if err == nil {
							break
						}
						if !errors.Is(err, ErrFull) {
							t.Errorf("Append: %v", err)
							return
						}
						full.Store(id, true)
						runtime.Gosched()
					}
				}
			})
		}
		wg.Wait()
		o.Close()
		if err := wait(); err != nil {
			t.Fatalf("writer: %v", err)
		}

		r := NewReader(&out, 0)
		next := make([]int, producers)
		var total, totalBytes int
		for {
			p, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("deframing the output: %v", err)
			}
			id, seq := int(binary.BigEndian.Uint32(p[40:])), int(binary.BigEndian.Uint32(p[44:]))
			if id >= producers || seq != next[id] {
				t.Fatalf("producer %d: got seq %d, want %d", id, seq, next[id])
			}
			if !bytes.Equal(p, taggedPacket(id, seq, (id*perProducer+seq)%1500)) {
				t.Fatalf("producer %d seq %d: content differs", id, seq)
			}
			next[id]++
			total++
			totalBytes += len(p)
		}
		if total != producers*perProducer {
			t.Fatalf("got %d packets, want %d", total, producers*perProducer)
		}
		st := o.Stats()
		if st.Packets != uint64(total) || st.Bytes != uint64(totalBytes) || st.DroppedInvalid != 0 ||
			st.Writes == 0 || st.Writes > st.Packets {
			t.Errorf("stats %+v", st)
		}
		t.Logf("pooled=%v: %d packets in %d writes, %d dropped full (retried)", pooled, st.Packets, st.Writes, st.DroppedFull)
	}
}

// gateWriter blocks each Write until the test lets it through.
type gateWriter struct {
	entered chan int
	gate    chan struct{}
	buf     bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.entered <- len(p)
	<-g.gate
	return g.buf.Write(p)
}

func TestOutboxCoalesces(t *testing.T) {
	o := NewOutbox(0)
	g := &gateWriter{entered: make(chan int), gate: make(chan struct{})}
	wait := goOutbox(o, g)

	pkts := [][]byte{makePacket(1240, 0)}
	if err := o.Append(pkts[0]); err != nil {
		t.Fatal(err)
	}
	if n := <-g.entered; n != 1280 {
		t.Fatalf("first write %d bytes", n)
	}
	// While the first write is blocked, queue more: the mutex is free.
	var batch [][]byte
	for i := 1; i < 10; i++ {
		batch = append(batch, makePacket(1240, uint64(i)))
	}
	if n, err := o.AppendBatch(batch); n != 9 || err != nil {
		t.Fatalf("AppendBatch: %d, %v", n, err)
	}
	pkts = append(pkts, batch...)
	o.Close()
	g.gate <- struct{}{}
	if n := <-g.entered; n != 9*1280 {
		t.Fatalf("second write %d bytes, want all 9 packets", n)
	}
	g.gate <- struct{}{}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.buf.Bytes(), concat(pkts)) {
		t.Fatal("output differs")
	}
	if st := o.Stats(); st.Writes != 2 || st.Packets != 10 || st.Bytes != 12800 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOutboxFull(t *testing.T) {
	o := NewOutbox(1) // raised to MaxPacket
	pkt := makePacket(1240, 1)
	accepted := 0
	for {
		err := o.Append(pkt)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	if want := MaxPacket / 1280; accepted != want {
		t.Fatalf("accepted %d packets, want %d", accepted, want)
	}
	if n, err := o.AppendBatch([][]byte{pkt, pkt}); n != 0 || !errors.Is(err, ErrFull) {
		t.Fatalf("AppendBatch on full outbox: %d, %v", n, err)
	}
	// Drain, then a maximum-size packet fits in the empty outbox.
	var out bytes.Buffer
	wait := goOutbox(o, &out)
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.DroppedFull != 2 || st.Packets != uint64(accepted) || out.Len() != accepted*1280 {
		t.Fatalf("stats %+v, %d bytes out", st, out.Len())
	}

	o = NewOutbox(1)
	big := makePacket(65535, 2)
	if err := o.Append(big); err != nil {
		t.Fatalf("MaxPacket packet: %v", err)
	}
	if err := o.Append(makePacket(0, 3)); !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
}

func TestOutboxBadFrame(t *testing.T) {
	good := makePacket(100, 1)
	jumbo := makePacket(0, 2)
	jumbo[6] = 0
	v4 := make([]byte, 40)
	v4[0] = 0x45
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"nil", nil, ErrBadLength},
		{"39 bytes", good[:39], ErrBadLength},
		{"one byte short", good[:len(good)-1], ErrBadLength},
		{"one byte long", append(bytes.Clone(good), 0), ErrBadLength},
		{"two packets", append(bytes.Clone(good), good...), ErrBadLength},
		{"IPv4", v4, ErrNotIPv6},
		{"version 0", make([]byte, 40), ErrNotIPv6},
		{"jumbogram", jumbo, ErrJumbogram},
	}
	o := NewOutbox(0)
	for i, tt := range tests {
		err := o.Append(tt.pkt)
		if err != tt.want || !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
		if got := o.Stats().DroppedInvalid; got != uint64(i+1) {
			t.Errorf("%s: DroppedInvalid = %d", tt.name, got)
		}
	}
	if CheckPacket(good) != nil || CheckPacket(makePacket(0, 3)) != nil {
		t.Error("CheckPacket rejects valid packets")
	}

	// AppendBatch queues up to the first bad packet.
	n, err := o.AppendBatch([][]byte{good, good, v4, good})
	if n != 2 || err != ErrNotIPv6 {
		t.Fatalf("AppendBatch: %d, %v", n, err)
	}
	var out bytes.Buffer
	wait := goOutbox(o, &out)
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), concat([][]byte{good, good})) {
		t.Fatalf("output %d bytes", out.Len())
	}
}

func TestOutboxClose(t *testing.T) {
	// Close before Go: the writer drains what is pending, then done(nil).
	o := NewOutbox(0)
	pkts := [][]byte{makePacket(1, 1), makePacket(2, 2), makePacket(3, 3)}
	if n, err := o.AppendBatch(pkts); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	o.Close()
	o.Close()
	if err := o.Append(pkts[0]); err != ErrClosed {
		t.Fatalf("Append after Close: %v", err)
	}
	if n, err := o.AppendBatch(pkts); n != 0 || err != ErrClosed {
		t.Fatalf("AppendBatch after Close: %d, %v", n, err)
	}
	var out bytes.Buffer
	if err := goOutbox(o, &out)(); err != nil { // Go after Close drains and finishes
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), concat(pkts)) {
		t.Fatal("pending packets not drained")
	}
	if o.pending != nil || o.spare != nil {
		t.Error("buffers kept after Close")
	}

	// Close finishes an idle writer.
	o = NewOutbox(0)
	wait := goOutbox(o, io.Discard)
	time.Sleep(10 * time.Millisecond)
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

type failWriter struct {
	n   int
	err error
}

func (f failWriter) Write(p []byte) (int, error) { return min(f.n, len(p)), f.err }

func TestOutboxWriteError(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		w    io.Writer
		want error
	}{
		{failWriter{0, boom}, boom},
		{failWriter{10, nil}, io.ErrShortWrite},
	} {
		o := NewOutbox(0)
		wait := goOutbox(o, tt.w)
		if err := o.Append(makePacket(10, 1)); err != nil {
			t.Fatal(err)
		}
		if err := wait(); !errors.Is(err, tt.want) {
			t.Fatalf("done(%v), want %v", err, tt.want)
		}
		if err := o.Append(makePacket(10, 1)); err != ErrClosed {
			t.Fatalf("Append after write error: %v", err)
		}
		if st := o.Stats(); st.Writes != 0 || st.Packets != 0 {
			t.Fatalf("stats %+v", st)
		}
	}
}

func TestOutboxPoolReleasesWhenIdle(t *testing.T) {
	pool := &sync.Pool{}
	o := NewOutboxPool(0, pool)
	wait := goOutbox(o, io.Discard)
	for round := 1; round <= 3; round++ {
		if err := o.Append(makePacket(10, 1)); err != nil {
			t.Fatal(err)
		}
		for o.Stats().Writes != uint64(round) {
			time.Sleep(time.Millisecond)
		}
		o.mu.Lock()
		idle := o.pending == nil && o.spare == nil
		o.mu.Unlock()
		if !idle {
			t.Fatalf("round %d: idle Outbox still holds buffers", round)
		}
	}
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	// A pool holding wrong or small values is tolerated.
	pool = &sync.Pool{New: func() any { b := make([]byte, 10); return &b }}
	junk := "junk"
	pool.Put(&junk)
	o = NewOutboxPool(0, pool)
	if err := o.Append(makePacket(10, 1)); err != nil {
		t.Fatal(err)
	}
	if c := cap(*o.pending); c < DefaultOutboxLimit {
		t.Fatalf("pending buffer cap %d", c)
	}
}
