// Package testenv is what tests share about the machine they run on. A test
// that needs root or a Debian program it cannot find skips, with the reason,
// on a developer's machine; under CI (the environment variable CI set to
// anything non-empty, as scripts/test does) it fails instead, because there
// a skip would hide a test that never ran.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CI reports whether the tests run under CI: the environment variable CI is
// set and not empty.
func CI() bool { return os.Getenv("CI") != "" }

// SkipOrFail stops t because the machine lacks something it needs (why):
// a skip, or under CI a failure.
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if CI() {
		t.Fatal(why + " (CI is set, so this is a failure, not a skip)")
		return
	}
	t.Skip(why)
}

// Require stops t as SkipOrFail when err, what a check of the test's
// prerequisites returned (lab.CheckTools and the like), is not nil.
func Require(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		SkipOrFail(t, err.Error())
	}
}

// RequireRoot stops t as SkipOrFail unless the process runs as root; why
// says what the test does that needs root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root: "+why)
	}
}

// RequireTool returns the path of the program name, looked for in PATH and
// then in the sbin and bin directories (Debian puts ip and dnsmasq in
// /usr/sbin, often missing from a user's PATH). Without it, t stops as
// SkipOrFail, naming the Debian package that ships it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	SkipOrFail(t, fmt.Sprintf("%s is missing: install the Debian package %s", name, debianPackage))
	return ""
}
