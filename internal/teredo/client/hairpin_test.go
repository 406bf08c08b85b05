package client

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/teredo"
	"github.com/iphttps/iphttps/internal/testenv/netnstest"
)

// The hairpinning extension against the real server: a peer "behind our
// NAT" (its mapping has our mapped address, 192.0.2.2, and another port)
// with a private address in the client's namespace. Only what it
// announced through the server, or in a bubble once we have its entry,
// is heard; everything else from a private address is counted and
// creates nothing.
func TestHairpinChecks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, noNAT, true)
	tr := newTransport(t, Options{})
	l := newFakeLink(t)
	f.start(tr, l)
	ts := waitState(t, l, StateQualified, 5*time.Second)
	me := netip.MustParseAddr(ts.Address)
	mapping := netip.MustParseAddrPort(ts.ExternalNATMapping)
	for _, a := range []string{"10.9.0.1/32", "10.9.0.2/32"} {
		netnstest.Run(t, "ip", "-n", f.cli, "addr", "add", a, "dev", "lo")
	}
	peerMapped := netip.AddrPortFrom(mapping.Addr(), 4000)
	peerLocal := netip.MustParseAddrPort("10.9.0.1:5000")
	peerAddr := teredo.Address{Server: primary, Mapped: peerMapped}.IPv6()
	pub, priv := f.udpIn(f.cli, peerMapped), f.udpIn(f.cli, peerLocal)
	stranger := f.udpIn(f.cli, netip.MustParseAddrPort("10.9.0.2:5000"))
	sendTo := func(c *net.UDPConn, b []byte, to netip.AddrPort) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
	}
	expect := map[string]uint64{}
	check := func(reason string) {
		t.Helper()
		expect["drop_"+reason]++
		waitCounter(t, tr, "drop_"+reason, expect["drop_"+reason], 3*time.Second)
	}
	bubbleWith := func(alts ...netip.AddrPort) []byte {
		return teredo.AppendAlternates(teredo.AppendBubble(nil, peerAddr, me), alts...)
	}

	// From a private address, a source that is not behind our NAT.
	far := teredo.Address{Server: primary, Mapped: netip.AddrPortFrom(otherHost, 4000)}.IPv6()
	sendTo(priv, ping(far, me, "x"), mapping)
	check(dropSourceNotGlobal)
	// A same-NAT peer we never heard of: its bubble's own trailer does not
	// make an entry.
	sendTo(priv, bubbleWith(peerLocal), mapping)
	check(dropUnknownAlt)
	if n := tr.Counters()["peers"]; n != 0 {
		t.Fatalf("an unsolicited bubble from a private address made %d peer entries", n)
	}

	// Its indirect bubble through the server announces its private address
	// (and a global one, refused): the client records it and sends it a
	// direct bubble there.
	sendTo(pub, bubbleWith(peerLocal, netip.MustParseAddrPort("203.0.113.20:53")), netip.AddrPortFrom(primary, teredo.Port))
	check(dropAltRefused)
	waitCounter(t, tr, "hairpin_bubbles_sent", 1, 3*time.Second)
	if d := recvDatagram(t, priv); !teredo.IsBubble(d.IPv6) || packet.Src(d.IPv6) != me || packet.Dst(d.IPv6) != peerAddr {
		t.Fatalf("at the alternate address: % x", d.IPv6)
	}

	// Its data from that address is the peer's; the answer goes there.
	sendTo(priv, ping(peerAddr, me, "hairpin"), mapping)
	if p := l.host.next(t, 3*time.Second); !bytes.HasSuffix(p, []byte("hairpin")) {
		t.Fatalf("host got % x", p)
	}
	waitCounter(t, tr, "hairpin_peers_trusted", 1, time.Second)
	l.send(t, ping(me, peerAddr, "back"))
	if d := recvDatagram(t, priv); !bytes.HasSuffix(d.IPv6, []byte("back")) {
		t.Fatalf("the answer at the alternate address: % x", d.IPv6)
	}

	// Another private address it did not announce, with or without a
	// trailer (a malformed one is counted too).
	sendTo(stranger, ping(peerAddr, me, "x"), mapping)
	check(dropUnknownAlt)
	sendTo(stranger, append(teredo.AppendBubble(nil, peerAddr, me), 3, 9, 0, 0, 10, 9, 0, 2, 0x13, 0x88, 0), mapping)
	check(dropBadTrailer)
	check(dropUnknownAlt)

	for k, v := range tr.Counters() {
		if strings.HasPrefix(k, "drop_") && v != expect[k] {
			t.Errorf("%s = %d, want %d", k, v, expect[k])
		}
	}
	select {
	case p := <-l.host.in:
		t.Errorf("a refused packet reached the host: % x", p)
	case <-time.After(100 * time.Millisecond):
	}
}

// recvDatagram reads a Teredo datagram from c.
func recvDatagram(t *testing.T, c *net.UDPConn) teredo.Datagram {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("nothing at %v: %v", c.LocalAddr(), err)
	}
	d, err := teredo.Parse(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return d
}
