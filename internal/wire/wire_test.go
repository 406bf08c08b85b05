package wire

import (
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestCheckPacket(t *testing.T) {
	jumbo := makePacket(0, 1)
	jumbo[6] = 0
	tests := []struct {
		pkt  []byte
		want error
	}{
		{makePacket(0, 1), nil},
		{makePacket(1240, 1), nil},
		{makePacket(65535, 1), nil},
		{nil, ErrBadLength},
		{[]byte{0x60}, ErrBadLength},
		{[]byte{0x40}, ErrNotIPv6},
		{makePacket(10, 1)[:49], ErrBadLength},
		{jumbo, ErrJumbogram},
	}
	for i, tt := range tests {
		if got := CheckPacket(tt.pkt); got != tt.want {
			t.Errorf("%d: got %v, want %v", i, got, tt.want)
		}
	}
}

func TestErrorWrapping(t *testing.T) {
	for _, err := range []error{ErrNotIPv6, ErrJumbogram, ErrBadLength} {
		if !errors.Is(err, ErrBadFrame) {
			t.Errorf("%v does not wrap ErrBadFrame", err)
		}
	}
	if !errors.Is(ErrTruncated, io.ErrUnexpectedEOF) || errors.Is(ErrTruncated, ErrBadFrame) {
		t.Error("ErrTruncated must wrap io.ErrUnexpectedEOF only")
	}
}

// loopReader replays data forever without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func TestNoAllocs(t *testing.T) {
	// Next: many refills and compactions of the buffer, mixed sizes.
	stream := concat(mixedPackets(100, 3))
	r := NewReader(&loopReader{data: stream}, 0)
	if allocs := testing.AllocsPerRun(20000, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Reader.Next: %v allocs per packet, want 0", allocs)
	}

	// Append while the writer drains into io.Discard. Warm up first so both
	// buffers exist.
	o := NewOutbox(0)
	wait := goOutbox(o, io.Discard)
	pkt := makePacket(1240, 1)
	for range 1000 {
		_ = o.Append(pkt)
	}
	if allocs := testing.AllocsPerRun(20000, func() {
		if err := o.Append(pkt); err != nil && err != ErrFull {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Outbox.Append: %v allocs per packet, want 0", allocs)
	}
	batch := [][]byte{pkt, pkt, pkt, pkt}
	if allocs := testing.AllocsPerRun(5000, func() {
		if _, err := o.AppendBatch(batch); err != nil && err != ErrFull {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Outbox.AppendBatch: %v allocs per batch, want 0", allocs)
	}
	o.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkDeframe(b *testing.B) {
	var pkts [][]byte
	for i := range 64 {
		pkts = append(pkts, makePacket(1240, uint64(i)))
	}
	r := NewReader(&loopReader{data: concat(pkts)}, 0)
	b.SetBytes(1280)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutboxAppend measures Append alone: instead of a writer goroutine,
// the benchmark empties the pending buffer itself whenever it is full.
func BenchmarkOutboxAppend(b *testing.B) {
	o := NewOutbox(0)
	pkt := makePacket(1240, 1)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if err := o.Append(pkt); err == ErrFull {
			o.mu.Lock()
			*o.pending = (*o.pending)[:0]
			o.mu.Unlock()
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutboxRoundTrip sends every packet (retrying on ErrFull) from a
// producer through the writer into io.Discard, and waits until all are written.
func BenchmarkOutboxRoundTrip(b *testing.B) {
	o := NewOutbox(0)
	wait := goOutbox(o, io.Discard)
	pkt := makePacket(1240, 1)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	var sent uint64
	for b.Loop() {
		for o.Append(pkt) == ErrFull {
			runtime.Gosched()
		}
		sent++
	}
	o.Close()
	if err := wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := o.Stats()
	if st.Packets != sent {
		b.Fatalf("%d packets written, want %d", st.Packets, sent)
	}
	b.ReportMetric(float64(st.Packets)/float64(st.Writes), "pkts/write")
}
