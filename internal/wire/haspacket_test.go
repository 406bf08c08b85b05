package wire

import (
	"bytes"
	"testing"
	"testing/iotest"
)

func TestHasPacket(t *testing.T) {
	pkt := make([]byte, 60)
	pkt[0], pkt[5] = 0x60, 20
	two := append(append([]byte(nil), pkt...), pkt...)
	r := NewReader(bytes.NewReader(two), 0)
	if r.HasPacket() {
		t.Fatal("HasPacket before any read")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if !r.HasPacket() {
		t.Fatal("the second packet arrived in the same read but HasPacket is false")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.HasPacket() {
		t.Fatal("HasPacket with an empty buffer")
	}

	// One byte per read: the rest of a packet is never buffered ahead.
	r = NewReader(iotest.OneByteReader(bytes.NewReader(two)), 0)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.HasPacket() {
		t.Fatal("HasPacket true with no byte of the next packet buffered")
	}

	// A framing error is reported without blocking.
	r = NewReader(bytes.NewReader(append(append([]byte(nil), pkt...), 0x45, 0, 0)), 0)
	r.Next()
	if !r.HasPacket() {
		t.Fatal("a buffered non-IPv6 byte must make HasPacket true (Next fails at once)")
	}
}
