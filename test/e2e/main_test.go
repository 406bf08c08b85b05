// Package e2e holds the end-to-end tests of iphttps: the real binary, real
// TUN devices, the real kernel and real TLS, in the network-namespace lab of
// internal/lab. They need root (they skip without it, and fail loudly when
// the environment variable CI is set) and the Debian packages iproute2,
// dnsmasq-base, iputils-ping, nftables, nmap, squid, haproxy, miredo (the
// Teredo peer) and python3-scapy (the 6to4 peer); scripts/test installs
// them.
//
// Run them with: go test -v -count=1 -timeout 15m ./test/e2e/
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// suite is what TestMain prepares once for the whole test binary.
type suite struct {
	bin      string // the iphttps binary built for these tests
	buildErr error
}

// env is set once by TestMain, before any test runs, and only read after.
var env suite

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "iphttps-e2e-bin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		env.bin, env.buildErr = build(dir)
	}
	return m.Run()
}

// build compiles ./cmd/iphttps into dir.
func build(dir string) (string, error) {
	bin := filepath.Join(dir, "iphttps")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "github.com/iphttps/iphttps/cmd/iphttps")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/iphttps: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	return bin, nil
}
