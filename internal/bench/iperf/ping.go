package iperf

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// PingArgs is the ping command line sending count echo requests to target,
// interval apart, each waiting at most 2 s for its reply; the whole run is
// bounded to the time the requests take plus 5 s. Only the summary is
// printed (see ParsePing).
func PingArgs(target string, count int, interval time.Duration) []string {
	deadline := int((time.Duration(count)*interval)/time.Second) + 5
	return []string{"ping", "-n", "-q", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', -1, 64),
		"-W", "2", "-w", strconv.Itoa(deadline), target}
}

// Ping is ping's summary: counts and round-trip times in milliseconds
// (zero when nothing came back).
type Ping struct {
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	LossPct  float64 `json:"loss_pct"`
	MinMs    float64 `json:"min_ms"`
	AvgMs    float64 `json:"avg_ms"`
	MaxMs    float64 `json:"max_ms"`
	MdevMs   float64 `json:"mdev_ms"`
}

var (
	countsRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received,(?: \+\d+ \w+,)* ([\d.]+)% packet loss`)
	rttRE    = regexp.MustCompile(`(?:rtt|round-trip) min/avg/max(?:/mdev|/stddev)? = ([\d.]+)/([\d.]+)/([\d.]+)(?:/([\d.]+))? ms`)
)

// ParsePing reads the summary of iputils ping (also BusyBox's): the
// counts line is required, the round-trip line only if a reply came back.
func ParsePing(out string) (Ping, error) {
	m := countsRE.FindStringSubmatch(out)
	if m == nil {
		return Ping{}, errors.New("ping: no summary in output")
	}
	var p Ping
	p.Sent, _ = strconv.Atoi(m[1])
	p.Received, _ = strconv.Atoi(m[2])
	p.LossPct, _ = strconv.ParseFloat(m[3], 64)
	if p.Received == 0 {
		return p, nil
	}
	r := rttRE.FindStringSubmatch(out)
	if r == nil {
		return p, errors.New("ping: replies but no round-trip line")
	}
	for i, dst := range []*float64{&p.MinMs, &p.AvgMs, &p.MaxMs, &p.MdevMs} {
		if r[i+1] == "" {
			continue
		}
		v, err := strconv.ParseFloat(r[i+1], 64)
		if err != nil {
			return p, fmt.Errorf("ping: round-trip %q: %w", r[i+1], err)
		}
		*dst = v
	}
	return p, nil
}

// String is "avg/max ms (loss%)".
func (p Ping) String() string {
	if p.Received == 0 {
		return fmt.Sprintf("no reply (%d sent)", p.Sent)
	}
	s := fmt.Sprintf("%.3f/%.3f ms", p.AvgMs, p.MaxMs)
	if p.LossPct > 0 {
		s += " (" + strings.TrimSuffix(strconv.FormatFloat(p.LossPct, 'f', 1, 64), ".0") + "% loss)"
	}
	return s
}
