package iphttps

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/iphttps/iphttps/internal/batchio"
	"github.com/iphttps/iphttps/internal/winerr"
	"github.com/iphttps/iphttps/internal/wire"
)

const (
	// ReaderSize is the buffer of the client's packet reader.
	ReaderSize = 128 << 10
	maxHead    = 8 << 10 // the longest answer head accepted
)

// Open is the third phase: the IP-HTTPS request on conn (a *Conn, or a
// plain connection for http URLs) and the server's answer, which must be
// 200 ([MS-IPHTTPS] 3.1.5.1, wire.Open). It returns the packet reader, with
// a buffer of readerSize bytes (0: wire's default), which holds any packet
// bytes that came with the answer. ctx bounds the exchange.
func Open(ctx context.Context, conn net.Conn, t Target, readerSize int, tr *Trace) (*wire.Reader, error) {
	tr = tr.hooks()
	defer bound(ctx, conn)()
	r := wire.NewReader(packetReader(conn), readerSize)
	resp, err := wire.Open(requestWriter{conn, tr.WroteRequest}, r, t.Path, t.HostHeader, maxHead)
	if errors.Is(err, wire.ErrRequest) {
		if h := tr.WroteRequest; h != nil {
			h(err)
		}
	} else if h := tr.GotResponse; h != nil {
		h(resp, err)
	}
	if err != nil {
		if tc, ok := conn.(*Conn); ok {
			return nil, tc.explain(err)
		}
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, winerr.Errorf(winerr.NoData,
			"the server answered %d %s to POST %s: the URL is not an IP-HTTPS endpoint there (wrong path, or IP-HTTPS disabled on the server)",
			resp.Status, resp.Reason, t.Path)
	}
	return r, nil
}

// requestWriter tells the trace as soon as the request is written.
type requestWriter struct {
	net.Conn
	wrote func(error)
}

func (w requestWriter) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if err == nil && w.wrote != nil {
		w.wrote(nil) // a failure is told with wire.Open's error
	}
	return n, err
}

// bound makes conn's I/O end with ctx (at its deadline, or when it is
// cancelled) until the returned function clears the deadline.
func bound(ctx context.Context, conn net.Conn) func() {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	return func() {
		stop()
		conn.SetDeadline(time.Time{})
	}
}

// packetReader reads the server's stream; under TLS it can read without
// waiting (Reader.TryFill).
func packetReader(conn net.Conn) io.Reader {
	if tc, ok := conn.(*Conn); ok {
		return batchio.Stream{Upper: tc.Conn, Lower: tc.cork}
	}
	return conn
}

// PacketWriter is where a connection's send queue (wire.Outbox) writes its
// batches: under TLS the batch's records leave together through the corked
// connection; a write the server does not take within 30 s fails.
func PacketWriter(conn net.Conn) io.Writer {
	w := wire.WithWriteDeadline(conn, writeTimeout)
	if tc, ok := conn.(*Conn); ok {
		return batchio.Writer{Upper: w, Lower: tc.cork}
	}
	return w
}
