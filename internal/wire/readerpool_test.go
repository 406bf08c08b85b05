package wire

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// A pooled Reader returns the same packets as a plain one however the stream
// is cut, moving between its small and large buffers as reads get small and
// large.
func TestReaderPoolSameStream(t *testing.T) {
	head := AppendRequest(nil, "/IPHTTPS", "h")
	pkts := mixedPackets(60, 11)
	stream := append(bytes.Clone(head), concat(pkts)...)
	var pool sync.Pool
	for seed := range uint64(20) {
		for _, maxChunk := range []int{3, 100, 1300, smallReadSize, smallReadSize + 1, 20_000, 300_000} {
			r := NewReaderPool(newChunkReader(stream, seed, maxChunk), 0, &pool)
			got, err := readAll(t, r, true)
			if err != io.EOF {
				t.Fatalf("seed %d chunk %d: %v", seed, maxChunk, err)
			}
			checkPackets(t, got, pkts, fmt.Sprintf("pooled seed %d chunk %d", seed, maxChunk))
			r.Release()
		}
	}
	r := NewReaderPool(iotest.OneByteReader(bytes.NewReader(stream)), 0, &pool)
	got, err := readAll(t, r, true)
	if err != io.EOF {
		t.Fatalf("one byte: %v", err)
	}
	checkPackets(t, got, pkts, "pooled one byte")
}

// An idle pooled Reader (small reads) gives its large buffer back.
func TestReaderPoolIdleHoldsNoLargeBuffer(t *testing.T) {
	var pool sync.Pool
	pr, pw := io.Pipe()
	r := NewReaderPool(pr, 0, &pool)
	go func() {
		pw.Write(AppendResponse(nil, "test", time.Unix(0, 0)))
		for i := range 5 {
			pw.Write(makePacket(100, uint64(i))) // one small packet per read
		}
		pw.Close()
	}()
	if _, err := r.ReadResponse(0); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if r.big != nil {
			t.Fatal("the large buffer is held while packets come one small read at a time")
		}
	}
}
