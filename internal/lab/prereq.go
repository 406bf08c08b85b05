package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrNotRoot is returned by [CheckRoot] for an unprivileged caller.
var ErrNotRoot = errors.New("the iphttps lab must run as root (it creates network namespaces and TUN devices)")

// Tool is an external program the lab needs, with the Debian package that
// ships it.
type Tool struct {
	Name    string
	Package string
}

// RequiredTools are the programs the lab runs: ip for namespaces and links,
// dnsmasq as the lab's DNS server, ping for the connectivity checks.
func RequiredTools() []Tool {
	return []Tool{
		{Name: "ip", Package: "iproute2"},
		{Name: "dnsmasq", Package: "dnsmasq-base"},
		{Name: "ping", Package: "iputils-ping"},
	}
}

// CheckRoot returns ErrNotRoot unless the process runs as root.
func CheckRoot() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}

// CheckTools reports the required programs that are missing from PATH (and
// /usr/sbin, where Debian puts ip and dnsmasq), naming their packages.
func CheckTools() error { return checkTools(RequiredTools()) }

// checkTools names the tools missing (a Name with a "/" is a file path,
// such as a squid helper) and the Debian packages to install for them.
func checkTools(tools []Tool) error {
	var missing, pkgs []string
	for _, t := range tools {
		var err error
		if strings.Contains(t.Name, "/") {
			_, err = os.Stat(t.Name)
		} else {
			_, err = lookTool(t.Name)
		}
		if err != nil {
			missing = append(missing, t.Name)
			pkgs = append(pkgs, t.Package)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("missing %s; install the Debian packages: apt-get install %s",
		strings.Join(missing, ", "), strings.Join(pkgs, " "))
}

// lookTool finds a program in PATH or in the sbin directories, which are
// not always in a non-root PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}
