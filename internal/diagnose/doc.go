// Package diagnose is the IP-HTTPS troubleshooter behind `iphttps diagnose
// URL`: the checks a Windows administrator makes by hand with the
// knowledge-base articles, run in order, each
// mapped to the code Windows would report.
//
// # Checks
//
// In run order (the names are the Check* constants and never change):
//
//	name                   needs                          FAIL codes
//	platform-ipv6          -                              0x643 (IPv6 disabled: sysctl, ipv6.disable=1)
//	platform-tun           -                              0x643 (no TUN driver); WARN without CAP_NET_ADMIN
//	platform-interface     -                              0x34 (a link of that name no running client holds); WARN when unknown
//	url                    -                              0x4be (IP literal, not https, no path)
//	dns                    url                            0x2af9 (NXDOMAIN), 0x2afc (no A/AAAA, SERVFAIL, timeout)
//	proxy                  url                            0x2af9 (proxy unreachable), 0x2afc (CONNECT refused: 403, 407, 5xx)
//	tcp                    dns, proxy                     0x274c (timeout), 0x274d (refused), 0x2743, 0x2751
//	tls                    tcp                            0x80090326 (alert), 0x90320 (client certificate), 0x2746, 0x274c
//	cert-chain             tls                            0x800b0109 (untrusted root)
//	cert-validity          tls                            0x800b0101 (expired, not yet valid); WARN within 14 days
//	cert-name              tls                            0x103 (Windows name rule); WARN for extra subject attributes
//	cert-usage             tls                            0x103 (no Server Authentication EKU; CryptoAPI: 0x800b0110)
//	cert-revocation        tls                            0x80092010 (revoked); WARN 0x80092013 (CRL unreachable)
//	iphttps-post           tls, cert-chain, cert-validity,
//	                       cert-name, cert-usage          0x2afc (not 200: IP-HTTPS disabled, wrong path)
//	router-advertisement   iphttps-post                   0x2afc (no RA, or no /64 prefix)
//
// A check whose needs failed is SKIPPED with the reason; the platform
// checks block nothing (the path to the server can be diagnosed anyway).
// With a proxy in effect a local name resolution failure is a WARN (the
// proxy resolves the name). Checks that do not apply (TLS for a plain-HTTP
// URL, the platform in userspace mode) are SKIPPED without blocking.
//
// # JSON
//
// `iphttps diagnose --json` writes one Report object (Schema 1):
//
//	{
//	  "schema": 1,
//	  "url": "https://da.example.test/IPHTTPS",
//	  "start": "2026-11-22T10:00:00Z",
//	  "result": "FAIL",                  // PASS, WARN or FAIL
//	  "failed": "tcp",                   // the first failed check (absent unless FAIL)
//	  "code": "0x274d",                  // its code; "0x0" unless FAIL
//	  "interface_status": "Failed to connect to the IPHTTPS server; waiting to reconnect",
//	  "checks": [
//	    {
//	      "name": "tcp",                 // a Check* constant
//	      "title": "TCP connection to the server's port",
//	      "status": "FAIL",              // PASS, WARN, FAIL or SKIPPED
//	      "code": "0x274d",              // absent when SKIPPED
//	      "interface_status": "...",     // FAIL only
//	      "saw": {"203.0.113.10:443": "..."},  // ordered; keys below
//	      "cause": "...", "fix": "...",  // cause is a note on a PASS
//	      "symbol": "WSAECONNREFUSED",   // the code's Windows name (WARN, FAIL)
//	      "remedies": ["..."],           // general remedies for the code, as `iphttps errcode` (WARN, FAIL)
//	      "reason": "...",               // SKIPPED only
//	      "duration_ns": 1234567
//	    }
//	  ],
//	  "duration_ns": 2345678
//	}
//
// Keys of "saw" that scripts may rely on: platform-interface "existing
// link", "owner"; dns "addresses", "direct query";
// proxy "configured", "routes in order", "route in use", "proxy answer"
// (the proxy's status, e.g. "407 Proxy Authentication Required"); tls
// "version", "cipher suite", "client certificate"; cert-* "subject",
// "subject alternative names", "issuer", "chain", "valid from", "valid
// until", "extended key usage"; iphttps-post "status line", "Server";
// router-advertisement "prefix", "MTU", "routes", "router lifetime". The
// values are text for people; their wording may improve.
package diagnose
