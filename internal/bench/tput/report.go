package tput

import (
	"fmt"
	"slices"
	"strings"

	"github.com/iphttps/iphttps/internal/bench/docsection"
)

// DocSection is the name of the section of docs/performance.md that the
// throughput benchmark fills (see package docsection).
const DocSection = "throughput"

// DocTemplate is docs/performance.md as created when it does not exist: an
// introduction and the generated sections of both benchmarks (shared with
// the scale benchmark).
const DocTemplate = docsection.PerformanceTemplate

// rowName labels a section in the tables.
func rowName(sec string) string {
	switch sec {
	case SecVeth:
		return "veth (plain TCP)"
	case SecTLS:
		return "TLS 1.3 stream (Go)"
	case SecIPHTTPS:
		return "**iphttps**"
	case SecOcserv:
		return "ocserv CSTP"
	case SecTeredo:
		return "**iphttps Teredo**"
	case SecMiredo:
		return "Miredo (Teredo)"
	case SecSixToFour:
		return "**iphttps 6to4**"
	}
	return sec
}

// Markdown renders the result: the throughput table, the idle round trips,
// the ratios with the targets, the machine and the notes.
func Markdown(r *Result) string {
	var b strings.Builder
	mode := ""
	if r.Options.Smoke {
		mode = " (smoke)"
	}
	fmt.Fprintf(&b, "### Throughput%s, %s\n\n", mode, r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "`iphttps-bench throughput`: %d run(s) of %.0f s per test; medians over the runs (min–max). "+
		"fwd = client → server, rev = server → client; IPv6 inside the tunnels; CPU in %% of one CPU "+
		"(this machine has %d, so fully busy is %d%%); drops are the counters that moved, added up over the runs.\n\n",
		r.Options.Runs, r.Options.TimeSeconds, r.Machine.NProc, r.Machine.NProc*100)

	b.WriteString("| path | test | Mbit/s | min–max | TCP retr | ping under load avg / max ms | CPU % server / client | machine busy % | drops |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|---|\n")
	for _, s := range r.Summaries {
		if s.Kind == KindPing {
			continue
		}
		test := streamsName(s.Streams) + " " + s.Dir
		if s.Runs == 0 {
			fmt.Fprintf(&b, "| %s | %s | FAILED | | | | | | |\n", rowName(s.Section), test)
			continue
		}
		failed := ""
		if s.Failed > 0 {
			failed = fmt.Sprintf(" (%d failed)", s.Failed)
		}
		retr := "–"
		if s.Retransmits >= 0 {
			retr = fmt.Sprintf("%.0f", s.Retransmits)
		}
		ping := "–"
		if s.HasPing {
			ping = pingCell(s)
		}
		cpu := "–"
		if len(s.CPU) > 0 {
			cpu = fmt.Sprintf("%.0f / %.0f", s.CPU["server"], s.CPU["client"])
		}
		drops := "–"
		if s.Section == SecIPHTTPS || s.Section == SecOcserv {
			drops = "0"
			if len(s.Drops) > 0 {
				drops = fmtDrops(s.Drops)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f%s | %.0f–%.0f | %s | %s | %s | %.0f | %s |\n",
			rowName(s.Section), test, s.Mbps, failed, s.MbpsMin, s.MbpsMax, retr, ping, cpu, s.MachineBusy, drops)
	}

	var idles []Summary
	for _, s := range r.Summaries {
		if s.Kind == KindPing {
			idles = append(idles, s)
		}
	}
	if len(idles) > 0 {
		fmt.Fprintf(&b, "\nIdle round trip (%d pings, 0.2 s apart, client → server; medians of the averages, largest maximum):\n\n", idlePings)
		b.WriteString("| path | avg ms | max ms | loss |\n|---|--:|--:|--:|\n")
		for _, s := range idles {
			if s.Runs == 0 {
				fmt.Fprintf(&b, "| %s | FAILED | | |\n", rowName(s.Section))
				continue
			}
			fmt.Fprintf(&b, "| %s | %.3f | %.3f | %.0f%% |\n", rowName(s.Section), s.PingAvgMs, s.PingMaxMs, s.PingLossPct)
		}
	}

	b.WriteString("\nRatios (from the medians above, same run) and the project's targets:\n\n")
	b.WriteString("| measure | value | from | target | met |\n|---|--:|---|---|---|\n")
	nTargets, nMet := 0, 0
	for _, x := range r.Ratios {
		metCell := ""
		if x.Target != "" {
			nTargets++
			switch {
			case !x.Valid:
				metCell = "not measured"
			case *x.Met:
				metCell = "**yes**"
				nMet++
			default:
				metCell = "no"
			}
		}
		from := x.Detail
		if !x.Valid {
			from = "not measured"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", x.Name, x.valueString(), from, x.Target, metCell)
	}
	fmt.Fprintf(&b, "\nTargets met: %d of %d.\n", nMet, nTargets)

	b.WriteString("\nMachine and versions:\n\n")
	writeMachine(&b, r.Machine)

	if drops := sessionDrops(r.Sessions); drops != "" {
		b.WriteString("\nDrop and error counters that moved over whole tunnel sessions (start to stop, idle ping included):\n\n")
		b.WriteString(drops)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(r.Failures) > 0 {
		b.WriteString("\nFailures (these did not run):\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	return b.String()
}

func pingCell(s Summary) string {
	if s.PingAvgMs == 0 && s.PingMaxMs == 0 {
		return "no reply"
	}
	c := fmt.Sprintf("%.3f / %.3f", s.PingAvgMs, s.PingMaxMs)
	if s.PingLossPct > 0 {
		c += fmt.Sprintf(" (%.0f%% loss)", s.PingLossPct)
	}
	return c
}

func writeMachine(b *strings.Builder, m Machine) {
	yes := func(v bool) string {
		if v {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(b, "- CPU: %s × %d (AES-NI %s, VAES %s); kernel %s; TCP congestion control %s\n",
		m.CPUModel, m.NProc, yes(m.AES), yes(m.VAES), m.Kernel, m.TCPCongestion)
	rev := ""
	if m.IPHTTPSRevision != "" {
		rev = ", revision " + m.IPHTTPSRevision
	}
	fmt.Fprintf(b, "- iphttps built with %s%s; benchmark %s\n", m.IPHTTPSGo, rev, m.GoVersion)
	tools := "- " + m.Iperf3
	if m.Ocserv != "" {
		tools += "; " + m.Ocserv + "; " + m.Openconnect
		if m.GnuTLS != "" {
			tools += " (GnuTLS " + m.GnuTLS + ")"
		}
	}
	b.WriteString(tools + "\n")
	for _, sec := range AllSections {
		suite, ok := m.Suites[sec]
		if !ok {
			continue
		}
		key := ""
		if k := m.ServerKeys[sec]; k != "" {
			key = ", server key " + k
		}
		fmt.Fprintf(b, "- TLS of %s: %s%s\n", sectionName(sec), suite, key)
	}
	var mtus []string
	for _, k := range []string{"veth", SecIPHTTPS, SecOcserv} {
		if v, ok := m.MTU[k]; ok {
			mtus = append(mtus, fmt.Sprintf("%s %d", sectionName(k), v))
		}
	}
	if len(mtus) > 0 {
		fmt.Fprintf(b, "- MTU: %s\n", strings.Join(mtus, ", "))
	}
	if len(m.Offload) > 0 {
		var parts []string
		for _, role := range []string{"server", "client"} {
			if v, ok := m.Offload[role]; ok {
				parts = append(parts, role+" "+yes(v))
			}
		}
		fmt.Fprintf(b, "- iphttps TUN offload (GSO/GRO): %s\n", strings.Join(parts, ", "))
	}
}

// sessionDrops lists, per section and run, the counters that moved over a
// whole session.
func sessionDrops(ss []Session) string {
	var b strings.Builder
	sorted := slices.Clone(ss)
	slices.SortStableFunc(sorted, func(a, c Session) int { return strings.Compare(a.Section, c.Section) })
	for _, s := range sorted {
		if len(s.Drops) == 0 {
			continue
		}
		fmt.Fprintf(&b, "- %s run %d: %s\n", sectionName(s.Section), s.Run, fmtDrops(s.Drops))
	}
	return b.String()
}
