// Package router is the router of an IP-HTTPS link [MS-IPHTTPS]: pure
// packet logic, no I/O.
//
// The IP-HTTPS server is the router of a virtual multicast link that joins
// all its clients; each client's HTTPS connection is that client's
// "link-layer address". The server attaches every accepted connection as a
// Port and hands the router each IPv6 packet read from a client
// (FromClient) or from the server's TUN device (FromHost). The router
//
//   - checks that a client only sends from addresses it owns, learning
//     ownership from source addresses and from DAD targets, and frees them
//     when the client detaches;
//   - answers Router Solicitations with Router Advertisements and Neighbor
//     Solicitations for its own addresses with Neighbor Advertisements;
//   - applies the Duplicate Address Detection and multicast rules of the
//     authentication mode (ModeNone: no multicast and no link-local traffic
//     between clients, the server defends addresses with forged NAs;
//     ModeCertificates: a shared link, multicast flooded to the other
//     clients);
//   - delivers packets between clients and from the host, and returns those
//     for the host as ToHost.
//
// Every packet the router refuses is counted by DropReason.
//
// All methods are safe for concurrent use. The per-packet paths (a client
// to an address beyond the link, the host to a client, a client to a
// client) do not allocate.
package router
