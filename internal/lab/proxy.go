package lab

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// HTTP proxies in the lab: a real squid in the Internet router, which the
// clients reach through their default route, and an nftables rule that
// keeps clients from reaching the server any other way. Like the rest of
// the lab it lives only inside the lab's namespaces and documentation
// addresses.
const (
	// ProxyAddr is the address of the first proxy, on the Internet
	// router's loopback.
	ProxyAddr = "192.0.2.80"
	// ProxyAddr2 is the address of a second proxy.
	ProxyAddr2 = "192.0.2.81"
	// ProxyPort is the port every lab proxy listens on.
	ProxyPort = 3128
	// ProxyUser and ProxyPassword are the Basic credentials a proxy with
	// ProxyOptions.Auth accepts.
	ProxyUser     = "lab"
	ProxyPassword = "labpass"

	// proxyNet holds the proxy addresses.
	proxyNet = "192.0.2.0/24"
	// clientNet holds the clients' Internet addresses (see ClientIPv4).
	clientNet = "198.51.100.0/24"
	// squidUser is the unprivileged user squid switches to: squid refuses
	// to run as root, and Debian's squid is built --with-default-user=proxy.
	squidUser = "proxy"
	// squidProcPrefix starts the lab process name of each squid
	// ("squid-192.0.2.80").
	squidProcPrefix = "squid-"
	// blockTable is the nftables table of BlockDirect, in the Internet
	// router's namespace.
	blockTable = "iphttps_lab_block_direct"
	// shmDir is where squid keeps its shared memory segments.
	shmDir = "/dev/shm"
)

// ProxyOptions configure a proxy started with StartProxy.
type ProxyOptions struct {
	// Addr is the IPv4 address (in 192.0.2.0/24) squid listens on, port
	// ProxyPort; it is added to the Internet router's loopback. Empty:
	// ProxyAddr. Each address is its own squid, so two proxies can run at
	// once.
	Addr string
	// Auth requires Basic authentication as ProxyUser / ProxyPassword
	// (squid's basic_ncsa_auth): CONNECT without them, or with others, gets
	// 407.
	Auth bool
	// DenyServer makes squid refuse CONNECT to ServerName with 403.
	DenyServer bool
	// Negotiate, a host name, requires Kerberos (SPNEGO) authentication
	// for the service principal HTTP/<Negotiate>@KerberosRealm (squid's
	// negotiate_kerberos_auth, with a keytab from the lab KDC: StartKDC
	// first). Clients must address the proxy by that name (see
	// KerberosProxyName). With Auth too, squid offers Negotiate first, then
	// Basic.
	Negotiate string
}

// ProxyTools are the programs StartProxy and BlockDirect run, with their
// Debian packages.
func ProxyTools() []Tool {
	return []Tool{
		{Name: "squid", Package: "squid"},
		{Name: "nft", Package: "nftables"},
	}
}

// CheckProxyTools reports the proxy programs missing, as CheckTools does,
// and the user squid runs as.
func CheckProxyTools() error {
	if err := checkTools(append(ProxyTools(), Tool{Name: ncsaAuth, Package: "squid"})); err != nil {
		return err
	}
	if _, err := user.Lookup(squidUser); err != nil {
		return fmt.Errorf("squid runs as the user %q (it refuses root): %w", squidUser, err)
	}
	return nil
}

// ncsaAuth is squid's Basic authentication helper for htpasswd files.
const ncsaAuth = "/usr/lib/squid/basic_ncsa_auth"

// ProxyURL is the proxy URL of a proxy address ("192.0.2.80:3128" from
// StartProxy, or a bare IP for port ProxyPort).
func ProxyURL(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, strconv.Itoa(ProxyPort))
	}
	return "http://" + addr
}

// ProxyName is the lab process name of the proxy on ip ("squid-192.0.2.80"):
// its output goes to LogFile(ProxyName(ip)).
func ProxyName(ip string) string { return squidProcPrefix + ip }

// ProxyDir is the directory of the proxy on ip: squid.conf, passwd,
// access.log, cache.log and squid.pid.
func (l *Lab) ProxyDir(ip string) string { return filepath.Join(l.dir, ProxyName(ip)) }

// ProxyAccessLog is squid's access log of the proxy on ip. Squid writes a
// line when a transaction ends: a CONNECT tunnel appears only once it is
// closed, a refusal (403, 407) at once.
func (l *Lab) ProxyAccessLog(ip string) string {
	return filepath.Join(l.ProxyDir(ip), "access.log")
}

// StartProxy starts squid in the Internet router as o says and waits (up to
// 15 s) until it listens. It returns the proxy's address ("192.0.2.80:3128").
// Down stops it; StopProxy stops it earlier.
func (l *Lab) StartProxy(o ProxyOptions) (string, error) {
	if o.Addr == "" {
		o.Addr = ProxyAddr
	}
	a, err := netip.ParseAddr(o.Addr)
	if err != nil || !a.Is4() || !netip.MustParsePrefix(proxyNet).Contains(a) || a.String() == DNSAddr {
		return "", fmt.Errorf("lab proxy: address %q: want an IPv4 address in %s other than %s", o.Addr, proxyNet, DNSAddr)
	}
	host := a.String()
	addr := net.JoinHostPort(host, strconv.Itoa(ProxyPort))
	if err := CheckProxyTools(); err != nil {
		return "", fmt.Errorf("lab proxy: %w", err)
	}
	squid, err := lookTool("squid")
	if err != nil {
		return "", fmt.Errorf("lab proxy: %w", err)
	}
	if o.Negotiate != "" {
		if !hostNameRE.MatchString(o.Negotiate) {
			return "", fmt.Errorf("lab proxy: Negotiate %q: want a DNS host name", o.Negotiate)
		}
		if err := CheckKerberosTools(); err != nil {
			return "", fmt.Errorf("lab proxy: %w", err)
		}
	}
	if err := l.writeProxyDir(host, o); err != nil {
		return "", err
	}
	var env []string
	if o.Negotiate != "" {
		if err := l.writeServiceKeytab(l.ProxyDir(host), o.Negotiate); err != nil {
			return "", fmt.Errorf("lab proxy: %w", err)
		}
		// squid passes its environment to its helpers: the Kerberos library
		// reads the lab's krb5.conf, not /etc/krb5.conf. env execs squid
		// in place, so the PID is still squid's.
		envTool, err := lookTool("env")
		if err != nil {
			return "", fmt.Errorf("lab proxy: %w", err)
		}
		env = append([]string{envTool}, l.krbEnv()...)
	}
	inet := l.NS(RoleInet)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// replace, not add: a proxy started again on the same address.
	if err := ip(ctx, "-n", inet, "addr", "replace", host+"/32", "dev", "lo"); err != nil {
		return "", fmt.Errorf("lab proxy: %w", err)
	}
	service := squidService(l.opts.Prefix, a)
	// A squid that died leaves its shared memory behind, and the next one
	// with that service name would fail on it.
	removeSquidShm(service)
	name := ProxyName(host)
	argv := append(env, squid, "-N", "-d", "1", "-n", service, "-f", filepath.Join(l.ProxyDir(host), "squid.conf"))
	start := time.Now()
	if err := l.startProc(name, inet, argv...); err != nil {
		return "", fmt.Errorf("lab proxy: %w", err)
	}
	for {
		if p := l.proc(name); p != nil && p.exited() {
			p.reported.Store(true) // reported here, not again by Down
			return "", fmt.Errorf("lab proxy: squid on %s %s:\n%s", addr, p.exitString(), LogTail(p.logPath, 20))
		}
		out, err := l.ExecContext(ctx, inet, "ss", "-Hltn", "src", addr)
		if err == nil && strings.Contains(string(out), addr) {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = l.StopProxy(host)
			return "", fmt.Errorf("lab proxy: squid does not listen on %s after 15s:\n%s", addr, LogTail(l.LogFile(name), 20))
		case <-t.C:
		}
	}
	l.log.Info("proxy up", "addr", addr, "auth", o.Auth, "negotiate", o.Negotiate, "deny_server", o.DenyServer,
		"pid", l.PID(name), "after", time.Since(start).Round(time.Millisecond))
	return addr, nil
}

// StopProxy stops the proxy on ip (SIGTERM: squid closes open tunnels at
// once, shutdown_lifetime 0, and exits in about 1.5 s) and waits up to 10 s.
// It returns an error unless squid exited with status 0.
func (l *Lab) StopProxy(ip string) error {
	name := ProxyName(ip)
	p := l.proc(name)
	if p == nil {
		return fmt.Errorf("lab: %s not started", name)
	}
	err := p.stop(syscall.SIGTERM, 10*time.Second)
	if a, perr := netip.ParseAddr(ip); perr == nil {
		removeSquidShm(squidService(l.opts.Prefix, a))
	}
	return err
}

// writeProxyDir writes the squid directory of the proxy on ip: squid.conf
// and, for Auth, the password file. Squid switches to squidUser before it
// opens its logs, and its helpers run as that user: the directory belongs
// to it, and the lab directory must let it through.
func (l *Lab) writeProxyDir(ip string, o ProxyOptions) error {
	u, err := user.Lookup(squidUser)
	if err != nil {
		return fmt.Errorf("lab proxy: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := traversable(l.dir); err != nil {
		return fmt.Errorf("lab proxy: squid runs as %q: %w", squidUser, err)
	}
	d := l.ProxyDir(ip)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return fmt.Errorf("lab proxy: %w", err)
	}
	if err := os.Chown(d, uid, gid); err != nil {
		return fmt.Errorf("lab proxy: %w", err)
	}
	var passwd string
	if o.Auth {
		passwd = filepath.Join(d, "passwd")
		line := ProxyUser + ":" + apr1(ProxyPassword, randomSalt()) + "\n"
		if err := os.WriteFile(passwd, []byte(line), 0o640); err != nil {
			return fmt.Errorf("lab proxy: %w", err)
		}
		if err := os.Chown(passwd, 0, gid); err != nil {
			return fmt.Errorf("lab proxy: %w", err)
		}
	}
	conf := squidConf(d, ip, passwd, o)
	if err := os.WriteFile(filepath.Join(d, "squid.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("lab proxy: %w", err)
	}
	return nil
}

// traversable lets other users pass through dir (o+x, not o+r: the keys in
// the lab directory are 0600 anyway) and checks that its parents let them.
func traversable(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(dir, st.Mode().Perm()|0o011); err != nil {
			return err
		}
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("it cannot enter %s (mode %s): use a lab directory other users can reach", p, st.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// squidConf is the configuration of a lab squid in directory d: a tunnelling
// proxy for the lab's clients, with no disk cache, files only in d, and a
// quick shutdown.
func squidConf(d, ip, passwd string, o ProxyOptions) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# iphttps lab proxy on %s:%d (generated by the lab; squid 5)", ip, ProxyPort)
	w("http_port %s:%d", ip, ProxyPort)
	w("visible_hostname proxy-%s.lab.example.test", strings.ReplaceAll(ip, ".", "-"))
	w("cache_effective_user %s", squidUser)
	w("pid_filename %s", filepath.Join(d, "squid.pid"))
	w("cache_log %s", filepath.Join(d, "cache.log"))
	w("access_log stdio:%s", filepath.Join(d, "access.log"))
	w("cache_store_log none")
	w("logfile_rotate 0")
	w("coredump_dir %s", d)
	w("cache deny all")
	w("cache_mem 8 MB")
	w("netdb_filename none")
	w("pinger_enable off")
	w("icp_port 0")
	w("htcp_port 0")
	w("hosts_file none")
	w("dns_nameservers %s", DNSAddr)
	w("shutdown_lifetime 0 seconds")
	if o.Negotiate != "" {
		// Offered first. The replay cache goes in d (-c), not /var/tmp.
		w("auth_param negotiate program %s -s HTTP/%s@%s -k %s -c %s", negotiateAuth, o.Negotiate, KerberosRealm, filepath.Join(d, serviceKeytab), d)
		w("auth_param negotiate children 2 startup=1 idle=1")
		w("auth_param negotiate keep_alive on")
	}
	if passwd != "" {
		w("auth_param basic program %s %s", ncsaAuth, passwd)
		w("auth_param basic children 2 startup=1 idle=1")
		w("auth_param basic realm iphttps lab proxy")
	}
	auth := passwd != "" || o.Negotiate != ""
	if auth {
		w("acl authenticated proxy_auth REQUIRED")
	}
	w("acl lab_clients src %s", clientNet)
	w("acl SSL_ports port 443")
	w("acl CONNECT method CONNECT")
	w("acl iphttps_server dstdomain %s", ServerName)
	w("http_access deny CONNECT !SSL_ports")
	w("http_access deny !lab_clients")
	if o.DenyServer {
		w("http_access deny CONNECT iphttps_server")
	}
	if auth {
		w("http_access deny !authenticated")
	}
	w("http_access allow lab_clients")
	w("http_access deny all")
	return b.String()
}

// squidService is the squid service name (-n) of the proxy on a in the lab
// with prefix: squid names its shared memory segments /dev/shm/<service>-*,
// so every lab squid needs its own. Squid wants at most 32 alphanumerics.
func squidService(prefix string, a netip.Addr) string {
	h := fnv.New32a()
	h.Write([]byte(prefix))
	b := a.As4()
	return fmt.Sprintf("iphttpslab%08x%02x%02x%02x%02x", h.Sum32(), b[0], b[1], b[2], b[3])
}

// removeSquidShm removes the shared memory segments of squid service name
// (squid removes them when it exits normally, not when it dies).
func removeSquidShm(service string) {
	files, _ := filepath.Glob(filepath.Join(shmDir, service+"-*.shm"))
	for _, f := range files {
		_ = os.Remove(f)
	}
}

// downProxies is Down's part for the proxies: it stops every squid (after
// the daemons Down stopped first), removes their shared memory and the
// BlockDirect table. procs is Down's snapshot of the lab's processes.
func (l *Lab) downProxies(procs map[string]*proc) []error {
	type result struct {
		name string
		p    *proc
		err  error
		// how the process stood before Down
		wasStopped, exited bool
	}
	results := make(chan result)
	n := 0
	// In parallel: each squid takes about 1.5 s to shut down.
	for name, p := range procs {
		if !strings.HasPrefix(name, squidProcPrefix) {
			continue
		}
		n++
		go func() {
			r := result{name: name, p: p, wasStopped: p.stopped.Load(), exited: p.exited()}
			r.err = p.stop(syscall.SIGTERM, 10*time.Second)
			results <- r
		}()
	}
	var errs []error
	for range n {
		r := <-results
		switch {
		case r.wasStopped || r.p.reported.Load():
		case r.exited && r.err != nil:
			errs = append(errs, fmt.Errorf("%s had exited before Down: %w\n%s", r.name, r.err, LogTail(r.p.logPath, 20)))
		case r.err != nil:
			errs = append(errs, fmt.Errorf("stop %s: %w\n%s", r.name, r.err, LogTail(r.p.logPath, 20)))
		}
		if a, err := netip.ParseAddr(strings.TrimPrefix(r.name, squidProcPrefix)); err == nil {
			removeSquidShm(squidService(l.opts.Prefix, a))
		}
	}
	// The KDC of the Negotiate proxies: see kdc.go.
	errs = append(errs, l.downKDC(procs)...)
	// Only a lab that used nft (BlockDirect wrote its ruleset) needs it.
	if _, err := os.Stat(filepath.Join(l.dir, nftFile)); err == nil && NetnsExists(l.NS(RoleInet)) {
		if err := l.UnblockDirect(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// BlockDirect makes the Internet router drop the clients' TCP to the
// server's port 443 (forwarded traffic from 198.51.100.0/24 to
// 203.0.113.10), so clients reach the server only through a proxy: squid
// runs in the router itself, so its connections are not forwarded. The
// rule lives in the nftables table iphttps_lab_block_direct of the router's
// namespace; calling BlockDirect again is harmless.
func (l *Lab) BlockDirect() error {
	ruleset := fmt.Sprintf(`table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip saddr %[2]s ip daddr %[3]s tcp dport 443 counter drop comment "iphttps lab: clients reach the server only through a proxy"
	}
}
`, blockTable, clientNet, ServerIPv4)
	if err := l.nft(ruleset); err != nil {
		return fmt.Errorf("lab: block direct access to the server: %w", err)
	}
	l.log.Info("direct access to the server blocked", "namespace", l.NS(RoleInet), "table", blockTable)
	return nil
}

// UnblockDirect removes the BlockDirect table (harmless if there is none).
func (l *Lab) UnblockDirect() error {
	if err := l.nft(fmt.Sprintf("table ip %[1]s\ndelete table ip %[1]s\n", blockTable)); err != nil {
		return fmt.Errorf("lab: unblock direct access to the server: %w", err)
	}
	return nil
}

// counterRE matches an nftables rule counter.
var counterRE = regexp.MustCompile(`counter packets (\d+) bytes \d+`)

// DirectBlocked returns how many packets the BlockDirect rule has dropped.
func (l *Lab) DirectBlocked() (uint64, error) {
	out, err := l.Exec(l.NS(RoleInet), "nft", "list", "table", "ip", blockTable)
	if err != nil {
		return 0, fmt.Errorf("lab: %w: %s", err, strings.TrimSpace(string(out)))
	}
	m := counterRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("lab: no counter in nft list table ip %s:\n%s", blockTable, out)
	}
	return strconv.ParseUint(string(m[1]), 10, 64)
}

// nftFile is the last ruleset loaded by BlockDirect or UnblockDirect, in the
// lab directory.
const nftFile = "blockdirect.nft"

// nft loads ruleset into the Internet router's nftables (the ruleset is
// kept in the lab directory as nftFile, to repeat by hand).
func (l *Lab) nft(ruleset string) error {
	f := filepath.Join(l.dir, nftFile)
	if err := os.WriteFile(f, []byte(ruleset), 0o644); err != nil {
		return err
	}
	out, err := l.Exec(l.NS(RoleInet), "nft", "-f", f)
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StartClientEnv is StartClient with environment variables ("NAME=value",
// e.g. HTTPS_PROXY=...) added to the client's environment. The client runs
// under env(1), which execs it in place, so its PID is still the daemon's.
func (l *Lab) StartClientEnv(i int, env []string, extra ...string) error {
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("lab: environment entry %q: want NAME=value", e)
		}
	}
	if i < 1 || i > l.opts.Clients {
		return fmt.Errorf("lab: no client %d (the lab has %d)", i, l.opts.Clients)
	}
	if l.opts.Binary == "" {
		return errors.New("lab: no iphttps binary configured (Options.Binary)")
	}
	envTool, err := lookTool("env")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	argv := append([]string{envTool, "--"}, env...)
	argv = append(argv, l.ClientArgs(i)...)
	argv = append(argv, extra...)
	if err := l.startProc(ClientName(i), l.ClientNS(i), argv...); err != nil {
		return err
	}
	l.log.Info("client started", "client", ClientName(i), "pid", l.PID(ClientName(i)), "env", env)
	return nil
}

// apr1 is the Apache MD5 crypt ("$apr1$salt$hash") of password, the
// htpasswd -m format; squid's basic_ncsa_auth accepts it (and $1$, $5$,
// $6$, DES crypt), as does `openssl passwd -apr1`.
func apr1(password, salt string) string {
	const magic = "$apr1$"
	if len(salt) > 8 {
		salt = salt[:8]
	}
	pw := []byte(password)
	alt := md5.Sum([]byte(password + salt + password))
	ctx := md5.New()
	ctx.Write([]byte(password + magic + salt))
	for n := len(pw); n > 0; n -= 16 {
		ctx.Write(alt[:min(n, 16)])
	}
	for n := len(pw); n != 0; n >>= 1 {
		if n&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write(pw[:1])
		}
	}
	final := ctx.Sum(nil)
	for i := range 1000 {
		h := md5.New()
		if i&1 != 0 {
			h.Write(pw)
		} else {
			h.Write(final)
		}
		if i%3 != 0 {
			h.Write([]byte(salt))
		}
		if i%7 != 0 {
			h.Write(pw)
		}
		if i&1 != 0 {
			h.Write(final)
		} else {
			h.Write(pw)
		}
		final = h.Sum(nil)
	}
	var out strings.Builder
	out.WriteString(magic + salt + "$")
	to64 := func(v uint32, n int) {
		for ; n > 0; n-- {
			out.WriteByte(cryptAlphabet[v&0x3f])
			v >>= 6
		}
	}
	for _, g := range [][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		to64(uint32(final[g[0]])<<16|uint32(final[g[1]])<<8|uint32(final[g[2]]), 4)
	}
	to64(uint32(final[11]), 2)
	return out.String()
}

// cryptAlphabet is the base-64 alphabet of crypt(3).
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomSalt is an 8-character crypt salt.
func randomSalt() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = cryptAlphabet[int(b[i])%len(cryptAlphabet)]
	}
	return string(b)
}
