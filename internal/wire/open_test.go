package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	var sent bytes.Buffer
	in := "HTTP/1.1 200 OK\r\nServer: Microsoft-HTTPAPI/2.0\r\nDate: Mon, 07 Dec 2026 18:00:00 GMT\r\n\r\n\x60\x00"
	r := NewReader(strings.NewReader(in), MaxPacket)
	resp, err := Open(&sent, r, "/IPHTTPS", "da.example.com", 1024)
	if err != nil || resp.Status != 200 || resp.Get("Server") != "Microsoft-HTTPAPI/2.0" {
		t.Fatalf("Open = %+v, %v", resp, err)
	}
	want := "POST /IPHTTPS HTTP/1.1\r\nContent-Length: 18446744073709551615\r\nHost: da.example.com\r\n\r\n"
	if sent.String() != want {
		t.Errorf("sent %q, want %q", sent.String(), want)
	}
	if r.Buffered() != 2 {
		t.Errorf("%d bytes after the head left in the reader, want the 2 packet bytes", r.Buffered())
	}

	_, err = Open(failWriter{err: errors.New("broken pipe")}, NewReader(strings.NewReader(in), MaxPacket), "/IPHTTPS", "h", 1024)
	if !errors.Is(err, ErrRequest) || errors.Is(err, ErrResponse) || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("failed send: %v", err)
	}
	_, err = Open(&sent, NewReader(strings.NewReader("SSH-2.0-OpenSSH\r\n\r\n"), MaxPacket), "/IPHTTPS", "h", 1024)
	var he *HeadError
	if !errors.Is(err, ErrResponse) || !errors.As(err, &he) {
		t.Errorf("not HTTP: %v", err)
	}
}
