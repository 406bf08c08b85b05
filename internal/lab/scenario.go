package lab

import (
	"errors"
	"fmt"

	"github.com/iphttps/iphttps/internal/pki"
)

// IssueServerCert writes a server certificate described by o, signed by ca
// (the lab CA when nil), as base.pem and base.key in the lab directory, for
// scenarios with a faulty certificate (StartServer("--cert", c, "--key", k)).
func (l *Lab) IssueServerCert(base string, o pki.Options, ca *pki.Cert) (certFile, keyFile string, err error) {
	if ca == nil {
		ca = l.ca
	}
	c, err := pki.Server(ca, o)
	if err != nil {
		return "", "", fmt.Errorf("lab: server certificate %s: %w", base, err)
	}
	return c.WriteFiles(l.dir, base)
}

// StartClientURL is StartClient with another URL than ServerURL.
func (l *Lab) StartClientURL(i int, url string, extra ...string) error {
	if i < 1 || i > l.opts.Clients {
		return fmt.Errorf("lab: no client %d (the lab has %d)", i, l.opts.Clients)
	}
	if l.opts.Binary == "" {
		return errors.New("lab: no iphttps binary configured (Options.Binary)")
	}
	argv := append(l.ClientArgs(i), extra...)
	for j, a := range argv {
		if a == ServerURL {
			argv[j] = url
			break
		}
	}
	if err := l.startProc(ClientName(i), l.ClientNS(i), argv...); err != nil {
		return err
	}
	l.log.Info("client started", "client", ClientName(i), "url", url, "pid", l.PID(ClientName(i)))
	return nil
}
