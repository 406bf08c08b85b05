package winerr

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want uint32
	}{
		{"nxdomain", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, HostNotFound},
		{"servfail", &net.DNSError{Err: "server misbehaving", Name: "x"}, NoData},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ConnRefused},
		{"timeout", fmt.Errorf("dial: %w", os.ErrDeadlineExceeded), TimedOut},
		{"untrusted", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), CertUntrustedRoot},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, CertExpired},
		{"hostname", x509.HostnameError{Host: "a"}, NoMoreItems},
		{"eof", fmt.Errorf("read head: %w", io.ErrUnexpectedEOF), ConnReset},
		{"carried", fmt.Errorf("outer: %w", New(InvalidNetName, errors.New("ip literal"))), InvalidNetName},
		{"other", errors.New("something"), NoData},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("%s: Classify = %s, want %s", c.name, Hex(got), Hex(c.want))
		}
	}
}

func TestStatusAndHex(t *testing.T) {
	if got := Hex(CertUntrustedRoot); got != "0x800b0109" {
		t.Fatalf("Hex = %s", got)
	}
	if StatusFor(Success) != "IPHTTPS interface active" || StatusFor(NoMoreItems) != "No usable certificate(s) found" ||
		StatusFor(HostNotFound) != "Failed to connect to the IPHTTPS server; waiting to reconnect" ||
		StatusFor(DupName) != "Interface creation failure" || StatusFor(InvalidNetName) != "Invalid IPHTTPS URL specified" {
		t.Fatal("status strings differ from Windows")
	}
}
