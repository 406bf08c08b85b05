package winerr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"syscall"
)

// alertCode maps a TLS alert from the server.
func alertCode(a uint8) uint32 {
	if a == 116 { // certificate_required: the server wants a client certificate
		return IncompleteCredentials
	}
	return IllegalMessage
}

// Classify maps an error from a connection attempt to the code Windows would
// report. An error that already carries a code
// keeps it. Unknown failures of the connection map to WSAECONNRESET when the
// peer went away and to WSANO_DATA otherwise, the KB's catch-all for "reached
// the server but IP-HTTPS did not come up".
func Classify(err error) uint32 {
	if err == nil {
		return Success
	}
	if c, ok := CodeOf(err); ok {
		return c
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return HostNotFound
		}
		return NoData // no address record, SERVFAIL, timeout
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return CertUntrustedRoot
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.Expired:
			return CertExpired
		case x509.IncompatibleUsage:
			return NoMoreItems
		default:
			return CertUnknown
		}
	}
	var host x509.HostnameError
	if errors.As(err, &host) {
		return NoMoreItems
	}
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) {
		return CertUnknown
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return alertCode(uint8(alert))
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		// crypto/tls reports the peer's alerts with an unexported uint8 type.
		if v := reflect.ValueOf(op.Err); v.Kind() == reflect.Uint8 {
			return alertCode(uint8(v.Uint()))
		}
		return IllegalMessage
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnRefused
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded):
		return TimedOut
	case errors.Is(err, syscall.ENETUNREACH):
		return NetUnreach
	case errors.Is(err, syscall.EHOSTUNREACH):
		return HostUnreach
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ConnReset
	case errors.Is(err, syscall.ECONNABORTED):
		return ConnAborted
	case errors.Is(err, syscall.EADDRINUSE):
		return AddrInUse
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return TimedOut
	}
	return NoData
}
