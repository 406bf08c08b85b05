package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// pacTimeout bounds fetching a PAC file and running FindProxyForURL.
const pacTimeout = 10 * time.Second

// PAC is a proxy auto-configuration script, run by the goja JavaScript
// engine with the standard PAC functions (Netscape's specification, as
// browsers and WinHTTP offer them).
type PAC struct {
	Location string
	// Timeout bounds one run of the script (pacTimeout when zero).
	Timeout  time.Duration
	prog     *goja.Program
	resolver *net.Resolver
}

// LoadPAC reads a PAC script from a file path or an http(s) URL.
func LoadPAC(ctx context.Context, location string) (*PAC, error) {
	var src []byte
	var err error
	if strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://") {
		ctx, cancel := context.WithTimeout(ctx, pacTimeout)
		defer cancel()
		req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
		if rerr != nil {
			return nil, fmt.Errorf("PAC %s: %w", location, rerr)
		}
		// Never through a proxy; no idle connection kept behind.
		hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		resp, rerr := hc.Do(req)
		if rerr != nil {
			return nil, fmt.Errorf("PAC %s: %w", location, rerr)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("PAC %s: %s", location, resp.Status)
		}
		src, err = io.ReadAll(io.LimitReader(resp.Body, maxPAC+1))
		if err == nil && len(src) > maxPAC {
			return nil, fmt.Errorf("PAC %s is larger than %d bytes", location, maxPAC)
		}
	} else {
		src, err = os.ReadFile(location)
	}
	if err != nil {
		return nil, fmt.Errorf("PAC %s: %w", location, err)
	}
	prog, err := goja.Compile(location, string(src), false)
	if err != nil {
		return nil, fmt.Errorf("PAC %s: %w", location, err)
	}
	p := &PAC{Location: location, prog: prog, resolver: net.DefaultResolver}
	_, stop, err := p.vm(ctx)
	if err != nil {
		return nil, err
	}
	stop()
	return p, nil
}

// maxPAC is the largest PAC script accepted.
const maxPAC = 1 << 20

// vm runs the script in a fresh runtime with the PAC functions, under the
// time limit, and returns it with the function that ends the limit. The
// limit and ctx's end interrupt the script wherever it is.
func (p *PAC) vm(ctx context.Context) (*goja.Runtime, func(), error) {
	vm := goja.New()
	limit := p.Timeout
	if limit <= 0 {
		limit = pacTimeout
	}
	timer := time.AfterFunc(limit, func() { vm.Interrupt("PAC script ran too long") })
	unhook := context.AfterFunc(ctx, func() { vm.Interrupt(ctx.Err()) })
	stop := func() { timer.Stop(); unhook() }
	resolve := func(host string) string {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		addrs, err := p.resolver.LookupIPAddr(ctx, host)
		if err != nil || len(addrs) == 0 {
			return ""
		}
		for _, a := range addrs {
			if a.IP.To4() != nil {
				return a.IP.String()
			}
		}
		return addrs[0].IP.String()
	}
	funcs := map[string]any{
		"isPlainHostName": func(h string) bool { return !strings.Contains(h, ".") },
		"dnsDomainIs": func(h, d string) bool {
			return strings.HasSuffix(strings.ToLower(h), strings.ToLower(d))
		},
		"localHostOrDomainIs": func(h, hd string) bool {
			h, hd = strings.ToLower(h), strings.ToLower(hd)
			return h == hd || (!strings.Contains(h, ".") && strings.HasPrefix(hd, h+"."))
		},
		"isResolvable":    func(h string) bool { return resolve(h) != "" },
		"dnsResolve":      func(h string) any { return nullIfEmpty(vm, resolve(h)) },
		"myIpAddress":     func() string { return myIPAddress() },
		"dnsDomainLevels": func(h string) int { return strings.Count(h, ".") },
		"shExpMatch":      func(s, pattern string) bool { return shExpMatch(s, pattern) },
		"isInNet": func(h, pattern, mask string) bool {
			ip := net.ParseIP(h)
			if ip == nil {
				ip = net.ParseIP(resolve(h))
			}
			p, m := net.ParseIP(pattern).To4(), net.ParseIP(mask).To4()
			if ip == nil || ip.To4() == nil || p == nil || m == nil {
				return false
			}
			return ip.To4().Mask(net.IPMask(m)).Equal(p.Mask(net.IPMask(m)))
		},
		"weekdayRange": func(c goja.FunctionCall) goja.Value { return vm.ToValue(weekdayRange(c.Arguments)) },
		"timeRange":    func(c goja.FunctionCall) goja.Value { return vm.ToValue(timeRange(c.Arguments)) },
		"dateRange":    func(c goja.FunctionCall) goja.Value { return vm.ToValue(dateRange(c.Arguments)) },
		"alert":        func(string) {},
	}
	for name, fn := range funcs {
		if err := vm.Set(name, fn); err != nil {
			stop()
			return nil, nil, err
		}
	}
	if _, err := vm.RunProgram(p.prog); err != nil {
		stop()
		return nil, nil, fmt.Errorf("PAC %s: %w", p.Location, err)
	}
	if _, ok := goja.AssertFunction(vm.Get("FindProxyForURL")); !ok {
		stop()
		return nil, nil, fmt.Errorf("PAC %s defines no function FindProxyForURL", p.Location)
	}
	return vm, stop, nil
}

func nullIfEmpty(vm *goja.Runtime, s string) goja.Value {
	if s == "" {
		return goja.Null()
	}
	return vm.ToValue(s)
}

// shExpMatch matches a shell expression ("*" and "?"); unlike path.Match,
// "*" also matches "/", as in browsers.
func shExpMatch(s, pattern string) bool {
	const sep = "\x00"
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", sep), strings.ReplaceAll(s, "/", sep))
	return err == nil && ok
}

func myIPAddress() string {
	// The address of the route to the Internet, without sending anything.
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// FindProxy runs FindProxyForURL(url, host) and returns the routes it names,
// in order ("PROXY h:p" and "DIRECT"; SOCKS entries are skipped).
func (p *PAC) FindProxy(ctx context.Context, url, host string) ([]Proxy, error) {
	vm, stop, err := p.vm(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	fn, _ := goja.AssertFunction(vm.Get("FindProxyForURL"))
	v, err := fn(goja.Undefined(), vm.ToValue(url), vm.ToValue(host))
	if err != nil {
		return nil, fmt.Errorf("PAC %s: FindProxyForURL: %w", p.Location, err)
	}
	return parsePACResult(v.String())
}

func parsePACResult(s string) ([]Proxy, error) {
	var out []Proxy
	for _, item := range strings.Split(s, ";") {
		f := strings.Fields(item)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "DIRECT":
			out = append(out, Proxy{})
		case "PROXY", "HTTP":
			if len(f) < 2 {
				continue
			}
			p, err := Parse("http://" + f[1])
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the PAC script named no usable proxy (only PROXY and DIRECT entries are usable for IP-HTTPS)")
	}
	return out, nil
}

// PACSource loads a PAC script on first use and keeps it; a failed load is
// retried on the next use.
type PACSource struct {
	Location string
	mu       sync.Mutex
	pac      *PAC
}

// Get returns the loaded script.
func (s *PACSource) Get(ctx context.Context) (*PAC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pac != nil {
		return s.pac, nil
	}
	p, err := LoadPAC(ctx, s.Location)
	if err != nil {
		return nil, err
	}
	s.pac = p
	return p, nil
}
