package tput

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/iphttps/iphttps/internal/bench/netbench"
)

// Machine describes where and with what the benchmark ran.
type Machine struct {
	CPUModel      string `json:"cpu_model"`
	NProc         int    `json:"nproc"`
	AES           bool   `json:"aes"`  // AES-NI
	VAES          bool   `json:"vaes"` // vector AES
	Kernel        string `json:"kernel"`
	TCPCongestion string `json:"tcp_congestion"`
	GoVersion     string `json:"go_version"` // of this benchmark binary
	// IPHTTPS is the binary under test: its path, Go version and VCS
	// revision ("+dirty" when built from a modified tree).
	IPHTTPS         string `json:"iphttps"`
	IPHTTPSGo       string `json:"iphttps_go"`
	IPHTTPSRevision string `json:"iphttps_revision,omitempty"`
	Iperf3          string `json:"iperf3"`
	Ocserv          string `json:"ocserv,omitempty"`
	Openconnect     string `json:"openconnect,omitempty"`
	GnuTLS          string `json:"gnutls,omitempty"`
	// Offload tells whether the iphttps daemons use TUN offload (GSO/GRO).
	Offload map[string]bool `json:"iphttps_offload,omitempty"`
	// Suites are the TLS versions and cipher suites negotiated, per section.
	Suites map[string]string `json:"suites,omitempty"`
	// ServerKeys are the server certificates' key types, per section.
	ServerKeys map[string]string `json:"server_keys,omitempty"`
	// MTU of the veth and of the tunnel devices.
	MTU map[string]int `json:"mtu,omitempty"`
}

// describeMachine fills in what does not depend on the tunnels.
func describeMachine(ctx context.Context, iphttpsPath string, withOcserv bool) Machine {
	m := Machine{
		NProc:      runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		IPHTTPS:    iphttpsPath,
		Suites:     map[string]string{},
		ServerKeys: map[string]string{},
		MTU:        map[string]int{},
		Offload:    map[string]bool{},
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.CPUModel == "" {
					m.CPUModel = strings.TrimSpace(v)
				}
			case "flags":
				fl := strings.Fields(v)
				m.AES, m.VAES = slices.Contains(fl, "aes"), slices.Contains(fl, "vaes")
			}
		}
		f.Close()
	}
	m.Kernel = readTrim("/proc/sys/kernel/osrelease")
	m.TCPCongestion = readTrim("/proc/sys/net/ipv4/tcp_congestion_control")
	if bi, err := buildinfo.ReadFile(iphttpsPath); err == nil {
		m.IPHTTPSGo = bi.GoVersion
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			m.IPHTTPSRevision = rev + dirty
		}
	}
	if m.IPHTTPSRevision == "" {
		m.IPHTTPSRevision = worktreeRevision(ctx)
	}
	m.Iperf3 = firstLine(ctx, "iperf3", "--version")
	if withOcserv {
		m.Ocserv = firstLine(ctx, "ocserv", "--version")
		m.Openconnect = firstLine(ctx, "openconnect", "--version")
		if out, err := netbench.Output(ctx, "", 5*time.Second, "dpkg-query", "-W", "-f", "${Version}", "libgnutls30"); err == nil {
			m.GnuTLS = strings.TrimSpace(string(out))
		}
	}
	return m
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// firstLine is the first line a version command prints (on either
// stream: some tools print their version on stderr, or exit non-zero).
func firstLine(ctx context.Context, argv ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(l)
}

// worktreeRevision describes the git checkout in the current directory
// (bench/run builds iphttps from it; the build itself may carry no VCS
// stamp, e.g. with -buildvcs=false): the commit, "+dirty" when tracked
// files differ from it, and "(work tree)". Empty outside a checkout.
func worktreeRevision(ctx context.Context) string {
	out, err := netbench.Output(ctx, "", 5*time.Second, "git", "rev-parse", "--short=12", "HEAD")
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := netbench.Output(ctx, "", 10*time.Second, "git", "status", "--porcelain", "--untracked-files=no"); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "+dirty"
	}
	return rev + " (work tree)"
}
