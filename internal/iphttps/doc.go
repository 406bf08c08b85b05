// Package iphttps is the client's side of the IP-HTTPS protocol
// ([MS-IPHTTPS]): the URL and certificate rules Windows applies, and the
// phases of a connection as exported functions, each with an optional
// Trace, so that everything that opens an IP-HTTPS connection (the client's
// transport, `iphttps diagnose`, the load generator) runs the same code:
//
//	Dial       the proxy routes in turn, TCP with the client's socket settings (Connect: one route)
//	Handshake  TLS with the Windows checks of the server certificate (TLSConfig)
//	Open       the IP-HTTPS POST and the server's 200 answer
//	Solicit    a router solicitation and the advertisement with the /64 (ChoosePrefix)
//
// The link that follows on the connection (duplicate address detection,
// SLAAC, routes, liveness, the packet pumps) is the transport's, in package
// iphttps/client.
package iphttps
