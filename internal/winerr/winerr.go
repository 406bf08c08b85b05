// Package winerr holds the Windows codes that IP-HTTPS reports as "Last Error
// Code", the "Interface Status" strings that go with them, and the mapping
// from Go and Linux errors to those codes.
package winerr

import (
	"errors"
	"fmt"
)

// Codes reported by IP-HTTPS (Win32, Winsock and HRESULT values).
const (
	Success               uint32 = 0x0
	NoMoreItems           uint32 = 0x103      // ERROR_NO_MORE_ITEMS: no usable certificate
	DupName               uint32 = 0x34       // ERROR_DUP_NAME: interface exists
	InstallFailure        uint32 = 0x643      // ERROR_INSTALL_FAILURE: interface creation failed
	InvalidNetName        uint32 = 0x4BE      // ERROR_INVALID_NETNAME: bad URL
	HostNotFound          uint32 = 0x2AF9     // WSAHOST_NOT_FOUND
	NoData                uint32 = 0x2AFC     // WSANO_DATA
	TimedOut              uint32 = 0x274C     // WSAETIMEDOUT
	ConnRefused           uint32 = 0x274D     // WSAECONNREFUSED
	ConnReset             uint32 = 0x2746     // WSAECONNRESET
	ConnAborted           uint32 = 0x2745     // WSAECONNABORTED
	NetUnreach            uint32 = 0x2743     // WSAENETUNREACH
	HostUnreach           uint32 = 0x2751     // WSAEHOSTUNREACH
	AddrInUse             uint32 = 0x2740     // WSAEADDRINUSE
	CertUntrustedRoot     uint32 = 0x800B0109 // CERT_E_UNTRUSTEDROOT
	CertExpired           uint32 = 0x800B0101 // CERT_E_EXPIRED
	CertWrongUsage        uint32 = 0x800B0110 // CERT_E_WRONG_USAGE
	RevocationOffline     uint32 = 0x80092013 // CRYPT_E_REVOCATION_OFFLINE
	Revoked               uint32 = 0x80092010 // CRYPT_E_REVOKED
	IllegalMessage        uint32 = 0x80090326 // SEC_E_ILLEGAL_MESSAGE
	IncompleteCredentials uint32 = 0x00090320 // SEC_I_INCOMPLETE_CREDENTIALS
	CertUnknown           uint32 = 0x80090327 // SEC_E_CERT_UNKNOWN
	FileNotFound          uint32 = 0x2        // ERROR_FILE_NOT_FOUND (server: certificate files)
	InvalidParameter      uint32 = 0x57       // ERROR_INVALID_PARAMETER (bad configuration)
)

// Interface Status strings, as Windows prints them.
const (
	StatusActive        = "IPHTTPS interface active"
	StatusWaiting       = "Failed to connect to the IPHTTPS server; waiting to reconnect"
	StatusNoCertificate = "No usable certificate(s) found"
	StatusInvalidURL    = "Invalid IPHTTPS URL specified"
	StatusCreateFailure = "Interface creation failure"
	StatusDeactivated   = "IPHTTPS interface deactivated"
	// StatusConnecting is iphttps' own: Windows shows no state for the first
	// attempt, before it has either succeeded or failed.
	StatusConnecting = "Connecting to the IPHTTPS server"
)

// StatusFor returns the Interface Status string Windows shows with code.
func StatusFor(code uint32) string {
	switch code {
	case Success:
		return StatusActive
	case NoMoreItems:
		return StatusNoCertificate
	case InvalidNetName:
		return StatusInvalidURL
	case DupName, InstallFailure:
		return StatusCreateFailure
	default:
		return StatusWaiting
	}
}

// Error is an error that carries its Windows code.
type Error struct {
	Code uint32
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v (%s)", e.Err, Hex(e.Code))
}

func (e *Error) Unwrap() error { return e.Err }

// New wraps err with code.
func New(code uint32, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Errorf formats an error carrying code.
func Errorf(code uint32, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// CodeOf returns the code carried by err (the outermost one), or ok=false.
func CodeOf(err error) (uint32, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 0, false
}

// Hex formats a code the way netsh does: 0x prefix, lowercase, no padding.
func Hex(code uint32) string { return fmt.Sprintf("%#x", code) }
