package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"

	"github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// maxProxyV2Body bounds the addresses and TLVs a PROXY v2 header may carry.
const maxProxyV2Body = 4096

// v2Signature opens every PROXY protocol v2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyHeader reads one PROXY protocol header (v1 or v2) from c and
// returns the client's address from it. It reads exactly the header, so
// what follows (the TLS ClientHello) stays in the socket for the layers
// above, which read the socket directly. A LOCAL header (what a load
// balancer's health check may send) or one without addresses returns the
// peer's own address.
func readProxyHeader(c net.Conn) (netip.AddrPort, error) {
	peer := addrPortOf(c.RemoteAddr())
	head := make([]byte, 6, 16+64)
	if _, err := io.ReadFull(c, head); err != nil {
		return peer, fmt.Errorf("no PROXY protocol header: %w", err)
	}
	switch {
	case bytes.Equal(head, []byte("PROXY ")):
		// v1: text up to CRLF, 107 bytes at most.
		var b [1]byte
		for !bytes.HasSuffix(head, []byte("\r\n")) {
			if len(head) >= 107 {
				return peer, errors.New("PROXY v1 header longer than 107 bytes")
			}
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return peer, fmt.Errorf("truncated PROXY v1 header: %w", err)
			}
			head = append(head, b[0])
		}
	case bytes.Equal(head, v2Signature[:6]):
		head = head[:16]
		if _, err := io.ReadFull(c, head[6:]); err != nil {
			return peer, fmt.Errorf("truncated PROXY v2 header: %w", err)
		}
		if !bytes.Equal(head[:12], v2Signature) {
			return peer, errors.New("not a PROXY v2 signature")
		}
		n := int(binary.BigEndian.Uint16(head[14:16]))
		if n > maxProxyV2Body {
			return peer, fmt.Errorf("PROXY v2 header of %d bytes (at most %d accepted)", n, maxProxyV2Body)
		}
		head = append(head, make([]byte, n)...)
		if _, err := io.ReadFull(c, head[16:]); err != nil {
			return peer, fmt.Errorf("truncated PROXY v2 header: %w", err)
		}
	default:
		return peer, fmt.Errorf("no PROXY protocol header (the connection starts with %q)", head)
	}
	h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return peer, fmt.Errorf("bad PROXY protocol header: %w", err)
	}
	if h.Command.IsLocal() || h.SourceAddr == nil {
		return peer, nil
	}
	src := addrPortOf(h.SourceAddr)
	if !src.IsValid() {
		return peer, fmt.Errorf("PROXY header with an unusable source address %v", h.SourceAddr)
	}
	return src, nil
}

// addrPortOf returns a TCP address as an AddrPort (IPv4 unmapped); the zero
// AddrPort for other kinds.
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// trustedProxy reports whether peer may send a PROXY header: any peer when
// the list is empty.
func trustedProxy(peer netip.Addr, from []netip.Prefix) bool {
	if len(from) == 0 {
		return true
	}
	for _, p := range from {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// closedBeforeData waits (until c's read deadline) for the first byte after
// the PROXY header and reports whether the peer closed or reset the
// connection instead of sending one: what a load balancer's TCP health
// check does. The byte is only peeked at; it stays for the TLS layer.
func closedBeforeData(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	rerr := rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
		if err == unix.EAGAIN {
			return false // wait for data
		}
		closed = n == 0 || err != nil
		return true
	})
	return rerr == nil && closed
}
