package iperf

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	b, err := os.ReadFile("testdata/fwd1.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Streams != 1 || r.Reverse || r.Mbps < 1000 || r.Bytes == 0 || r.Retransmits == nil {
		t.Fatalf("forward result %+v", r)
	}

	b, err = os.ReadFile("testdata/rev4.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err = Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Streams != 4 || !r.Reverse || r.Retransmits == nil || *r.Retransmits != 12 {
		t.Fatalf("reverse result %+v", r)
	}
	if int(r.Mbps) != 19218 {
		t.Fatalf("reverse goodput %v Mbit/s, want the receiver's 19218", r.Mbps)
	}

	b, err = os.ReadFile("testdata/err.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("error report: %v", err)
	}
	if _, err := Parse([]byte(`{"end":{}}`)); err == nil {
		t.Fatal("report without totals accepted")
	}
	if _, err := Parse([]byte(`iperf3: error`)); err == nil {
		t.Fatal("non-JSON accepted")
	}
}

func TestClientArgs(t *testing.T) {
	got := ClientArgs("2001:db8::1", 2500*time.Millisecond, 4, true)
	want := []string{"iperf3", "--client", "2001:db8::1", "--port", "5201", "--time", "3", "--parallel", "4", "--connect-timeout", "3000", "--json", "--reverse"}
	if !slices.Equal(got, want) {
		t.Fatalf("args %q", got)
	}
}

func TestParsePing(t *testing.T) {
	b, err := os.ReadFile("testdata/ping-ok.txt")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePing(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if p != (Ping{Sent: 3, Received: 3, MinMs: 0.022, AvgMs: 0.025, MaxMs: 0.027, MdevMs: 0.002}) {
		t.Fatalf("ping %+v", p)
	}
	if s := p.String(); s != "0.025/0.027 ms" {
		t.Fatalf("String %q", s)
	}

	lossy := "--- x ping statistics ---\n20 packets transmitted, 18 received, 10% packet loss, time 3810ms\nrtt min/avg/max/mdev = 1.000/2.500/9.000/0.500 ms\n"
	p, err = ParsePing(lossy)
	if err != nil || p.Received != 18 || p.LossPct != 10 || p.AvgMs != 2.5 {
		t.Fatalf("lossy %+v %v", p, err)
	}
	if s := p.String(); s != "2.500/9.000 ms (10% loss)" {
		t.Fatalf("String %q", s)
	}

	none := "--- x ping statistics ---\n5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 4005ms\n\n"
	p, err = ParsePing(none)
	if err != nil || p.Sent != 5 || p.Received != 0 || p.LossPct != 100 {
		t.Fatalf("no reply %+v %v", p, err)
	}
	if _, err := ParsePing("ping: connect: Network is unreachable\n"); err == nil {
		t.Fatal("output without summary accepted")
	}
}

func TestPingArgs(t *testing.T) {
	got := PingArgs("2001:db8::1", 20, 200*time.Millisecond)
	want := []string{"ping", "-n", "-q", "-c", "20", "-i", "0.2", "-W", "2", "-w", "9", "2001:db8::1"}
	if !slices.Equal(got, want) {
		t.Fatalf("args %q", got)
	}
}
