package server

import (
	"testing"

	"github.com/iphttps/iphttps/internal/wire"
)

// The server's send queues must never write inline from the goroutine that
// queues a packet (the TUN reader serves every client): its writer hides
// batchio's TryWrite.
func TestBatchWriterIsNotATryWriter(t *testing.T) {
	if _, ok := any(batchWriter{}).(wire.TryWriter); ok {
		t.Fatal("batchWriter offers TryWrite: the TUN reader could write to a client's connection")
	}
}
