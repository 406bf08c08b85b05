package udpbatch

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// segmentSize writes into b (reused when large enough) the control message
// that makes the kernel cut a send into datagrams of size bytes.
func segmentSize(b []byte, size int) []byte {
	n := unix.CmsgSpace(2)
	if cap(b) < n {
		b = make([]byte, n)
	}
	b = b[:n]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b
}

// groSize finds, in the control messages oob of a received message, the
// size of the datagrams the kernel coalesced into it (UDP_GRO); 0 when the
// message is one datagram. It reads the headers in place (no allocation,
// unlike unix.ParseSocketControlMessage).
func groSize(oob []byte) int {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(binary.NativeEndian.Uint32(oob[hdr:]))
		}
		next := unix.CmsgSpace(l - hdr)
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}
