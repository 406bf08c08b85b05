// Package dnsquery asks a name server directly, to tell a name that does not
// exist (NXDOMAIN, Windows' WSAHOST_NOT_FOUND 0x2af9) from a name that exists
// without an address record (NOERROR with no data, WSANO_DATA 0x2afc): Go's
// resolver reports both as "no such host".
package dnsquery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Answer is what a raw DNS query for a name's A record returned.
type Answer struct {
	RCode   dnsmessage.RCode
	Answers int // A records in the answer
	Server  string
}

// RCodeName is the usual name of a DNS response code.
func RCodeName(r dnsmessage.RCode) string {
	switch r {
	case dnsmessage.RCodeSuccess:
		return "NOERROR"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	}
	return fmt.Sprintf("RCODE %d", r)
}

// Nameservers reads the name servers of resolv.conf (glibc's default, the
// local host, when it lists none).
func Nameservers(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("name servers: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" {
			if a, err := netip.ParseAddr(fs[1]); err == nil {
				out = append(out, netip.AddrPortFrom(a, 53).String())
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("name servers: %s: %w", path, err)
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:53", "[::1]:53"}
	}
	return out, nil
}

// Query asks the servers, in turn, over UDP through d.
func Query(ctx context.Context, d *net.Dialer, servers func() ([]string, error), name string, typ dnsmessage.Type) (Answer, error) {
	list, err := servers()
	if err != nil {
		return Answer{}, err
	}
	var errs []error
	for _, s := range list {
		a, err := queryOne(ctx, d, s, name, typ)
		if err == nil {
			return a, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return Answer{}, errors.Join(errs...)
}

// queryOne sends one query for name and type to server (host:port) and
// reads the answer's code and how many records of that type it holds.
func queryOne(ctx context.Context, d *net.Dialer, server, name string, typ dnsmessage.Type) (Answer, error) {
	n, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return Answer{}, fmt.Errorf("query %s: %w", name, err)
	}
	id := uint16(rand.Uint32())
	q, err := (&dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: typ, Class: dnsmessage.ClassINET}},
	}).Pack()
	if err != nil {
		return Answer{}, fmt.Errorf("query %s: %w", name, err)
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := d.DialContext(qctx, "udp", server)
	if err != nil {
		return Answer{}, fmt.Errorf("name server %s: %w", server, err)
	}
	defer conn.Close()
	if dl, ok := qctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write(q); err != nil {
		return Answer{}, fmt.Errorf("name server %s: %w", server, err)
	}
	buf := make([]byte, 64<<10)
	for {
		k, err := conn.Read(buf)
		if err != nil {
			return Answer{}, fmt.Errorf("name server %s: %w", server, err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:k])
		if err != nil || h.ID != id || !h.Response {
			continue // not the answer to this query
		}
		a := Answer{RCode: h.RCode, Server: server}
		if err := p.SkipAllQuestions(); err != nil {
			return a, nil
		}
		for {
			ah, err := p.AnswerHeader()
			if err != nil {
				break
			}
			if ah.Type == typ {
				a.Answers++
			}
			if err := p.SkipAnswer(); err != nil {
				break
			}
		}
		return a, nil
	}
}

// NoAddress reports whether name exists in the DNS without an address
// record: the system's name servers answer NOERROR, with no A and no AAAA
// record. It is false when the name does not exist (NXDOMAIN) or the servers
// cannot tell.
func NoAddress(ctx context.Context, name string) bool {
	var d net.Dialer
	return NoAddressAt(ctx, &d, func() ([]string, error) { return Nameservers("/etc/resolv.conf") }, name)
}

// NoAddressAt is NoAddress asking the given servers (as Query does) instead
// of the system's.
func NoAddressAt(ctx context.Context, d *net.Dialer, servers func() ([]string, error), name string) bool {
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		a, err := Query(ctx, d, servers, name, typ)
		if err != nil || a.RCode != dnsmessage.RCodeSuccess || a.Answers > 0 {
			return false
		}
	}
	return true
}
