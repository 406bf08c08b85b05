package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/lab"
	"github.com/iphttps/iphttps/internal/status"
)

// codeIncompleteCredentials is SEC_I_INCOMPLETE_CREDENTIALS, what a Windows
// client reports when the server asks for a client certificate it lacks.
const codeIncompleteCredentials = 0x90320

// TestCertificateAuth runs the server in authentication mode certificates:
// a client without a certificate must never come up and must report
// 0x90320; a client with a certificate from the CA must come up and reach
// the intranet.
func TestCertificateAuth(t *testing.T) {
	l := newLab(t, lab.Options{Prefix: "ipt3-", Clients: 2, AuthMode: "certificates"})
	if err := l.StartServer(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartClient(1); err != nil {
		t.Fatal(err)
	}
	cert, key, err := l.ClientCert(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StartClient(2, "--cert", cert, "--key", key); err != nil {
		t.Fatal(err)
	}

	everActive := false
	watch := func(s status.Interface) bool {
		everActive = everActive || lab.IsActive(s)
		return false
	}

	t.Run("WithoutCertificate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := l.WaitStatus(ctx, "cli1", func(s status.Interface) bool {
			watch(s)
			return s.InterfaceStatus == lab.StatusFailed && s.LastErrorCode == codeIncompleteCredentials
		})
		if err != nil {
			t.Fatalf("want interface status %q with last error code 0x%X: %v", lab.StatusFailed, codeIncompleteCredentials, err)
		}
		t.Logf("cli1: %q, 0x%X, %s", s.InterfaceStatus, s.LastErrorCode, s.LastError)
	})

	t.Run("WithCertificate", func(t *testing.T) {
		waitActive(t, l, 2)
		mustPing(t, l, l.ClientNS(2), lab.IntranetHost)
	})

	// Keep watching the client without a certificate for a while (it
	// retries on its reconnect timer): it must never come up.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _ = l.WaitStatus(ctx, "cli1", watch)
	if everActive {
		t.Error("the client without a certificate came up")
	}
	if s, err := l.Status(context.Background(), "server"); err == nil {
		t.Logf("server handshake_failures=%d sessions_total=%d", s.Counters["handshake_failures"], s.Counters["sessions_total"])
	}
}
