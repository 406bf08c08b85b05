package docsection

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const doc = `# Perf

intro
<!-- throughput:begin -->
old table
old line
<!-- throughput:end -->

<!-- scale:begin -->
scale stays
<!-- scale:end -->
`

func TestReplace(t *testing.T) {
	got, err := Replace(doc, "throughput", "| a | b |\n|---|---|")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(doc, "old table\nold line\n", "| a | b |\n|---|---|\n", 1)
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Replacing again with the same body changes nothing.
	again, err := Replace(got, "throughput", "| a | b |\n|---|---|\n")
	if err != nil || again != got {
		t.Fatalf("not idempotent: %v\n%s", err, again)
	}
	empty, err := Replace(doc, "scale", "")
	if err != nil || strings.Contains(empty, "scale stays") || !strings.Contains(empty, "old table") {
		t.Fatalf("empty body: %v\n%s", err, empty)
	}
	// Markers with surrounding blanks still count; a marker quoted
	// inside a line does not.
	indented := strings.Replace(doc, "<!-- throughput:end -->", "  <!-- throughput:end -->  ", 1)
	if _, err := Replace(indented, "throughput", "x"); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"missing":  "# x\n<!-- throughput:begin -->\n",
		"twice":    doc + "<!-- throughput:begin -->\n",
		"reversed": "<!-- throughput:end -->\n<!-- throughput:begin -->\n",
		"inline":   "see <!-- throughput:begin --> and <!-- throughput:end -->\n",
	} {
		if _, err := Replace(bad, "throughput", "x"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestUpdateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docs", "performance.md")
	if err := UpdateFile(path, "scale", "S1", doc); err != nil {
		t.Fatal(err)
	}
	if err := UpdateFile(path, "throughput", "T1", "unused template"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "begin -->\nT1\n<!--") || !strings.Contains(s, "begin -->\nS1\n<!--") || !strings.HasPrefix(s, "# Perf") {
		t.Fatalf("file:\n%s", s)
	}
}
