package testenv

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// recorder stands in for a test: it records how it was stopped.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatal(args ...any)         { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Skip(args ...any)          { r.skip = fmt.Sprint(args...) }
func (r *recorder) stopped() (string, string) { return r.fatal, r.skip }

func TestSkipOrFail(t *testing.T) {
	for _, ci := range []string{"", "true", "1"} {
		t.Setenv("CI", ci)
		if CI() != (ci != "") {
			t.Errorf("CI=%q: CI() = %v", ci, CI())
		}
		var r recorder
		Require(&r, errors.New("missing thing"))
		fatal, skip := r.stopped()
		if ci == "" && (fatal != "" || skip != "missing thing") {
			t.Errorf("CI unset: fatal %q, skip %q; want a skip", fatal, skip)
		}
		if ci != "" && (skip != "" || !strings.HasPrefix(fatal, "missing thing") || !strings.Contains(fatal, "CI is set")) {
			t.Errorf("CI=%q: fatal %q, skip %q; want a failure", ci, fatal, skip)
		}

		r = recorder{}
		Require(&r, nil)
		if fatal, skip := r.stopped(); fatal != "" || skip != "" {
			t.Errorf("CI=%q: Require(nil) stopped the test: fatal %q, skip %q", ci, fatal, skip)
		}

		r = recorder{}
		if p := RequireTool(&r, "iphttps-no-such-tool", "no-such-package"); p != "" {
			t.Errorf("RequireTool found %q", p)
		}
		fatal, skip = r.stopped()
		if msg := fatal + skip; !strings.Contains(msg, "iphttps-no-such-tool") || !strings.Contains(msg, "no-such-package") || (fatal != "") != (ci != "") {
			t.Errorf("CI=%q: missing tool: fatal %q, skip %q", ci, fatal, skip)
		}

		r = recorder{}
		RequireRoot(&r, "does root things")
		fatal, skip = r.stopped()
		switch {
		case os.Geteuid() == 0 && fatal+skip != "":
			t.Errorf("CI=%q: root stopped: fatal %q, skip %q", ci, fatal, skip)
		case os.Geteuid() != 0 && (!strings.Contains(fatal+skip, "needs root: does root things") || (fatal != "") != (ci != "")):
			t.Errorf("CI=%q: not root: fatal %q, skip %q", ci, fatal, skip)
		}
	}
}

func TestRequireToolFindsSbin(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing in PATH: the sbin and bin directories are still searched
	var r recorder
	p := RequireTool(&r, "sh", "dash")
	if fatal, skip := r.stopped(); p == "" || fatal != "" || skip != "" {
		t.Fatalf("RequireTool(sh) = %q; fatal %q, skip %q", p, fatal, skip)
	}
	if !strings.HasSuffix(p, "/sh") {
		t.Errorf("RequireTool(sh) = %q", p)
	}
}
