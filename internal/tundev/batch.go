package tundev

// maxCoalesced is the largest packet GRO may build in a write buffer.
const maxCoalesced = 65535

// Packets is what the batch helpers need of a device: wireguard-go's
// tun.Device has it, and so does the client's in-process stack.
type Packets interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	Write(bufs [][]byte, offset int) (int, error)
	BatchSize() int
}

// ReadBatch holds the buffers for reading many packets at once.
type ReadBatch struct {
	bufs  [][]byte
	sizes []int
	n     int
}

// NewReadBatch allocates buffers for one batched read from dev.
func NewReadBatch(dev Packets, mtu int) *ReadBatch {
	n := dev.BatchSize()
	b := &ReadBatch{bufs: make([][]byte, n), sizes: make([]int, n)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, Offset+mtu+64)
	}
	return b
}

// Read reads one batch (GSO super-packets arrive split into MTU-sized packets).
func (b *ReadBatch) Read(dev Packets) (int, error) {
	n, err := dev.Read(b.bufs, b.sizes, Offset)
	b.n = n
	return n, err
}

// Packet returns the i-th packet of the last Read.
func (b *ReadBatch) Packet(i int) []byte {
	return b.bufs[i][Offset : Offset+b.sizes[i]]
}

// PacketWriter gathers packets and writes them in one go: a Writer, or a
// test's stand-in for one (the relays take their writer to the host as a
// PacketWriter).
type PacketWriter interface {
	Add(pkt []byte) error
	Flush() error
}

// Writer gathers packets and writes them to a TUN device in one call, which
// lets the device coalesce TCP segments (GRO) when offload is on. A Writer is
// used by one goroutine at a time.
type Writer struct {
	dev  Packets
	bufs [][]byte
	n    int
	// Errors counts failed writes; Packets counts packets handed to the device.
	Errors, Packets uint64
}

// NewWriter makes a writer holding up to batch packets.
func NewWriter(dev Packets, batch int) *Writer {
	if batch < 1 {
		batch = 1
	}
	return &Writer{dev: dev, bufs: make([][]byte, batch)}
}

// Add copies pkt into the batch, flushing first when it is full.
func (w *Writer) Add(pkt []byte) error {
	var err error
	if w.n == len(w.bufs) {
		err = w.Flush()
	}
	buf := w.bufs[w.n]
	if buf == nil {
		buf = make([]byte, 0, Offset+maxCoalesced)
	}
	buf = append(buf[:Offset], pkt...)
	w.bufs[w.n] = buf
	w.n++
	return err
}

// Pending is the number of packets not yet written.
func (w *Writer) Pending() int { return w.n }

// Flush writes the gathered packets.
func (w *Writer) Flush() error {
	if w.n == 0 {
		return nil
	}
	n := w.n
	w.n = 0
	w.Packets += uint64(n)
	_, err := w.dev.Write(w.bufs[:n], Offset)
	if err != nil {
		w.Errors++
	}
	return err
}
