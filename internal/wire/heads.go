package wire

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxContentLength is the Content-Length of an IP-HTTPS request: 2^64-1, an
// endless body.
const MaxContentLength = "18446744073709551615"

const (
	// DefaultMaxHead is the head size limit used when ReadRequest or
	// ReadResponse is given maxHead <= 0.
	DefaultMaxHead = 8 << 10
	// MaxHeaderFields is the largest number of header fields accepted in a
	// head.
	MaxHeaderFields = 64
)

// AppendRequest appends the IP-HTTPS request head, byte for byte what Windows
// sends, to dst:
//
//	POST <path> HTTP/1.1\r\nContent-Length: 18446744073709551615\r\nHost: <host>\r\n\r\n
//
// path and host are written as given; the caller must pass values without
// spaces or control characters.
func AppendRequest(dst []byte, path, host string) []byte {
	dst = append(dst, "POST "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nContent-Length: "+MaxContentLength+"\r\nHost: "...)
	dst = append(dst, host...)
	return append(dst, "\r\n\r\n"...)
}

// AppendResponse appends the head of the server's successful answer to dst:
//
//	HTTP/1.1 200 OK\r\nServer: <server>\r\nDate: <now in http.TimeFormat>\r\n\r\n
//
// It has no Content-Length and no Transfer-Encoding: the body is the packet
// stream, which ends when the connection closes.
func AppendResponse(dst []byte, server string, now time.Time) []byte {
	dst = append(dst, "HTTP/1.1 200 OK\r\n"...)
	dst = appendServerDate(dst, server, now)
	return append(dst, "\r\n"...)
}

// AppendError appends a complete error response (head and empty body) to
// dst, for example
//
//	HTTP/1.1 404 Not Found\r\nServer: ..\r\nDate: ..\r\nContent-Length: 0\r\nConnection: close\r\n\r\n
//
// A 405 answer also carries "Allow: POST". The reason phrase is
// http.StatusText(status) (empty for unknown codes).
func AppendError(dst []byte, status int, server string, now time.Time) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\n"...)
	dst = appendServerDate(dst, server, now)
	if status == http.StatusMethodNotAllowed {
		dst = append(dst, "Allow: POST\r\n"...)
	}
	return append(dst, "Content-Length: 0\r\nConnection: close\r\n\r\n"...)
}

func appendServerDate(dst []byte, server string, now time.Time) []byte {
	dst = append(dst, "Server: "...)
	dst = append(dst, server...)
	dst = append(dst, "\r\nDate: "...)
	dst = now.UTC().AppendFormat(dst, http.TimeFormat)
	return append(dst, "\r\n"...)
}

// HeaderField is one header line, as received (Name keeps its case).
type HeaderField struct {
	Name, Value string
}

// Request is a parsed request head.
type Request struct {
	Method string // as sent, case-sensitive ("POST")
	Target string // request-target as sent
	// Path is the path of Target, raw (not percent-decoded), without query:
	// "/IPHTTPS" for both "/IPHTTPS?x" and "https://host/IPHTTPS". It is
	// "/" for an absolute-form target without a path and "" for the
	// asterisk and authority forms ("*", "host:443").
	Path  string
	Proto string // "HTTP/1.1" or "HTTP/1.0"
	Host  string // value of the Host header, "" if absent
	// ContentLength is valid when HasContentLength is set; 2^64-1 is
	// accepted.
	ContentLength    uint64
	HasContentLength bool
	Header           []HeaderField // all header fields in order received
}

// Get returns the value of the first header field called name (compared
// case-insensitively), or "".
func (r *Request) Get(name string) string { return getField(r.Header, name) }

// Response is a parsed response head. Content-Length and Transfer-Encoding
// are not interpreted: for IP-HTTPS only a 200 answer matters, and the body
// of anything else is not read.
type Response struct {
	Proto  string // "HTTP/1.1" or "HTTP/1.0"
	Status int    // 100-999
	Reason string // may be empty
	Header []HeaderField
}

// Get returns the value of the first header field called name (compared
// case-insensitively), or "".
func (r *Response) Get(name string) string { return getField(r.Header, name) }

func getField(h []HeaderField, name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// HeadError is a malformed, oversized or unsupported HTTP head. Status is the
// status code a server should answer with (400, or 505 for an HTTP version
// other than 1.x); Reason says what is wrong.
type HeadError struct {
	Status int
	Reason string
}

func (e *HeadError) Error() string { return "wire: bad HTTP head: " + e.Reason }

func badHead(reason string) *HeadError {
	return &HeadError{Status: http.StatusBadRequest, Reason: reason}
}

// parseRequest parses a request head that ends with CRLF CRLF and contains no
// bare LF (readHead guarantees both).
func parseRequest(head []byte) (*Request, error) {
	s := string(head[:len(head)-4]) // one allocation; every field is a substring
	line, rest, _ := strings.Cut(s, "\r\n")

	method, after, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(after, " ")
	if !ok1 || !ok2 || !isToken(method) || target == "" || strings.Contains(proto, " ") {
		return nil, badHead("malformed request line")
	}
	for i := 0; i < len(target); i++ {
		if target[i] <= ' ' || target[i] >= 0x7f {
			return nil, badHead("invalid byte in request target")
		}
	}
	if err := checkProto(proto); err != nil {
		return nil, err
	}
	req := &Request{Method: method, Target: target, Path: targetPath(target), Proto: proto}

	hdr, err := parseFields(rest)
	if err != nil {
		return nil, err
	}
	req.Header = hdr
	hosts := 0
	for _, f := range hdr {
		switch {
		case strings.EqualFold(f.Name, "Content-Length"):
			n, ok := parseUint64(f.Value)
			if !ok {
				return nil, badHead("invalid Content-Length")
			}
			if req.HasContentLength && n != req.ContentLength {
				return nil, badHead("conflicting Content-Length")
			}
			req.ContentLength, req.HasContentLength = n, true
		case strings.EqualFold(f.Name, "Transfer-Encoding"):
			return nil, badHead("Transfer-Encoding not supported")
		case strings.EqualFold(f.Name, "Host"):
			if hosts++; hosts > 1 {
				return nil, badHead("more than one Host")
			}
			req.Host = f.Value
		}
	}
	return req, nil
}

// parseResponse parses a response head; same preconditions as parseRequest.
func parseResponse(head []byte) (*Response, error) {
	s := string(head[:len(head)-4])
	line, rest, _ := strings.Cut(s, "\r\n")

	proto, after, ok := strings.Cut(line, " ")
	if !ok {
		return nil, badHead("malformed status line")
	}
	if err := checkProto(proto); err != nil {
		return nil, err
	}
	code, reason, _ := strings.Cut(after, " ") // the SP before an empty reason is optional
	if len(code) != 3 || code[0] < '1' || code[0] > '9' {
		return nil, badHead("invalid status code")
	}
	status, err := strconv.Atoi(code)
	if err != nil || status < 100 {
		return nil, badHead("invalid status code")
	}
	for i := 0; i < len(reason); i++ {
		if !isFieldByte(reason[i]) {
			return nil, badHead("invalid byte in reason phrase")
		}
	}
	hdr, err := parseFields(rest)
	if err != nil {
		return nil, err
	}
	return &Response{Proto: proto, Status: status, Reason: reason, Header: hdr}, nil
}

// checkProto accepts HTTP/1.x. A well-formed other version gets 505.
func checkProto(p string) error {
	if len(p) != 8 || p[:5] != "HTTP/" || !isDigit(p[5]) || p[6] != '.' || !isDigit(p[7]) {
		return badHead("malformed HTTP version")
	}
	if p[5] != '1' {
		return &HeadError{Status: http.StatusHTTPVersionNotSupported, Reason: "unsupported HTTP version " + p}
	}
	return nil
}

// parseFields parses CRLF-separated header lines (without the final blank
// line).
func parseFields(s string) ([]HeaderField, error) {
	if s == "" {
		return nil, nil
	}
	fields := make([]HeaderField, 0, min(strings.Count(s, "\r\n")+1, MaxHeaderFields))
	for s != "" {
		var line string
		line, s, _ = strings.Cut(s, "\r\n")
		if len(fields) == MaxHeaderFields {
			return nil, badHead("too many header fields")
		}
		if line == "" {
			// Only possible if the head contained CRLF CRLF earlier,
			// which readHead excludes; be safe anyway.
			return nil, badHead("empty header line")
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, badHead("obsolete line folding")
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, badHead("header line without colon")
		}
		if !isToken(name) {
			return nil, badHead("invalid header name")
		}
		value = strings.Trim(value, " \t")
		for i := 0; i < len(value); i++ {
			if !isFieldByte(value[i]) {
				return nil, badHead("invalid byte in header value")
			}
		}
		fields = append(fields, HeaderField{Name: name, Value: value})
	}
	return fields, nil
}

// targetPath returns the path of a request target (see Request.Path).
func targetPath(t string) string {
	if t[0] != '/' {
		rest, ok := cutPrefixFold(t, "https://")
		if !ok {
			rest, ok = cutPrefixFold(t, "http://")
		}
		if !ok {
			return "" // asterisk-form or authority-form
		}
		i := strings.IndexAny(rest, "/?#")
		if i < 0 || rest[i] != '/' {
			return "/"
		}
		t = rest[i:]
	}
	if i := strings.IndexAny(t, "?#"); i >= 0 {
		t = t[:i]
	}
	return t
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// parseUint64 parses a non-empty string of decimal digits that fits in 64
// bits. Signs, spaces and lists are rejected.
func parseUint64(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c):
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isFieldByte reports whether c may appear in a field value or reason
// phrase: visible ASCII, SP, HTAB and obs-text; not controls or DEL.
func isFieldByte(c byte) bool {
	return c == '\t' || (c >= ' ' && c != 0x7f)
}

// Errors of Open, telling its two phases apart (errors.Is).
var (
	ErrRequest  = errors.New("send the IP-HTTPS request")
	ErrResponse = errors.New("read the IP-HTTPS response")
)

// Open runs the client's side of the IP-HTTPS exchange ([MS-IPHTTPS]
// 3.1.5.1): the POST for path and host written to w, then the server's
// response head read from r, which then holds any packet bytes that
// followed it. Every client of the protocol (iphttps client, diagnose, the
// load generator) opens its connection through this one function; each
// judges the answer itself. A failure wraps ErrRequest or ErrResponse and
// the cause.
func Open(w io.Writer, r *Reader, path, host string, maxHead int) (*Response, error) {
	if _, err := w.Write(AppendRequest(nil, path, host)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRequest, err)
	}
	resp, err := r.ReadResponse(maxHead)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrResponse, err)
	}
	return resp, nil
}
