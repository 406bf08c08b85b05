package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	counters := map[string]uint64{
		"sessions_active":               3,
		"sessions_total":                10,
		"bytes_from_clients":            12345,
		"drop_spoofed_source":           7,
		"drop_queue_full":               2,
		"handshake_failures":            5,
		"handshake_failures_0x800b0109": 4,
		"handshake_failures_0x274c":     1,
		"refused_source_limit":          9,
		"http_404":                      1,
	}
	srv := httptest.NewServer(Handler("iphttps_server", func() map[string]uint64 { return counters }))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out := string(b)
	for _, want := range []string{
		"# TYPE iphttps_server_sessions_active gauge",
		"iphttps_server_sessions_active 3",
		"iphttps_server_sessions_total 10",
		"iphttps_server_bytes_from_clients_total 12345",
		`iphttps_server_drops_total{reason="spoofed_source"} 7`,
		`iphttps_server_drops_total{reason="queue_full"} 2`,
		`iphttps_server_handshake_failures_total{code="0x800b0109"} 4`,
		`iphttps_server_handshake_failures_total{code="0x274c"} 1`,
		`iphttps_server_connections_refused_total{reason="source_limit"} 9`,
		`iphttps_server_http_responses_total{status="404"} 1`,
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" ") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "iphttps_server_handshake_failures_total 5") {
		t.Error("the unlabelled handshake total is exported next to the labelled family")
	}
}
