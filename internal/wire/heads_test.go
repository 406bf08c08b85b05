package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2008, 8, 10, 3, 51, 52, 0, time.UTC)

func TestAppendRequest(t *testing.T) {
	got := string(AppendRequest([]byte("x"), "/IPHTTPS", "da.example.com"))
	want := "xPOST /IPHTTPS HTTP/1.1\r\nContent-Length: 18446744073709551615\r\nHost: da.example.com\r\n\r\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestAppendResponse(t *testing.T) {
	// A non-UTC time must be written in GMT.
	now := testNow.In(time.FixedZone("CEST", 2*3600))
	got := string(AppendResponse(nil, "Microsoft-HTTPAPI/2.0", now))
	want := "HTTP/1.1 200 OK\r\nServer: Microsoft-HTTPAPI/2.0\r\nDate: Sun, 10 Aug 2008 03:51:52 GMT\r\n\r\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestAppendError(t *testing.T) {
	const date = "Date: Sun, 10 Aug 2008 03:51:52 GMT\r\n"
	tests := []struct {
		status int
		want   string
	}{
		{404, "HTTP/1.1 404 Not Found\r\nServer: s\r\n" + date + "Content-Length: 0\r\nConnection: close\r\n\r\n"},
		{405, "HTTP/1.1 405 Method Not Allowed\r\nServer: s\r\n" + date + "Allow: POST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{400, "HTTP/1.1 400 Bad Request\r\nServer: s\r\n" + date + "Content-Length: 0\r\nConnection: close\r\n\r\n"},
		{505, "HTTP/1.1 505 HTTP Version Not Supported\r\nServer: s\r\n" + date + "Content-Length: 0\r\nConnection: close\r\n\r\n"},
		{599, "HTTP/1.1 599 \r\nServer: s\r\n" + date + "Content-Length: 0\r\nConnection: close\r\n\r\n"},
	}
	for _, tt := range tests {
		if got := string(AppendError(nil, tt.status, "s", testNow)); got != tt.want {
			t.Errorf("%d: got %q\nwant %q", tt.status, got, tt.want)
		}
	}
}

// readRequest parses head through a Reader, the way the server does.
func readRequest(head string) (*Request, error) {
	return NewReader(strings.NewReader(head), 0).ReadRequest(0)
}

func TestReadRequestValid(t *testing.T) {
	const cl = "Content-Length: 18446744073709551615\r\n"
	tests := []struct {
		name, head                    string
		method, target, path, host, p string
		cl                            uint64
		hasCL                         bool
		nhdr                          int
	}{
		{"windows", "POST /IPHTTPS HTTP/1.1\r\n" + cl + "Host: da.example.com\r\n\r\n",
			"POST", "/IPHTTPS", "/IPHTTPS", "da.example.com", "HTTP/1.1", 1<<64 - 1, true, 2},
		{"nmap order", "POST /IPHTTPS HTTP/1.1\r\nHost: 192.0.2.1\r\n" + cl + "\r\n",
			"POST", "/IPHTTPS", "/IPHTTPS", "192.0.2.1", "HTTP/1.1", 1<<64 - 1, true, 2},
		{"case and spaces", "POST /iphttps HTTP/1.1\r\nhOsT:da.example.com:443 \r\ncontent-length:\t 18446744073709551615\t\r\n\r\n",
			"POST", "/iphttps", "/iphttps", "da.example.com:443", "HTTP/1.1", 1<<64 - 1, true, 2},
		{"extra headers", "POST /IPHTTPS HTTP/1.1\r\nUser-Agent: x\r\n" + cl + "Cache-Control: no-cache\r\nHost: h\r\nX-Empty:\r\nContent-Type: application/octet-stream\r\n\r\n",
			"POST", "/IPHTTPS", "/IPHTTPS", "h", "HTTP/1.1", 1<<64 - 1, true, 6},
		{"same CL twice", "POST /IPHTTPS HTTP/1.1\r\n" + cl + cl + "Host: h\r\n\r\n",
			"POST", "/IPHTTPS", "/IPHTTPS", "h", "HTTP/1.1", 1<<64 - 1, true, 3},
		{"absolute https", "POST https://da.example.com/IPHTTPS HTTP/1.1\r\nHost: da.example.com\r\n\r\n",
			"POST", "https://da.example.com/IPHTTPS", "/IPHTTPS", "da.example.com", "HTTP/1.1", 0, false, 1},
		{"absolute HTTP with port and query", "POST HTTP://h:8080/IPHTTPS?a=b HTTP/1.1\r\n\r\n",
			"POST", "HTTP://h:8080/IPHTTPS?a=b", "/IPHTTPS", "", "HTTP/1.1", 0, false, 0},
		{"absolute no path", "POST https://h?x HTTP/1.1\r\n\r\n",
			"POST", "https://h?x", "/", "", "HTTP/1.1", 0, false, 0},
		{"query", "POST /IPHTTPS?x=1 HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
			"POST", "/IPHTTPS?x=1", "/IPHTTPS", "", "HTTP/1.0", 0, true, 1},
		{"GET parses", "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
			"GET", "/", "/", "h", "HTTP/1.1", 0, false, 1},
		{"asterisk", "OPTIONS * HTTP/1.1\r\n\r\n",
			"OPTIONS", "*", "", "", "HTTP/1.1", 0, false, 0},
		{"authority", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
			"CONNECT", "h:443", "", "h:443", "HTTP/1.1", 0, false, 1},
		{"obs-text value", "POST /IPHTTPS HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",
			"POST", "/IPHTTPS", "/IPHTTPS", "", "HTTP/1.1", 0, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := readRequest(tt.head)
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != tt.method || req.Target != tt.target || req.Path != tt.path ||
				req.Host != tt.host || req.Proto != tt.p || req.ContentLength != tt.cl ||
				req.HasContentLength != tt.hasCL || len(req.Header) != tt.nhdr {
				t.Errorf("got %+v", req)
			}
		})
	}
}

func TestRequestGet(t *testing.T) {
	req, err := readRequest("POST /IPHTTPS HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nHOST: h\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Get("x-A"); got != "1" {
		t.Errorf("Get(x-A) = %q", got)
	}
	if got := req.Get("host"); got != "h" {
		t.Errorf("Get(host) = %q", got)
	}
	if got := req.Get("missing"); got != "" {
		t.Errorf("Get(missing) = %q", got)
	}
	want := []HeaderField{{"X-A", "1"}, {"x-a", "2"}, {"HOST", "h"}}
	if !reflect.DeepEqual(req.Header, want) {
		t.Errorf("Header = %q", req.Header)
	}
}

func TestReadRequestMalformed(t *testing.T) {
	const rl = "POST /IPHTTPS HTTP/1.1\r\n"
	many := rl
	for range MaxHeaderFields + 1 {
		many += "X: y\r\n"
	}
	tests := []struct {
		name, head string
		status     int
	}{
		{"empty line", "\r\n\r\n", 400},
		{"leading CRLF", "\r\n" + rl + "\r\n", 400},
		{"two fields", "POST /IPHTTPS\r\n\r\n", 400},
		{"four fields", "POST /IPHTTPS HTTP/1.1 x\r\n\r\n", 400},
		{"double space", "POST  /IPHTTPS HTTP/1.1\r\n\r\n", 400},
		{"trailing space", "POST /IPHTTPS HTTP/1.1 \r\n\r\n", 400},
		{"bad method", "PO(ST /IPHTTPS HTTP/1.1\r\n\r\n", 400},
		{"empty method", " /IPHTTPS HTTP/1.1\r\n\r\n", 400},
		{"control in target", "POST /IP\x01HTTPS HTTP/1.1\r\n\r\n", 400},
		{"high byte in target", "POST /IP\xffHTTPS HTTP/1.1\r\n\r\n", 400},
		{"lowercase http", "POST /IPHTTPS http/1.1\r\n\r\n", 400},
		{"no minor", "POST /IPHTTPS HTTP/1\r\n\r\n", 400},
		{"HTTP/2.0", "POST /IPHTTPS HTTP/2.0\r\n\r\n", 505},
		{"HTTP/0.9", "POST /IPHTTPS HTTP/0.9\r\n\r\n", 505},
		{"no colon", rl + "Host h\r\n\r\n", 400},
		{"empty name", rl + ": v\r\n\r\n", 400},
		{"space in name", rl + "Content Length: 1\r\n\r\n", 400},
		{"space before colon", rl + "Host : h\r\n\r\n", 400},
		{"control in name", rl + "Ho\x7fst: h\r\n\r\n", 400},
		{"obs-fold space", rl + "X: a\r\n b\r\n\r\n", 400},
		{"obs-fold tab", rl + "X: a\r\n\tb\r\n\r\n", 400},
		{"NUL in value", rl + "X: a\x00b\r\n\r\n", 400},
		{"CR in value", rl + "X: a\rb\r\n\r\n", 400},
		{"DEL in value", rl + "X: a\x7f\r\n\r\n", 400},
		{"CL too big", rl + "Content-Length: 18446744073709551616\r\n\r\n", 400},
		{"CL way too big", rl + "Content-Length: 99999999999999999999999\r\n\r\n", 400},
		{"CL plus", rl + "Content-Length: +1\r\n\r\n", 400},
		{"CL minus", rl + "Content-Length: -1\r\n\r\n", 400},
		{"CL empty", rl + "Content-Length:\r\n\r\n", 400},
		{"CL hex", rl + "Content-Length: 0x10\r\n\r\n", 400},
		{"CL list", rl + "Content-Length: 5, 5\r\n\r\n", 400},
		{"CL inner space", rl + "Content-Length: 1 2\r\n\r\n", 400},
		{"CL conflicting", rl + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"chunked", rl + "Transfer-Encoding: chunked\r\n\r\n", 400},
		{"identity TE", rl + "transfer-encoding: identity\r\n\r\n", 400},
		{"two hosts", rl + "Host: a\r\nHost: b\r\n\r\n", 400},
		{"too many fields", many + "\r\n", 400},
		{"bare LF", "POST /IPHTTPS HTTP/1.1\nHost: h\n\n", 400},
		{"bare LF end", rl + "Host: h\r\n\n", 400},
		{"bare CR", rl + "Host: h\r\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := readRequest(tt.head)
			var he *HeadError
			if !errors.As(err, &he) {
				t.Fatalf("got %+v, %v; want *HeadError", req, err)
			}
			if he.Status != tt.status {
				t.Errorf("status %d, want %d (%v)", he.Status, tt.status, err)
			}
			if !strings.HasPrefix(err.Error(), "wire: bad HTTP head: ") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

func TestReadRequestMaxFields(t *testing.T) {
	head := "POST /IPHTTPS HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", MaxHeaderFields) + "\r\n"
	req, err := NewReader(strings.NewReader(head), 0).ReadRequest(len(head))
	if err != nil || len(req.Header) != MaxHeaderFields {
		t.Fatalf("%d fields: %v", MaxHeaderFields, err)
	}
}

func TestReadRequestSizeAndEOF(t *testing.T) {
	head := "POST /IPHTTPS HTTP/1.1\r\nHost: h\r\n\r\n"
	// A head of exactly maxHead bytes is fine; one byte less is too large.
	if _, err := NewReader(strings.NewReader(head), 0).ReadRequest(len(head)); err != nil {
		t.Fatal(err)
	}
	_, err := NewReader(strings.NewReader(head), 0).ReadRequest(len(head) - 1)
	var he *HeadError
	if !errors.As(err, &he) || he.Status != 400 || he.Reason != "head too large" {
		t.Fatalf("got %v, want head too large", err)
	}
	// An endless head without CRLF CRLF stops at the limit.
	_, err = NewReader(io.MultiReader(strings.NewReader("POST / HTTP/1.1\r\n"), endless('a')), 0).ReadRequest(0)
	if !errors.As(err, &he) || he.Reason != "head too large" {
		t.Fatalf("endless head: got %v", err)
	}
	// maxHead larger than the buffer is capped to the buffer.
	_, err = NewReader(endless('a'), MaxPacket).ReadRequest(1 << 30)
	if !errors.As(err, &he) || he.Reason != "head too large" {
		t.Fatalf("huge maxHead: got %v", err)
	}

	if _, err := readRequest(""); err != io.EOF {
		t.Errorf("empty stream: got %v, want io.EOF", err)
	}
	for i := 1; i < len(head); i++ {
		_, err := readRequest(head[:i])
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: got %v, want io.ErrUnexpectedEOF", i, err)
		}
	}
	boom := errors.New("boom")
	_, err = NewReader(io.MultiReader(strings.NewReader("POST"), iotestErrReader(boom)), 0).ReadRequest(0)
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want wrapped boom", err)
	}
}

type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func iotestErrReader(err error) io.Reader { return errReader{err} }

func TestReadResponse(t *testing.T) {
	valid := []struct {
		head   string
		status int
		reason string
		server string
	}{
		{string(AppendResponse(nil, "Microsoft-HTTPAPI/2.0", testNow)), 200, "OK", "Microsoft-HTTPAPI/2.0"},
		{"HTTP/1.0 200 Connection established\r\n\r\n", 200, "Connection established", ""},
		{"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nTransfer-Encoding: chunked\r\n\r\n", 407, "Proxy Authentication Required", ""},
		{"HTTP/1.1 200 \r\nserver: x\r\n\r\n", 200, "", "x"},
		{"HTTP/1.1 200\r\n\r\n", 200, "", ""},
		{"HTTP/1.1 999 weird  reason\t\r\n\r\n", 999, "weird  reason\t", ""},
		{string(AppendError(nil, 405, "s", testNow)), 405, "Method Not Allowed", "s"},
	}
	for _, tt := range valid {
		resp, err := NewReader(strings.NewReader(tt.head), 0).ReadResponse(0)
		if err != nil {
			t.Errorf("%q: %v", tt.head, err)
			continue
		}
		if resp.Status != tt.status || resp.Reason != tt.reason || resp.Get("Server") != tt.server {
			t.Errorf("%q: got %+v", tt.head, resp)
		}
	}
	invalid := []struct {
		head   string
		status int
	}{
		{"HTTP/1.1\r\n\r\n", 400},
		{"HTTP/1.1 20 OK\r\n\r\n", 400},
		{"HTTP/1.1 2000 OK\r\n\r\n", 400},
		{"HTTP/1.1 099 OK\r\n\r\n", 400},
		{"HTTP/1.1 +20 OK\r\n\r\n", 400},
		{"HTTP/1.1 2x0 OK\r\n\r\n", 400},
		{"HTTP/1.1  200 OK\r\n\r\n", 400},
		{"HTTP/2 200 OK\r\n\r\n", 400},
		{"HTTP/2.0 200 OK\r\n\r\n", 505},
		{"ICY 200 OK\r\n\r\n", 400},
		{"HTTP/1.1 200 O\x00K\r\n\r\n", 400},
		{"HTTP/1.1 200 OK\r\nServer x\r\n\r\n", 400},
		{"HTTP/1.1 200 OK\r\n folded\r\n\r\n", 400},
		{"HTTP/1.1 200 OK\nServer: x\n\n", 400},
	}
	for _, tt := range invalid {
		_, err := NewReader(strings.NewReader(tt.head), 0).ReadResponse(0)
		var he *HeadError
		if !errors.As(err, &he) || he.Status != tt.status {
			t.Errorf("%q: got %v, want HeadError %d", tt.head, err, tt.status)
		}
	}
}

// TestHeadRoundTrip parses what the Append functions write.
func TestHeadRoundTrip(t *testing.T) {
	req, err := readRequest(string(AppendRequest(nil, "/IPHTTPS", "h.example")))
	if err != nil || req.Method != "POST" || req.Path != "/IPHTTPS" || req.Host != "h.example" ||
		!req.HasContentLength || req.ContentLength != 1<<64-1 {
		t.Fatalf("request: %+v, %v", req, err)
	}
	head := AppendResponse(nil, "iphttps", testNow)
	resp, err := NewReader(bytes.NewReader(head), 0).ReadResponse(0)
	if err != nil || resp.Status != 200 || resp.Get("date") != "Sun, 10 Aug 2008 03:51:52 GMT" {
		t.Fatalf("response: %+v, %v", resp, err)
	}
}
