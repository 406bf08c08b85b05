// Package lab builds the iphttps test topology out of Linux network
// namespaces on one machine, and drives real iphttps daemons inside it. It
// backs both `iphttps lab` (a demonstration a newcomer can explore) and the
// end-to-end tests in test/e2e.
//
// The topology (namespace names carry a configurable prefix, "iphttps-" by
// default):
//
//	<p>cli1 ─┐                      ┌─ <p>edge  IP-HTTPS server 203.0.113.10:443
//	<p>cli2 ─┼── <p>inet  router, ──┤     └── <p>corp  intranet host 2001:db8:c0::10
//	  ...   ─┘   DNS 192.0.2.53     │                  (web server on port 80)
//
// IPv4 "Internet" addresses come from 198.51.100.0/24 (clients) and
// 203.0.113.0/24 (server); the DNS server is a real dnsmasq answering
// da.example.test; the IP-HTTPS link prefix is 2001:db8:1::/64 and the
// intranet 2001:db8:c0::/64. Every address lives inside namespaces the lab
// creates, and nothing is ever sent elsewhere.
//
// The 6to4 test lab ([SixToFourUp]) is a topology of its own for 6to4 (IPv6
// straight inside IPv4 protocol 41): an Internet router; the DirectAccess
// server's host, 203.0.113.10, where [SixToFourLab.StartServer] runs
// `iphttps server --6to4 203.0.113.10 --6to4-lab`, with the intranet host
// 2001:db8:c0::10 (web server on port 80) behind it; and clients of three
// kinds: public (198.51.100.10+N), behind a masquerading NAT whose inside
// network looks public but is not routed (198.51.100.128/25: the
// pseudo-public case), or public behind a firewall on the router that
// drops protocol 41 and counts it. The end-to-end tests drive the server's
// relay there from an independent peer, test/e2e/testdata/sixtofour_peer.py
// (scapy and raw sockets).
//
// Namespaces and links are managed with the ip(8) command (iproute2), so what
// the lab does can be repeated by hand; in-process sockets enter a namespace
// with [Do]. Everything the lab creates is recorded in a state file in its
// directory so that [Destroy] can remove a lab whose process died, and
// [RemoveStale] removes leftovers by name, touching only names that carry the
// lab's prefix.
package lab
