package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const fuzzMaxHead = 1024

// sameError reports whether two head-reading results failed the same way.
func sameError(a, b error) bool {
	var ha, hb *HeadError
	if errors.As(a, &ha) || errors.As(b, &hb) {
		return errors.As(a, &ha) && errors.As(b, &hb) && *ha == *hb
	}
	return (a == nil) == (b == nil) && errors.Is(a, io.EOF) == errors.Is(b, io.EOF) &&
		errors.Is(a, io.ErrUnexpectedEOF) == errors.Is(b, io.ErrUnexpectedEOF)
}

// checkConsumed checks that a head read from data by r took exactly the
// bytes up to and including the first CRLF CRLF, and no more than
// fuzzMaxHead: what follows the head (packets, after a 200) stays in r.
func checkConsumed(t *testing.T, data []byte, r *Reader) {
	t.Helper()
	consumed := len(data) - r.Buffered()
	i := bytes.Index(data, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatalf("a head was read (%d bytes consumed) from input with no CRLF CRLF", consumed)
	}
	if end := i + 4; consumed != end || consumed > fuzzMaxHead {
		t.Fatalf("consumed %d bytes, want the %d up to the first CRLF CRLF (at most %d)", consumed, end, fuzzMaxHead)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add(AppendRequest(nil, "/IPHTTPS", "da.example.com"))
	f.Add([]byte("POST /IPHTTPS HTTP/1.1\r\nHost: 192.0.2.1\r\nContent-Length: 18446744073709551615\r\n\r\n\x60\x00\x00\x00\x00\x00\x3b\x40"))
	f.Add([]byte("POST https://h/IPHTTPS?q HTTP/1.1\r\ncontent-length: 1\r\nContent-Length: 1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/2.0\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\nHost: h\n\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), MaxPacket)
		req, err := r.ReadRequest(fuzzMaxHead)
		// Delivering the same bytes one at a time must not change anything.
		r1 := NewReader(iotest.OneByteReader(bytes.NewReader(data)), MaxPacket)
		req1, err1 := r1.ReadRequest(fuzzMaxHead)
		if !sameError(err, err1) || !reflect.DeepEqual(req, req1) {
			t.Fatalf("whole: %+v, %v\none byte: %+v, %v", req, err, req1, err1)
		}
		var he *HeadError
		if errors.As(err, &he) && he.Status != 400 && he.Status != 505 {
			t.Fatalf("status %d", he.Status)
		}
		if err != nil {
			return
		}
		checkConsumed(t, data, r)
		if req.Path != "" && !strings.HasPrefix(req.Path, "/") || strings.ContainsAny(req.Path, "?#") {
			t.Fatalf("path %q", req.Path)
		}
		if len(req.Header) > MaxHeaderFields || req.Get("Transfer-Encoding") != "" {
			t.Fatalf("header %q", req.Header)
		}
		if req.HasContentLength != (req.Get("Content-Length") != "") {
			t.Fatalf("content length %+v", req)
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add(AppendResponse(nil, "Microsoft-HTTPAPI/2.0", testNow))
	f.Add(AppendError(nil, 405, "s", testNow))
	f.Add([]byte("HTTP/1.0 200 Connection established\r\n\r\n\x60"))
	f.Add([]byte("HTTP/1.1 200\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 099 x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), MaxPacket)
		resp, err := r.ReadResponse(fuzzMaxHead)
		r1 := NewReader(iotest.OneByteReader(bytes.NewReader(data)), MaxPacket)
		resp1, err1 := r1.ReadResponse(fuzzMaxHead)
		if !sameError(err, err1) || !reflect.DeepEqual(resp, resp1) {
			t.Fatalf("whole: %+v, %v\none byte: %+v, %v", resp, err, resp1, err1)
		}
		if err != nil {
			return
		}
		checkConsumed(t, data, r)
		if resp.Status < 100 || resp.Status > 999 || len(resp.Header) > MaxHeaderFields {
			t.Fatalf("response %+v", resp)
		}
	})
}

func FuzzDeframe(f *testing.F) {
	f.Add(concat([][]byte{makePacket(0, 1), makePacket(20, 2)}), uint8(3))
	f.Add(append(makePacket(8, 3), 0x45, 0, 0, 20), uint8(1))
	f.Add(makePacket(100, 4)[:77], uint8(0))
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 0, 0}, uint8(200))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		deframe := func(src io.Reader) ([][]byte, error) {
			r := NewReader(src, MaxPacket)
			var pkts [][]byte
			for {
				p, err := r.Next()
				if err != nil {
					return pkts, err
				}
				if p[0]>>4 != 6 || len(p) != HeaderLen+(int(p[4])<<8|int(p[5])) || CheckPacket(p) != nil {
					t.Fatalf("bad packet of %d bytes: % x", len(p), p[:min(len(p), 8)])
				}
				pkts = append(pkts, bytes.Clone(p))
			}
		}
		pkts, err := deframe(bytes.NewReader(data))
		// The packets are exactly a prefix of the input.
		if !bytes.HasPrefix(data, concat(pkts)) {
			t.Fatal("packets are not a prefix of the input")
		}
		rest := data[len(concat(pkts)):]
		switch {
		case err == io.EOF:
			if len(rest) != 0 {
				t.Fatalf("io.EOF with %d bytes left", len(rest))
			}
		case err == ErrNotIPv6, err == ErrJumbogram:
		case err == ErrTruncated:
			if len(rest) == 0 || len(rest) >= MaxPacket {
				t.Fatalf("ErrTruncated with %d bytes left", len(rest))
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		// Chunking must not change the result.
		pkts2, err2 := deframe(newChunkReader(data, uint64(chunk), int(chunk)+1))
		if err2 != err || !reflect.DeepEqual(pkts, pkts2) {
			t.Fatalf("chunked (%d): %d packets, %v; whole: %d packets, %v", chunk, len(pkts2), err2, len(pkts), err)
		}
	})
}
