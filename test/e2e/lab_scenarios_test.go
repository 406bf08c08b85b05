package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
)

// TestLabScenarios runs `iphttps lab --scenario NAME` itself: the
// DirectAccess lab, whose clients (all three methods configured) choose
// 6to4 with a public address, Teredo behind a NAT, IP-HTTPS in a hotel and
// Teredo with a public-looking address behind a NAT, each reaching the
// intranet; the hotel alone; and the hotel with --keep, removed by
// `iphttps lab down`.
func TestLabScenarios(t *testing.T) {
	bin := requireLab(t)

	t.Run("DirectAccess", func(t *testing.T) {
		out := runScenario(t, bin, "ipsd-", "directaccess")
		for i, want := range []string{"6to4", "Teredo", "IP-HTTPS", "Teredo"} {
			checkScenarioClient(t, out, i+1, want)
		}
	})

	t.Run("Hotel", func(t *testing.T) {
		out := runScenario(t, bin, "ipsh-", "hotel")
		checkScenarioClient(t, out, 1, "IP-HTTPS")
		for _, want := range []string{"*  IP-HTTPS", "6to4 Service State disabled", "Teredo State offline"} {
			if !strings.Contains(out, want) {
				t.Errorf("the paths lack %q", want)
			}
		}
	})

	t.Run("KeepThenDown", func(t *testing.T) {
		const prefix = "ipsk-"
		dir := t.TempDir()
		cleanupScenarioPrefix(t, prefix, dir)
		p := startKeep(t, bin, prefix, dir, "--scenario", "public")
		checkScenarioClient(t, p.output(), 1, "6to4")
		out, err := runBounded(exec.Command(bin, "lab", "down", "--dir", dir), 90*time.Second)
		t.Logf("iphttps lab down:\n%s", out)
		if err != nil {
			t.Fatalf("iphttps lab down: %v", err)
		}
		if err := p.wait(30 * time.Second); err != nil {
			t.Errorf("iphttps lab --scenario public --keep after lab down: %v\n%s", err, p.output())
		}
		assertNoScenarioLab(t, prefix)
	})
}

// runScenario runs `iphttps lab --scenario name` with prefix in a
// directory of its own, fails t unless it exits with status 0 within 2
// minutes and leaves nothing behind, and returns its output.
func runScenario(t *testing.T, bin, prefix, name string) string {
	t.Helper()
	dir := t.TempDir()
	cleanupScenarioPrefix(t, prefix, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "lab", "--scenario", name, "--prefix", prefix, "--dir", dir)
	cmd.WaitDelay = 10 * time.Second
	began := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("iphttps lab --scenario %s (%s):\n%s", name, time.Since(began).Round(100*time.Millisecond), out)
	if err != nil {
		t.Errorf("iphttps lab --scenario %s: %v", name, err)
	}
	if !strings.Contains(string(out), "All checks passed") || !strings.Contains(string(out), "Lab removed") {
		t.Errorf("iphttps lab --scenario %s: no \"All checks passed\" and \"Lab removed\"", name)
	}
	assertNoScenarioLab(t, prefix)
	return string(out)
}

// checkScenarioClient fails t unless the output's line for client i says
// it chose method and reached the intranet host.
func checkScenarioClient(t *testing.T, out string, i int, method string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + lab.SixToFourClientRole(i) + ` \(.*\): ` + regexp.QuoteMeta(method) +
		` — carries the traffic after [0-9.]+ s; ping 3/3, web page OK$`)
	if !re.MatchString(out) {
		t.Errorf("no line saying %s chose %s and reached the intranet (%s)", lab.SixToFourClientRole(i), method, re)
	}
}

// cleanupScenarioPrefix removes whatever a failed run left with prefix,
// before and after the test: the IP-HTTPS lab's names and the 6to4 lab's.
func cleanupScenarioPrefix(t *testing.T, prefix, dir string) {
	t.Helper()
	cleanupPrefix(t, prefix, dir)
	clean := func() {
		if err := lab.RemoveStaleSixToFour(context.Background(), prefix); err != nil {
			t.Error(err)
		}
	}
	clean()
	t.Cleanup(clean)
}

// assertNoScenarioLab fails t if a namespace of the 6to4 lab (or an
// /etc/netns directory) with prefix remains.
func assertNoScenarioLab(t *testing.T, prefix string) {
	t.Helper()
	assertNoLab(t, prefix)
	names, err := lab.ListNetns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if lab.IsSixToFourLabNamespace(prefix, n) {
			t.Errorf("namespace left: %s", n)
		}
	}
}
