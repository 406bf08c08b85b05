package packet

import (
	"net/netip"
	"testing"
)

func TestNonceEcho(t *testing.T) {
	src, dst := netip.MustParseAddr("2002:c000:202::c000:202"), netip.MustParseAddr("2002:c000:20a::c000:20a")
	nonce := [NonceLen]byte{1, 2, 3, 4, 5, 6, 7, 8}
	req := AppendNonceEcho([]byte{0xff}, src, dst, 64, nonce)[1:]
	if !WellFormed(req) || Src(req) != src || Dst(req) != dst || HopLimit(req) != 64 || !VerifyICMPv6Checksum(req) {
		t.Fatalf("request %x", req)
	}
	if typ, ok := ICMPv6Type(req); !ok || typ != TypeEchoRequest {
		t.Fatalf("request type %d", typ)
	}
	// The answer as a host sends it: addresses swapped, type 129, the
	// checksum recomputed.
	reply := append([]byte(nil), req...)
	copy(reply[8:24], req[24:40])
	copy(reply[24:40], req[8:24])
	reply[HeaderLen] = TypeEchoReply
	SetICMPv6Checksum(reply)
	if !IsNonceEchoReply(reply, nonce) {
		t.Fatal("the reply was not recognised")
	}
	if IsNonceEchoReply(req, nonce) {
		t.Fatal("the request taken for a reply")
	}
	other := nonce
	other[7]++
	if IsNonceEchoReply(reply, other) {
		t.Fatal("a reply to another nonce accepted")
	}
	bad := append([]byte(nil), reply...)
	bad[len(bad)-1] ^= 1
	if IsNonceEchoReply(bad, nonce) {
		t.Fatal("a reply with a bad checksum accepted")
	}
	if IsNonceEchoReply(append(append([]byte(nil), reply...), 0), nonce) {
		t.Fatal("a longer packet accepted")
	}
}
