// Package packet reads and builds raw IPv6 packets for the IP-HTTPS link.
//
// The accessors (Version, PayloadLen, Src, Dst, ...) work directly on a
// packet's bytes and never allocate; they are meant for the per-packet hot
// path of the router. The caller guarantees len(b) >= HeaderLen.
//
// Neighbor Discovery (RFC 4861) messages are encoded and decoded with
// github.com/mdlayher/ndp: BuildICMPv6 wraps an ndp.Message in an IPv6
// header with a correct ICMPv6 checksum, and ParseND applies the RFC 4861
// validity checks that need the IPv6 header (hop limit, checksum, source
// and destination rules) before handing the message to ndp.
package packet
