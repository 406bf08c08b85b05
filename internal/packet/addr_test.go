package packet

import (
	"net/netip"
	"testing"
)

func TestSolicitedNode(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"2001:db8::1234:5678", "ff02::1:ff34:5678"},
		{"fe80::aabb:ccdd:eeff:1", "ff02::1:ffff:1"},
		{"::", "ff02::1:ff00:0"},
		{"fe80::1%eth0", "ff02::1:ff00:1"},
	}
	for _, tt := range tests {
		got := SolicitedNode(mustAddr(tt.in))
		if got != mustAddr(tt.want) {
			t.Errorf("SolicitedNode(%s) = %v, want %s", tt.in, got, tt.want)
		}
		if !IsSolicitedNode(got) {
			t.Errorf("IsSolicitedNode(%v) = false", got)
		}
	}
	if got := SolicitedNode(mustAddr("192.0.2.1")); got.IsValid() {
		t.Errorf("SolicitedNode(IPv4) = %v, want the zero Addr", got)
	}
}

func TestIsSolicitedNode(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"ff02::1:ff00:1", true},
		{"ff02::1:ffff:ffff", true},
		{"ff02::1", false},
		{"ff02::2", false},
		{"ff02::1:fe00:1", false},
		{"ff05::1:ff00:1", false},
		{"ff02:0:0:0:1:1:ff00:1", false},
		{"2001:db8::1", false},
		{"192.0.2.1", false},
	}
	for _, tt := range tests {
		if got := IsSolicitedNode(mustAddr(tt.in)); got != tt.want {
			t.Errorf("IsSolicitedNode(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if IsSolicitedNode(netip.Addr{}) {
		t.Error("IsSolicitedNode(zero) = true")
	}
}

func TestWellKnownAddrs(t *testing.T) {
	if AllNodes() != mustAddr("ff02::1") {
		t.Errorf("AllNodes = %v", AllNodes())
	}
	if AllRouters() != mustAddr("ff02::2") {
		t.Errorf("AllRouters = %v", AllRouters())
	}
}
