package packet

// ICMPv6 message types handled on the IP-HTTPS link.
const (
	TypeEchoRequest           = 128
	TypeEchoReply             = 129
	TypeRouterSolicitation    = 133
	TypeRouterAdvertisement   = 134
	TypeNeighborSolicitation  = 135
	TypeNeighborAdvertisement = 136
	TypeRedirect              = 137
)

// icmpHeaderLen is the length of the ICMPv6 type, code and checksum.
const icmpHeaderLen = 4

// ICMPv6Type returns the ICMPv6 type of b. ok is true only when the ICMPv6
// header directly follows the fixed IPv6 header (no extension headers) and b
// is long enough to hold the ICMPv6 type, code and checksum.
func ICMPv6Type(b []byte) (typ uint8, ok bool) {
	if len(b) < HeaderLen+icmpHeaderLen || NextHeader(b) != ProtoICMPv6 {
		return 0, false
	}
	return b[HeaderLen], true
}

// IsND reports whether typ is one of the five Neighbor Discovery message
// types of RFC 4861 (133 to 137).
func IsND(typ uint8) bool {
	return typ >= TypeRouterSolicitation && typ <= TypeRedirect
}
