// Package diagnose is the DirectAccess troubleshooter behind `iphttps
// diagnose [URL] [--6to4-relay IPV4] [--teredo-server ADDR]`: the checks a
// Windows administrator makes by hand with the knowledge-base articles,
// run in order, each mapped to the code Windows would report. IP-HTTPS is
// diagnosed when a URL is given; with the server's other methods, their
// checks run first, in the order DirectAccess tries the methods (6to4,
// Teredo, IP-HTTPS), with the clients' own tests (packages sixtofour/probe
// and teredo/client's Probe: one copy each), and a verdict says which
// method would carry the traffic.
//
// # Checks
//
// In run order (the names are the Check* constants and never change):
//
//	name                   needs                          FAIL codes
//	platform-ipv6          -                              0x643 (IPv6 disabled: sysctl, ipv6.disable=1)
//	platform-tun           -                              0x643 (no TUN driver); WARN without CAP_NET_ADMIN
//	platform-interface     -                              0x34 (a link of that name no running client holds); WARN when unknown
//	6to4-address           -                              0x2743 (the local IPv4 address towards the relay is not
//	                                                      public: the range named; or no route to the relay)
//	6to4-mapping           6to4-address                   0x2743 (the relay's Teredo server, UDP 3544, sees another
//	                                                      address: behind a NAT); SKIPPED "not run" when no Teredo
//	                                                      server answers within 2 s (the reachability test decides)
//	6to4-reachability      6to4-address, 6to4-mapping     0x274c (no echo from the relay's 6to4 address over protocol
//	                                                      41: 2 s x 3); SKIPPED without CAP_NET_RAW (raw socket)
//	teredo-primary         -                              0x274c (no valid router advertisement from primary:3544 in
//	                                                      the client's 8 s: UDP 3544 blocked or no Teredo server),
//	                                                      0x2afc (a mapping that is not global), 0x2af9 (the name)
//	teredo-secondary       teredo-primary                 WARN 0x274c (only the secondary address is silent: the NAT
//	                                                      type cannot be determined)
//	teredo-nat             teredo-secondary               0x2afc (symmetric NAT), 0x274c (unknown: the client does not
//	                                                      qualify without the secondary); PASS none, cone, restricted
//	teredo-relay           teredo-nat                     0x274c (no echo from --teredo-echo-host through the server:
//	                                                      DirectAccess needs intranet hosts to answer ICMPv6 echo);
//	                                                      SKIPPED without --teredo-echo-host
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
// The 6to4 checks run with --6to4-relay, the Teredo checks with
// --teredo-server, the checks from url on with a URL (CheckNames,
// SixToFourCheckNames, TeredoCheckNames). The 6to4 and Teredo checks get
// at least their clients' budgets, whatever --timeout says; their FAILs
// carry no IP-HTTPS Interface Status, and their remedies are the notes of
// MethodNotes (what `iphttps errcode` prints for those checks) rather than
// the code's IP-HTTPS remedies.
//
// A check whose needs failed is SKIPPED with the reason; the platform
// checks block nothing (the path to the server can be diagnosed anyway).
// With a proxy in effect a local name resolution failure is a WARN (the
// proxy resolves the name). Checks that do not apply (TLS for a plain-HTTP
// URL, the platform in userspace mode) are SKIPPED without blocking.
//
// # Verdict
//
// With 6to4 or Teredo diagnosed, the verdict names the first method, in
// DirectAccess's order, that would carry the traffic: none of its checks
// (nor a platform check) failed and the check that decides it passed
// (6to4-reachability, teredo-nat, router-advertisement). For each method
// diagnosed before it (each one when none would), it gives the first failed
// check with its code and cause, or the deciding check's skip reason.
//
// # JSON
//
// `iphttps diagnose --json` writes one Report object (Schema 1):
//
//	{
//	  "schema": 1,
//	  "url": "https://da.example.test/IPHTTPS", // "" when IP-HTTPS was not diagnosed
//	  "6to4_relay": "203.0.113.10",      // with --6to4-relay only
//	  "teredo_server": "203.0.113.10",   // with --teredo-server only
//	  "start": "2026-11-22T10:00:00Z",
//	  "result": "FAIL",                  // PASS, WARN or FAIL
//	  "failed": "tcp",                   // the first failed check (absent unless FAIL)
//	  "code": "0x274d",                  // its code; "0x0" unless FAIL
//	  "interface_status": "Failed to connect to the IPHTTPS server; waiting to reconnect",
//	                                     // "" when a 6to4 or Teredo check failed, or without IP-HTTPS
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
//	  "verdict": {                       // with --6to4-relay or --teredo-server only
//	    "method": "Teredo",              // 6to4, Teredo, IP-HTTPS; "" when none would carry the traffic
//	    "reasons": [                     // the methods before it, in order
//	      {"method": "6to4", "check": "6to4-mapping", "code": "0x2743", "cause": "behind a NAT: ..."}
//	    ]                                // "code" is absent for a skipped check
//	  },
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
// router-advertisement "prefix", "MTU", "routes", "router lifetime";
// 6to4-address "local address", "6to4 address"; 6to4-mapping "sees this
// host at"; 6to4-reachability "echo reply"; teredo-primary "primary",
// "local", "prefix", "mapping", "cone test"; teredo-secondary "mapping";
// teredo-nat "NAT" (netsh's words: "none (global connectivity)", "cone",
// "restricted", "symmetric"), "NAT special behaviour", "external mapping";
// teredo-relay "from", "echo reply". The values are text for people; their
// wording may improve.
package diagnose
