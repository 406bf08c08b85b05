package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kerberos in the lab: a real MIT krb5kdc in the Internet router, for
// proxies that require Negotiate (SPNEGO) authentication. Its realm, its
// database, its configuration files and keytabs live only in the lab
// directory; every Kerberos program the lab runs is pointed at them with
// KRB5_CONFIG and KRB5_KDC_PROFILE, never at /etc/krb5.conf.
const (
	// KerberosRealm is the lab's realm.
	KerberosRealm = "IPHTTPS.TEST"
	// KDCAddr is where krb5kdc answers (UDP and TCP port 88), on the
	// Internet router's loopback.
	KDCAddr = "192.0.2.88"
	// KerberosUser and KerberosPassword are the user principal StartKDC
	// creates (KerberosUser@KerberosRealm; pre-authentication required).
	KerberosUser     = "alice"
	KerberosPassword = "alice-lab-pass"
	// KerberosProxyName is a DNS name for a Negotiate proxy: the service
	// principal is HTTP/<name>, so the client must address the proxy by a
	// name. A lab that uses it gives dnsmasq the record (Options.DNSRecords,
	// see KerberosProxyRecord).
	KerberosProxyName = "krbproxy.example.test"

	// kdcProcName is the lab process name of the KDC.
	kdcProcName = "krb5kdc"
	// kdcDirName is the KDC's directory in the lab directory.
	kdcDirName = "kdc"
	// negotiateAuth is squid's Kerberos (SPNEGO) authentication helper.
	negotiateAuth = "/usr/lib/squid/negotiate_kerberos_auth"
	// serviceKeytab is the name of a Negotiate proxy's keytab in its
	// directory.
	serviceKeytab = "HTTP.keytab"
)

// hostNameRE matches the DNS host names a service principal may name.
var hostNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

// KerberosProxyRecord is the dnsmasq host record (Options.DNSRecords) of
// KerberosProxyName for the proxy address ip.
func KerberosProxyRecord(ip string) string { return KerberosProxyName + "," + ip }

// KerberosTools are the programs StartKDC runs, with their Debian packages.
func KerberosTools() []Tool {
	return []Tool{
		{Name: "krb5kdc", Package: "krb5-kdc"},
		{Name: "kdb5_util", Package: "krb5-kdc"},
		{Name: "kadmin.local", Package: "krb5-admin-server"},
	}
}

// CheckKerberosTools reports the Kerberos programs missing, as
// CheckProxyTools does, and squid's Negotiate helper.
func CheckKerberosTools() error {
	return checkTools(append(KerberosTools(), Tool{Name: negotiateAuth, Package: "squid"}))
}

// KDCDir is the KDC's directory: kdc.conf, krb5.conf, the database, its
// stash and the keytabs of KerberosKeytab.
func (l *Lab) KDCDir() string { return filepath.Join(l.dir, kdcDirName) }

// Krb5Conf is the krb5.conf of the lab realm, for the clients (and squid's
// helper): the realm, its KDC at KDCAddr, and example.test in the realm.
func (l *Lab) Krb5Conf() string { return filepath.Join(l.KDCDir(), "krb5.conf") }

// kdcProfile is the KDC's own configuration (KRB5_KDC_PROFILE).
func (l *Lab) kdcProfile() string { return filepath.Join(l.KDCDir(), "kdc.conf") }

// krbEnv is the environment entries that point the MIT Kerberos programs
// at the lab's files.
func (l *Lab) krbEnv() []string {
	return []string{"KRB5_CONFIG=" + l.Krb5Conf(), "KRB5_KDC_PROFILE=" + l.kdcProfile()}
}

// StartKDC creates the realm KerberosRealm in KDCDir (kdb5_util), with the
// user KerberosUser, runs krb5kdc in the Internet router on KDCAddr and
// waits (up to 15 s) until it listens. Down stops it and removes KDCDir.
func (l *Lab) StartKDC() error {
	if err := CheckKerberosTools(); err != nil {
		return fmt.Errorf("lab KDC: %w", err)
	}
	krb5kdc, err := lookTool("krb5kdc")
	if err != nil {
		return fmt.Errorf("lab KDC: %w", err)
	}
	envTool, err := lookTool("env")
	if err != nil {
		return fmt.Errorf("lab KDC: %w", err)
	}
	if err := l.writeKDCDir(); err != nil {
		return fmt.Errorf("lab KDC: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := l.createRealm(ctx); err != nil {
		return fmt.Errorf("lab KDC: %w", err)
	}
	inet := l.NS(RoleInet)
	if err := ip(ctx, "-n", inet, "addr", "replace", KDCAddr+"/32", "dev", "lo"); err != nil {
		return fmt.Errorf("lab KDC: %w", err)
	}
	// env execs krb5kdc in place: the process's PID is the KDC's. -n keeps
	// it in the foreground, logging to stderr (the lab log file).
	argv := append([]string{envTool}, l.krbEnv()...)
	argv = append(argv, krb5kdc, "-n", "-r", KerberosRealm)
	start := time.Now()
	if err := l.startProc(kdcProcName, inet, argv...); err != nil {
		return fmt.Errorf("lab KDC: %w", err)
	}
	addr := net.JoinHostPort(KDCAddr, "88")
	for {
		if p := l.proc(kdcProcName); p != nil && p.exited() {
			p.reported.Store(true) // reported here, not again by Down
			return fmt.Errorf("lab KDC: krb5kdc %s:\n%s", p.exitString(), LogTail(p.logPath, 20))
		}
		tcp, terr := l.ExecContext(ctx, inet, "ss", "-Hltn", "src", addr)
		udp, uerr := l.ExecContext(ctx, inet, "ss", "-Hlun", "src", addr)
		if terr == nil && uerr == nil && strings.Contains(string(tcp), addr) && strings.Contains(string(udp), addr) {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = l.StopKDC()
			return fmt.Errorf("lab KDC: krb5kdc does not listen on %s after 15s:\n%s", addr, LogTail(l.LogFile(kdcProcName), 20))
		case <-t.C:
		}
	}
	l.log.Info("KDC up", "realm", KerberosRealm, "addr", addr, "pid", l.PID(kdcProcName),
		"after", time.Since(start).Round(time.Millisecond))
	return nil
}

// StopKDC stops krb5kdc (SIGTERM) and waits up to 5 s; it returns an error
// unless the KDC exited with status 0. The realm's files stay until Down.
func (l *Lab) StopKDC() error {
	p := l.proc(kdcProcName)
	if p == nil {
		return fmt.Errorf("lab: %s not started", kdcProcName)
	}
	return p.stop(syscall.SIGTERM, 5*time.Second)
}

// writeKDCDir writes KDCDir with kdc.conf and krb5.conf. Squid's helper
// runs as squidUser and reads krb5.conf: the directory is root:proxy 0750,
// the database and its stash (written later by kdb5_util) are 0600.
func (l *Lab) writeKDCDir() error {
	u, err := user.Lookup(squidUser)
	if err != nil {
		return err
	}
	gid, _ := strconv.Atoi(u.Gid)
	if err := traversable(l.dir); err != nil {
		return fmt.Errorf("squid's helper runs as %q: %w", squidUser, err)
	}
	d := l.KDCDir()
	// A realm left from an earlier KDC in a kept lab directory is replaced.
	if err := os.RemoveAll(d); err != nil {
		return err
	}
	if err := os.Mkdir(d, 0o750); err != nil {
		return err
	}
	if err := os.Chown(d, 0, gid); err != nil {
		return err
	}
	files := map[string]string{"kdc.conf": kdcConf(d), "krb5.conf": krb5Conf()}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kdcConf is the KDC profile of the lab realm in directory d: files only in
// d, the KDC only on KDCAddr, AES keys only.
func kdcConf(d string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# iphttps lab KDC (generated by the lab)")
	w("[kdcdefaults]")
	w("\tkdc_listen = %s:88", KDCAddr)
	w("\tkdc_tcp_listen = %s:88", KDCAddr)
	w("[realms]")
	w("\t%s = {", KerberosRealm)
	w("\t\tdatabase_name = %s", filepath.Join(d, "principal"))
	w("\t\tkey_stash_file = %s", filepath.Join(d, "stash"))
	w("\t\tacl_file = %s", filepath.Join(d, "kadm5.acl"))
	w("\t\tmax_life = 1h")
	w("\t\tmax_renewable_life = 1h")
	w("\t\tsupported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal")
	w("\t}")
	w("[logging]")
	w("\tkdc = STDERR")
	w("\tadmin_server = FILE:%s", filepath.Join(d, "kadmin.log"))
	w("\tdefault = FILE:%s", filepath.Join(d, "krb5lib.log"))
	return b.String()
}

// krb5Conf is the krb5.conf of the lab realm: no DNS lookups, the KDC at
// KDCAddr, and the lab's example.test names in the realm.
func krb5Conf() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# iphttps lab realm (generated by the lab)")
	w("[libdefaults]")
	w("\tdefault_realm = %s", KerberosRealm)
	w("\tdns_lookup_kdc = false")
	w("\tdns_lookup_realm = false")
	w("\trdns = false")
	w("[realms]")
	w("\t%s = {", KerberosRealm)
	w("\t\tkdc = %s:88", KDCAddr)
	w("\t}")
	w("[domain_realm]")
	w("\t.example.test = %s", KerberosRealm)
	w("\texample.test = %s", KerberosRealm)
	return b.String()
}

// createRealm creates the database (with a random master password, kept
// only in the stash file) and the user principal.
func (l *Lab) createRealm(ctx context.Context) error {
	master := make([]byte, 24)
	if _, err := rand.Read(master); err != nil {
		return err
	}
	if _, err := l.krbRun(ctx, "kdb5_util", "create", "-s", "-r", KerberosRealm, "-P", base64.RawURLEncoding.EncodeToString(master)); err != nil {
		return err
	}
	return l.kadmin(ctx, "addprinc +requires_preauth -pw "+KerberosPassword+" "+KerberosUser)
}

// kadmin runs one kadmin.local query on the lab realm.
func (l *Lab) kadmin(ctx context.Context, query string) error {
	_, err := l.krbRun(ctx, "kadmin.local", "-r", KerberosRealm, "-q", query)
	return err
}

// krbRun runs a local Kerberos administration program (on the files, no
// network) with the lab's Kerberos environment. Its error carries the
// program's output but not the arguments (they may hold a password).
func (l *Lab) krbRun(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := lookTool(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), l.krbEnv()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	// kadmin.local reports some failures only in its output.
	if s := string(out); name == "kadmin.local" && (strings.Contains(s, "while ") || strings.Contains(s, "error")) {
		return out, fmt.Errorf("%s: %s", name, strings.TrimSpace(s))
	}
	return out, nil
}

// writeServiceKeytab creates the service principal HTTP/host (a random
// key) and writes its keytab into the proxy directory d, readable by the
// squid user's group only.
func (l *Lab) writeServiceKeytab(d, host string) error {
	if l.proc(kdcProcName) == nil {
		return errors.New("a Negotiate proxy needs the lab KDC: call StartKDC first")
	}
	u, err := user.Lookup(squidUser)
	if err != nil {
		return err
	}
	gid, _ := strconv.Atoi(u.Gid)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	spn := "HTTP/" + host
	kt := filepath.Join(d, serviceKeytab)
	if err := os.Remove(kt); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// The principal survives a restarted proxy: add it only once.
	if _, err := l.krbRun(ctx, "kadmin.local", "-r", KerberosRealm, "-q", "getprinc "+spn); err != nil {
		if err := l.kadmin(ctx, "addprinc -randkey "+spn); err != nil {
			return err
		}
	}
	if err := l.kadmin(ctx, "ktadd -k "+kt+" "+spn); err != nil {
		return err
	}
	if err := os.Chmod(kt, 0o640); err != nil {
		return err
	}
	return os.Chown(kt, 0, gid)
}

// ChangeServiceKey gives the service principal HTTP/host a new random key
// in the KDC and leaves the proxy's keytab as it is: the proxy can no longer
// read the tickets the KDC issues for it, as with a stale keytab.
func (l *Lab) ChangeServiceKey(host string) error {
	if l.proc(kdcProcName) == nil {
		return errors.New("lab: no KDC: call StartKDC first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := l.kadmin(ctx, "cpw -randkey HTTP/"+host); err != nil {
		return fmt.Errorf("lab: change the key of HTTP/%s: %w", host, err)
	}
	return nil
}

// KerberosKeytab writes a keytab of KerberosUser into KDCDir and returns
// its path, for a client that logs in with a keytab rather than the
// password (the keys stay those of KerberosPassword).
func (l *Lab) KerberosKeytab() (string, error) {
	if l.proc(kdcProcName) == nil {
		return "", errors.New("lab: no KDC: call StartKDC first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	kt := filepath.Join(l.KDCDir(), KerberosUser+".keytab")
	if err := os.Remove(kt); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("lab: %w", err)
	}
	if err := l.kadmin(ctx, "ktadd -norandkey -k "+kt+" "+KerberosUser); err != nil {
		return "", fmt.Errorf("lab: keytab of %s: %w", KerberosUser, err)
	}
	return kt, nil
}

// downKDC is Down's part for the KDC: it stops krb5kdc and removes KDCDir
// (the database, its stash and the keytabs) and the proxies' keytabs.
// procs is Down's snapshot of the lab's processes.
func (l *Lab) downKDC(procs map[string]*proc) []error {
	var errs []error
	if p := procs[kdcProcName]; p != nil {
		wasStopped, exited := p.stopped.Load(), p.exited()
		err := p.stop(syscall.SIGTERM, 5*time.Second)
		switch {
		case wasStopped || p.reported.Load():
		case exited && err != nil:
			errs = append(errs, fmt.Errorf("%s had exited before Down: %w\n%s", kdcProcName, err, LogTail(p.logPath, 20)))
		case err != nil:
			errs = append(errs, fmt.Errorf("stop %s: %w\n%s", kdcProcName, err, LogTail(p.logPath, 20)))
		}
	}
	if err := os.RemoveAll(l.KDCDir()); err != nil {
		errs = append(errs, fmt.Errorf("remove the lab realm: %w", err))
	}
	kts, _ := filepath.Glob(filepath.Join(l.dir, squidProcPrefix+"*", serviceKeytab))
	for _, kt := range kts {
		if err := os.Remove(kt); err != nil {
			errs = append(errs, fmt.Errorf("remove a proxy keytab: %w", err))
		}
	}
	return errs
}
