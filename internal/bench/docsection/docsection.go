// Package docsection replaces generated sections of a Markdown document:
// the text between a line "<!-- NAME:begin -->" and a line
// "<!-- NAME:end -->", so a benchmark can refresh its part of a document
// and leave the rest as people wrote it.
package docsection

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PerformanceTemplate is docs/performance.md as created when it does not
// exist: an introduction and the generated sections of both benchmarks,
// "throughput" and "scale".
const PerformanceTemplate = `# Performance

The figures below are measured on one machine by ` + "`bench/run`" + `, in network
namespaces joined by a veth pair, and regenerated with
` + "`bench/run throughput --doc docs/performance.md`" + ` (and ` + "`bench/run scale --doc ...`" + `).
Everything between the ` + "`begin`/`end`" + ` markers is overwritten by the benchmark; write
commentary outside them.

## Throughput, latency and CPU

<!-- throughput:begin -->
<!-- throughput:end -->

## Scale

<!-- scale:begin -->
<!-- scale:end -->
`

// Markers returns the begin and end marker lines of section name.
func Markers(name string) (begin, end string) {
	return "<!-- " + name + ":begin -->", "<!-- " + name + ":end -->"
}

// Replace returns doc with the lines between the markers of section name
// replaced by body. Each marker must stand alone on one line (surrounding
// blanks allowed) and appear exactly once, begin before end. The marker
// lines themselves are kept.
func Replace(doc, name, body string) (string, error) {
	begin, end := Markers(name)
	lines := strings.SplitAfter(doc, "\n")
	bi, ei := -1, -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case begin:
			if bi >= 0 {
				return "", fmt.Errorf("section %s: %s appears twice", name, begin)
			}
			bi = i
		case end:
			if ei >= 0 {
				return "", fmt.Errorf("section %s: %s appears twice", name, end)
			}
			ei = i
		}
	}
	switch {
	case bi < 0 || ei < 0:
		return "", fmt.Errorf("section %s: no %s / %s lines", name, begin, end)
	case ei < bi:
		return "", fmt.Errorf("section %s: %s comes before %s", name, end, begin)
	}
	var b strings.Builder
	for _, l := range lines[:bi+1] {
		b.WriteString(l)
	}
	if !strings.HasSuffix(lines[bi], "\n") {
		b.WriteString("\n")
	}
	if body != "" {
		b.WriteString(body)
		if !strings.HasSuffix(body, "\n") {
			b.WriteString("\n")
		}
	}
	for _, l := range lines[ei:] {
		b.WriteString(l)
	}
	return b.String(), nil
}

// UpdateFile replaces section name of the Markdown file at path with body
// (see Replace). A file that does not exist is first created from
// template. The file is replaced atomically.
func UpdateFile(path, name, body, template string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = []byte(template), nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out, err := Replace(string(b), name, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".docsection-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
