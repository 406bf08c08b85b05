// Package iperf runs nothing itself: it builds the command lines of iperf3
// and ping for the benchmarks and parses what they print (iperf3's JSON
// report, ping's summary).
package iperf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Port is the iperf3 server's port.
const Port = 5201

// ServerArgs is the iperf3 server command line.
func ServerArgs() []string {
	return []string{"iperf3", "--server", "--port", strconv.Itoa(Port)}
}

// ClientArgs is the iperf3 client command line for a test of dur (whole
// seconds, at least 1) with streams parallel TCP streams to target; reverse
// makes the server send (-R). The report is JSON (see Parse).
func ClientArgs(target string, dur time.Duration, streams int, reverse bool) []string {
	secs := max(int(dur.Round(time.Second)/time.Second), 1)
	args := []string{"iperf3", "--client", target, "--port", strconv.Itoa(Port),
		"--time", strconv.Itoa(secs), "--parallel", strconv.Itoa(max(streams, 1)),
		"--connect-timeout", "3000", "--json"}
	if reverse {
		args = append(args, "--reverse")
	}
	return args
}

// Result is what an iperf3 client run measured.
type Result struct {
	Streams  int     `json:"streams"`
	Reverse  bool    `json:"reverse"`
	Seconds  float64 `json:"seconds"`   // test duration
	Mbps     float64 `json:"mbps"`      // goodput at the receiver, Mbit/s
	SentMbps float64 `json:"sent_mbps"` // at the sender
	Bytes    uint64  `json:"bytes"`     // received
	// Retransmits of the sending side, when iperf3 reports them (it does
	// for a Linux sender, also the server in reverse mode).
	Retransmits *int64 `json:"retransmits,omitempty"`
}

// report is the part of iperf3's --json output that Parse reads.
type report struct {
	Start struct {
		TestStart struct {
			NumStreams int `json:"num_streams"`
			Reverse    int `json:"reverse"`
		} `json:"test_start"`
	} `json:"start"`
	End struct {
		SumSent *struct {
			Seconds       float64 `json:"seconds"`
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   *int64  `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived *struct {
			Seconds       float64 `json:"seconds"`
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// Parse reads an iperf3 --json report. A report carrying an error, or no
// received total, is an error.
func Parse(b []byte) (Result, error) {
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("iperf3 report: %w", err)
	}
	if r.Error != "" {
		return Result{}, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived == nil || r.End.SumSent == nil {
		return Result{}, errors.New("iperf3 report: no end totals")
	}
	return Result{
		Streams:     r.Start.TestStart.NumStreams,
		Reverse:     r.Start.TestStart.Reverse != 0,
		Seconds:     r.End.SumReceived.Seconds,
		Mbps:        r.End.SumReceived.BitsPerSecond / 1e6,
		SentMbps:    r.End.SumSent.BitsPerSecond / 1e6,
		Bytes:       r.End.SumReceived.Bytes,
		Retransmits: r.End.SumSent.Retransmits,
	}, nil
}
