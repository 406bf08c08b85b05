// Package metrics serves a daemon's counters to Prometheus, on a listener of
// its own (never the tunnel's port). The counters are the ones `iphttps show
// statistics` prints, read at each scrape, so the two never disagree.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Counters returns the current value of every counter by name, as the
// status counters map holds them.
type Counters func() map[string]uint64

// family says how a counter name becomes a metric: its prefix, the metric
// name (after the namespace) and the label the rest of the name goes into.
type family struct {
	prefix, name, label, help string
}

// families map names with a variable part to one metric with a label.
var families = []family{
	{"drop_", "drops_total", "reason", "Packets dropped, by reason."},
	{"handshake_failures_0x", "handshake_failures_total", "code", "Failed TLS handshakes and IP-HTTPS requests, by the Windows error code."},
	{"refused_", "connections_refused_total", "reason", "Connections or sessions refused by a limit, by reason."},
	{"http_", "http_responses_total", "status", "HTTP error responses sent, by status."},
}

// gauges are the counters that go down as well as up.
var gauges = map[string]string{
	"sessions_active":     "Sessions (clients) connected now.",
	"connections_pending": "Connections in their TLS handshake or HTTP request now.",
	"client_sources":      "Distinct client addresses holding a session or a pending connection.",
}

// skipped are totals the labelled families above already give.
var skipped = map[string]bool{"handshake_failures": true}

type collector struct {
	ns       string
	counters Counters
}

func (c collector) Describe(chan<- *prometheus.Desc) {} // unchecked: the label values vary

// A counter named "TRANSPORT/NAME" (e.g. "teredo/drop_loop") belongs to
// another transport than the daemon's own: it becomes the metric of NAME
// with the constant label transport="TRANSPORT", under the transport's own
// namespace (iphttps_server_teredo_...), so it never collides with the
// IP-HTTPS metric of the same name.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	for name, v := range c.counters() {
		ns, labels := c.ns, prometheus.Labels(nil)
		if transport, rest, ok := strings.Cut(name, "/"); ok {
			ns, name, labels = c.ns+"_"+transport, rest, prometheus.Labels{"transport": transport}
		}
		if skipped[name] {
			continue
		}
		if help, ok := gauges[name]; ok {
			d := prometheus.NewDesc(ns+"_"+name, help, nil, labels)
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
			continue
		}
		if f, rest, ok := familyOf(name); ok {
			value := rest
			if f.label == "code" {
				value = "0x" + rest
			}
			d := prometheus.NewDesc(ns+"_"+f.name, f.help, []string{f.label}, labels)
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), value)
			continue
		}
		d := prometheus.NewDesc(ns+"_"+strings.TrimSuffix(name, "_total")+"_total", "Counter "+name+" of `iphttps show statistics`.", nil, labels)
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
}

func familyOf(name string) (family, string, bool) {
	for _, f := range families {
		if rest, ok := strings.CutPrefix(name, f.prefix); ok && rest != "" {
			return f, rest, true
		}
	}
	return family{}, "", false
}

// Handler returns the /metrics handler: the counters under namespace ns
// (e.g. "iphttps_server"), plus the Go runtime's and the process's own.
func Handler(ns string, counters Counters) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{ns: ns, counters: counters},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Serve answers /metrics on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, ns string, counters Counters) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(ns, counters))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
		return err
	}
	return nil
}
