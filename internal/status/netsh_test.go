package status

import (
	"strings"
	"testing"
)

func TestWriteNetshLayout(t *testing.T) {
	var b strings.Builder
	err := WriteNetsh(&b, []Interface{{
		Role: "client", URL: "https://da.example.com:443/IPHTTPS", LastErrorCode: 0x2AF9,
		InterfaceStatus: "Failed to connect to the IPHTTPS server; waiting to reconnect",
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := "\nInterface IPHTTPSInterface (Local) Parameters\n" +
		strings.Repeat("-", 60) + "\n" +
		"Role                       : client\n" +
		"URL                        : https://da.example.com:443/IPHTTPS\n" +
		"Last Error Code            : 0x2af9\n" +
		"Interface Status           : Failed to connect to the IPHTTPS server; waiting to reconnect\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Fatalf("netsh layout differs:\n%q\nwant prefix\n%q", b.String(), want)
	}
}

func TestHolderCopies(t *testing.T) {
	var h Holder
	h.Update(func(s *Interface) { s.Addresses = []string{"a"}; s.Counters = map[string]uint64{"x": 1} })
	v := h.Get()
	v.Addresses[0] = "b"
	v.Counters["x"] = 2
	if g := h.Get(); g.Addresses[0] != "a" || g.Counters["x"] != 1 {
		t.Fatal("Get shares memory with the held value")
	}
}
