package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// makePacket returns a valid IPv6 packet with the given payload length and
// deterministic content.
func makePacket(payload int, seed uint64) []byte {
	p := make([]byte, HeaderLen+payload)
	rng := rand.New(rand.NewPCG(seed, uint64(payload)))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	p[0] = 0x60 | p[0]&0x0f
	p[4], p[5] = byte(payload>>8), byte(payload)
	p[6] = 59 // No Next Header: never a jumbogram, even with payload 0
	return p
}

func concat(pkts [][]byte) []byte {
	var b []byte
	for _, p := range pkts {
		b = append(b, p...)
	}
	return b
}

// mixedPackets returns n packets with varied sizes, including the extremes.
func mixedPackets(n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	sizes := []int{0, 1, 1240, 65535, 7, 1460}
	var pkts [][]byte
	for i := range n {
		pl := rng.IntN(2000)
		if i < len(sizes) {
			pl = sizes[i]
		}
		pkts = append(pkts, makePacket(pl, seed+uint64(i)))
	}
	return pkts
}

// chunkReader returns data in chunks of pseudo-random sizes in [1, max].
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func newChunkReader(data []byte, seed uint64, max int) *chunkReader {
	return &chunkReader{data: data, rng: rand.New(rand.NewPCG(seed, 2)), max: max}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(1+c.rng.IntN(c.max), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// splitReader returns data[:at] in its first read and the rest afterwards.
type splitReader struct {
	parts [][]byte
}

func (s *splitReader) Read(p []byte) (int, error) {
	for len(s.parts) > 0 && len(s.parts[0]) == 0 {
		s.parts = s.parts[1:]
	}
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	return n, nil
}

// readAll reads a request head (if head) then every packet, and returns the
// packets and the final error.
func readAll(t *testing.T, r *Reader, head bool) ([][]byte, error) {
	t.Helper()
	if head {
		req, err := r.ReadRequest(0)
		if err != nil {
			t.Fatalf("ReadRequest: %v", err)
		}
		if req.Path != "/IPHTTPS" {
			t.Fatalf("path %q", req.Path)
		}
	}
	var pkts [][]byte
	for {
		p, err := r.Next()
		if err != nil {
			return pkts, err
		}
		pkts = append(pkts, bytes.Clone(p))
	}
}

func checkPackets(t *testing.T, got, want [][]byte, label string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d packets, want %d", label, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: packet %d differs (len %d, want %d)", label, i, len(got[i]), len(want[i]))
		}
	}
}

func TestReaderSplitEverywhere(t *testing.T) {
	head := AppendRequest(nil, "/IPHTTPS", "h")
	pkts := [][]byte{makePacket(0, 1), makePacket(1, 2), makePacket(100, 3), makePacket(1240, 4)}
	stream := append(bytes.Clone(head), concat(pkts)...)
	for at := 0; at <= len(stream); at++ {
		sr := &splitReader{parts: [][]byte{bytes.Clone(stream[:at]), bytes.Clone(stream[at:])}}
		got, err := readAll(t, NewReader(sr, 0), true)
		if err != io.EOF {
			t.Fatalf("split at %d: final error %v, want io.EOF", at, err)
		}
		checkPackets(t, got, pkts, fmt.Sprintf("split at %d", at))
	}
}

func TestReaderOneByteAndChunks(t *testing.T) {
	head := AppendRequest(nil, "/IPHTTPS", "h")
	pkts := mixedPackets(40, 7)
	stream := append(bytes.Clone(head), concat(pkts)...)

	got, err := readAll(t, NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 0), true)
	if err != io.EOF {
		t.Fatalf("one byte: %v", err)
	}
	checkPackets(t, got, pkts, "one byte")

	for seed := range uint64(20) {
		for _, size := range []int{MaxPacket, 100_000, 0} {
			for _, maxChunk := range []int{3, 64, 1500, 20_000, 300_000} {
				r := NewReader(newChunkReader(stream, seed, maxChunk), size)
				got, err := readAll(t, r, true)
				if err != io.EOF {
					t.Fatalf("seed %d: %v", seed, err)
				}
				checkPackets(t, got, pkts, fmt.Sprintf("seed %d size %d chunk %d", seed, size, maxChunk))
			}
		}
	}
	// Also through iotest.DataErrReader: EOF arrives with the last data.
	got, err = readAll(t, NewReader(iotest.DataErrReader(bytes.NewReader(stream)), 0), true)
	if err != io.EOF {
		t.Fatalf("DataErrReader: %v", err)
	}
	checkPackets(t, got, pkts, "DataErrReader")
}

func TestReaderPacketSizes(t *testing.T) {
	for _, pl := range []int{0, 1, 39, 40, 1240, 1280, 9000, 65534, 65535} {
		pkts := [][]byte{makePacket(pl, 1), makePacket(pl, 2), makePacket(65535-pl, 3)}
		for _, size := range []int{1, MaxPacket, 0} {
			got, err := readAll(t, NewReader(bytes.NewReader(concat(pkts)), size), false)
			if err != io.EOF {
				t.Fatalf("payload %d: %v", pl, err)
			}
			checkPackets(t, got, pkts, fmt.Sprintf("payload %d size %d", pl, size))
		}
	}
}

// countingReader counts Read calls.
type countingReader struct {
	r     io.Reader
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	return c.r.Read(p)
}

func TestReaderManyPacketsPerRead(t *testing.T) {
	var pkts [][]byte
	for i := range 100 {
		pkts = append(pkts, makePacket(1240, uint64(i)))
	}
	cr := &countingReader{r: bytes.NewReader(concat(pkts))} // 128000 bytes
	got, err := readAll(t, NewReader(cr, 0), false)
	if err != io.EOF {
		t.Fatal(err)
	}
	checkPackets(t, got, pkts, "bulk")
	if cr.calls > 2 {
		t.Errorf("%d Read calls for 128000 bytes with a 256 KiB buffer, want <= 2", cr.calls)
	}
}

// failAfter returns its data in one read, then fails any further read.
type failAfter struct {
	data []byte
	err  error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.data == nil {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	if len(f.data) == 0 {
		f.data = nil
	}
	return n, nil
}

func TestReaderKeepsBytesAfterHead(t *testing.T) {
	boom := errors.New("boom")
	pkts := [][]byte{makePacket(20, 1), makePacket(1240, 2)}
	body := concat(pkts)
	for _, client := range []bool{false, true} {
		var head []byte
		if client {
			head = AppendResponse(nil, "s", testNow)
		} else {
			head = AppendRequest(nil, "/IPHTTPS", "h")
		}
		r := NewReader(&failAfter{data: append(head, body...), err: boom}, 0)
		var err error
		if client {
			_, err = r.ReadResponse(0)
		} else {
			_, err = r.ReadRequest(0)
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != len(body) {
			t.Fatalf("Buffered() = %d after head, want %d", r.Buffered(), len(body))
		}
		// Both packets come from the buffer, before the reader fails.
		for i, want := range pkts {
			p, err := r.Next()
			if err != nil || !bytes.Equal(p, want) {
				t.Fatalf("packet %d: %v", i, err)
			}
		}
		if _, err := r.Next(); !errors.Is(err, boom) {
			t.Fatalf("got %v, want wrapped boom", err)
		}
		if _, err2 := r.Next(); !errors.Is(err2, boom) {
			t.Fatalf("error not sticky: %v", err2)
		}
	}
}

func TestReaderTruncation(t *testing.T) {
	pkts := [][]byte{makePacket(0, 1), makePacket(100, 2), makePacket(1, 3)}
	stream := concat(pkts)
	bounds := map[int]int{0: 0} // offset -> packets complete
	off := 0
	for i, p := range pkts {
		off += len(p)
		bounds[off] = i + 1
	}
	for cut := 0; cut <= len(stream); cut++ {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(stream[:cut])
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			got, err := readAll(t, NewReader(src, 0), false)
			n, boundary := bounds[cut]
			if boundary {
				if err != io.EOF {
					t.Fatalf("cut %d: got %v, want io.EOF", cut, err)
				}
			} else {
				if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("cut %d: got %v, want ErrTruncated", cut, err)
				}
				n = len(got)
			}
			checkPackets(t, got, pkts[:n], fmt.Sprintf("cut %d", cut))
		}
	}
}

func TestReaderBadStreams(t *testing.T) {
	good := concat([][]byte{makePacket(10, 1), makePacket(1240, 2)})
	jumbo := makePacket(0, 3)
	jumbo[6] = 0 // Hop-by-Hop with payload length 0
	v4 := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2}
	tests := []struct {
		name  string
		tail  []byte
		want  error
		isBad bool
	}{
		{"IPv4 after packets", v4, ErrNotIPv6, true},
		{"one garbage byte", []byte{0x00}, ErrNotIPv6, true},
		{"HTTP garbage", []byte("GET / HTTP/1.1\r\n\r\n"), ErrNotIPv6, true},
		{"version 7 header", append([]byte{0x70}, make([]byte, 39)...), ErrNotIPv6, true},
		{"jumbogram", jumbo, ErrJumbogram, true},
		{"jumbogram with payload", append(bytes.Clone(jumbo), make([]byte, 100)...), ErrJumbogram, true},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 1 << 20} {
			stream := append(bytes.Clone(good), tt.tail...)
			r := NewReader(newChunkReader(stream, 1, chunk), 0)
			got, err := readAll(t, r, false)
			if err != tt.want || errors.Is(err, ErrBadFrame) != tt.isBad {
				t.Fatalf("%s chunk %d: got %v, want %v", tt.name, chunk, err, tt.want)
			}
			if len(got) != 2 {
				t.Fatalf("%s: %d good packets before the error, want 2", tt.name, len(got))
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("%s: second call returned %v, want %v", tt.name, err2, err)
			}
		}
	}
}

func TestReaderNoProgress(t *testing.T) {
	_, err := NewReader(errReader{nil}, 0).Next()
	if !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}
