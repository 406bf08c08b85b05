package tundev_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/iphttps/iphttps/internal/testenv/netnstest"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
)

const (
	name = "iptd0"
	mtu  = 1280
)

// The host side of the TUN device (the kernel's) and the far side (what
// the test reads and writes through tundev).
var (
	hostAddr = netip.MustParseAddr("2001:db8:5::1")
	farAddr  = netip.MustParseAddr("2001:db8:5::2")
)

// create makes a namespace and the TUN device name in it with tundev.Create,
// closed when the test ends.
func create(t *testing.T, off tundev.Offload) (string, *tundev.Device) {
	t.Helper()
	ns := netnstest.New(t, "iptd-", "creates a network namespace and a TUN device in it")
	var dev *tundev.Device
	netnstest.Do(t, ns, func() error {
		var err error
		dev, err = tundev.Create(name, mtu, off)
		return err
	})
	t.Cleanup(func() { dev.Close() })
	return ns, dev
}

func TestCreate(t *testing.T) {
	for _, off := range []tundev.Offload{tundev.OffloadAuto, tundev.OffloadOn, tundev.OffloadOff} {
		t.Run(off.String(), func(t *testing.T) {
			ns, dev := create(t, off)
			l, ok := netnstest.LinkShow(t, ns, name)
			if !ok {
				t.Fatalf("ip does not see %s", name)
			}
			d := l.Info.Data
			if dev.Ifname != name || l.MTU != mtu || l.Info.Kind != "tun" || d.Type != "tun" || d.PI || d.Persist {
				t.Errorf("device %q, ip shows %+v; want a TUN without packet information, not persistent, MTU %d", dev.Ifname, l, mtu)
			}
			// Offload is the virtio-net header: with it, batches.
			wantOffload := off != tundev.OffloadOff
			if d.VnetHdr != wantOffload || dev.Offloaded() != wantOffload || (dev.BatchSize() > 1) != wantOffload {
				t.Errorf("vnet_hdr %v, Offloaded %v, batch size %d; want offload %v", d.VnetHdr, dev.Offloaded(), dev.BatchSize(), wantOffload)
			}

			// The name is taken now.
			netnstest.Do(t, ns, func() error {
				_, err := tundev.Create(name, mtu, off)
				if code, _ := winerr.CodeOf(err); code != winerr.DupName {
					t.Errorf("second Create(%s): %v (code %#x), want code %#x", name, err, code, winerr.DupName)
				}
				return nil
			})

			dev.Close()
			if _, ok := netnstest.LinkShow(t, ns, name); ok {
				t.Errorf("%s outlived Close", name)
			}
		})
	}
}

func TestCreateBadName(t *testing.T) {
	for _, n := range []string{"", strings.Repeat("x", unix.IFNAMSIZ)} {
		_, err := tundev.Create(n, mtu, tundev.OffloadAuto)
		if code, _ := winerr.CodeOf(err); code != winerr.InstallFailure {
			t.Errorf("Create(%q): %v (code %#x), want code %#x", n, err, code, winerr.InstallFailure)
		}
	}
}

func TestParseOffload(t *testing.T) {
	for s, want := range map[string]tundev.Offload{
		"": tundev.OffloadAuto, "auto": tundev.OffloadAuto, "AUTO": tundev.OffloadAuto,
		"on": tundev.OffloadOn, "true": tundev.OffloadOn, "yes": tundev.OffloadOn,
		"off": tundev.OffloadOff, "false": tundev.OffloadOff, "No": tundev.OffloadOff,
	} {
		if got, err := tundev.ParseOffload(s); err != nil || got != want {
			t.Errorf("ParseOffload(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := tundev.ParseOffload("sometimes"); err == nil {
		t.Error("ParseOffload(sometimes) succeeded")
	}
	for o, want := range map[tundev.Offload]string{tundev.OffloadAuto: "auto", tundev.OffloadOn: "on", tundev.OffloadOff: "off"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", o, o.String(), want)
		}
	}
}

// udp6 is the IPv6 packet carrying a UDP datagram with payload, as the
// kernel builds it for a socket (no flow label, hop limit 64).
func udp6(src netip.AddrPort, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, header.IPv6MinimumSize+header.UDPMinimumSize+len(payload))
	n := uint16(header.UDPMinimumSize + len(payload))
	s, d := tcpip.AddrFrom16(src.Addr().As16()), tcpip.AddrFrom16(dst.Addr().As16())
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength:     n,
		TransportProtocol: header.UDPProtocolNumber,
		HopLimit:          64,
		SrcAddr:           s,
		DstAddr:           d,
	})
	u := header.UDP(b[header.IPv6MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: n})
	copy(u.Payload(), payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, n)
	u.SetChecksum(^u.CalculateChecksum(checksum.Checksum(payload, xsum)))
	return b
}

// link brings the device up in ns with hostAddr, no kernel-made
// link-local address and no flow labels, so the kernel's packets are what
// udp6 builds.
func link(t *testing.T, ns string) {
	t.Helper()
	netnstest.SetSysctl(t, ns, "net.ipv6.auto_flowlabels", "0")
	netnstest.IP(t, ns, "link", "set", name, "addrgenmode", "none")
	netnstest.IP(t, ns, "link", "set", name, "up")
	netnstest.IP(t, ns, "addr", "add", hostAddr.String()+"/64", "dev", name, "nodad")
	// The kernel installs the address's local route a moment after ip
	// returns (when its skipped DAD completes, on a work queue); until then
	// a packet to it is dropped as not ours (Ip6InAddrErrors).
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(netnstest.IP(t, ns, "-6", "route", "show", "table", "local", hostAddr.String())), "local "+hostAddr.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no local route for %s after 5 s", hostAddr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reader reads the device in batches on a goroutine of its own until the
// device is closed, keeping the UDP packets and how many each read
// returned.
type reader struct {
	mu      sync.Mutex
	packets [][]byte
	batches []int
	done    chan struct{}
}

func startReader(t *testing.T, dev *tundev.Device) *reader {
	r := &reader{done: make(chan struct{})}
	b := tundev.NewReadBatch(dev, mtu)
	go func() {
		defer close(r.done)
		for {
			n, err := b.Read(dev)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.batches = append(r.batches, n)
			for i := range n {
				// Only UDP: the kernel sends MLD reports of its own.
				if p := b.Packet(i); len(p) > header.IPv6MinimumSize && header.IPv6(p).NextHeader() == uint8(header.UDPProtocolNumber) {
					r.packets = append(r.packets, bytes.Clone(p))
				}
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { dev.Close(); <-r.done })
	return r
}

// wait returns the UDP packets read once there are n, or fails t after 5 s.
func (r *reader) wait(t *testing.T, n int) ([][]byte, []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got, batches := r.packets, r.batches
		r.mu.Unlock()
		if len(got) >= n {
			return got, batches
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d UDP packets in 5 s, want %d (reads returned %v packets)", len(got), n, batches)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func samePackets(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d packets, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s: packet %d:\n%s\nwant\n%s", what, i, hex.Dump(got[i]), hex.Dump(want[i]))
		}
	}
}

// TestReadFromKernel: datagrams a socket in the namespace sends to the far
// side come out of ReadBatch byte for byte, including one UDP GSO send that
// the kernel hands over as one super-packet when offload is on.
func TestReadFromKernel(t *testing.T) {
	for _, off := range []tundev.Offload{tundev.OffloadAuto, tundev.OffloadOff} {
		t.Run(off.String(), func(t *testing.T) {
			ns, dev := create(t, off)
			link(t, ns)
			r := startReader(t, dev)
			var conn *net.UDPConn
			netnstest.Do(t, ns, func() error {
				var err error
				conn, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(hostAddr, 0)))
				return err
			})
			defer conn.Close()
			src := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			dst := netip.AddrPortFrom(farAddr, 9999)

			var want [][]byte
			for i := range 3 {
				p := []byte(fmt.Sprintf("datagram %d from the kernel, %s", i, strings.Repeat("x", 100*i)))
				if _, err := conn.WriteToUDPAddrPort(p, dst); err != nil {
					t.Fatal(err)
				}
				want = append(want, udp6(src, dst, p))
			}
			got, _ := r.wait(t, len(want))
			samePackets(t, "single datagrams", got, want)

			// One send of three 200-byte segments (UDP_SEGMENT).
			raw, err := conn.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, 200) }); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			big := make([]byte, 600)
			for i := range big {
				big[i] = byte(i)
			}
			if _, err := conn.WriteToUDPAddrPort(big, dst); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				want = append(want, udp6(src, dst, big[200*i:200*(i+1)]))
			}
			got, batches := r.wait(t, len(want))
			samePackets(t, "with the GSO send", got, want)
			t.Logf("packets per read: %v", batches)
			if off != tundev.OffloadOff && uso() && !slices.ContainsFunc(batches, func(n int) bool { return n >= 3 }) {
				t.Errorf("the GSO send came in reads of %v packets, want one read of 3 (the kernel offers UDP segmentation offload on TUN since 6.2)", batches)
			}
		})
	}
}

// uso reports whether the kernel (6.2 or later) offers UDP segmentation
// offload on TUN devices.
func uso() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	major, rest, _ := strings.Cut(rel, ".")
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(strings.TrimRightFunc(minor, func(r rune) bool { return r < '0' || r > '9' }))
	return err1 == nil && err2 == nil && (ma > 6 || ma == 6 && mi >= 2)
}

// TestWriteToKernel: packets written through a Writer reach a socket in the
// namespace whole, in order, from the far side's address; the writer flushes
// by itself when its batch is full and counts what it wrote.
func TestWriteToKernel(t *testing.T) {
	for _, off := range []tundev.Offload{tundev.OffloadAuto, tundev.OffloadOff} {
		t.Run(off.String(), func(t *testing.T) {
			ns, dev := create(t, off)
			link(t, ns)
			var conn *net.UDPConn
			netnstest.Do(t, ns, func() error {
				var err error
				conn, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(hostAddr, 0)))
				return err
			})
			defer conn.Close()
			dst := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			src := netip.AddrPortFrom(farAddr, 7000)
			var payloads [][]byte
			for i := range 6 {
				payloads = append(payloads, []byte(fmt.Sprintf("datagram %d from the far side", i)))
			}

			// A batch of 2: the third Add writes the first two.
			w := tundev.NewWriter(dev, 2)
			for i, p := range payloads[:3] {
				if err := w.Add(udp6(src, dst, p)); err != nil {
					t.Fatal(err)
				}
				if want := []int{1, 2, 1}[i]; w.Pending() != want {
					t.Errorf("after %d Adds: %d pending, want %d", i+1, w.Pending(), want)
				}
			}
			if err := w.Flush(); err != nil || w.Pending() != 0 {
				t.Fatalf("Flush: %v, %d pending", err, w.Pending())
			}
			// The rest in one batch (coalesced when offload is on).
			w2 := tundev.NewWriter(dev, dev.BatchSize())
			for _, p := range payloads[3:] {
				if err := w2.Add(udp6(src, dst, p)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w2.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.Packets != 3 || w.Errors != 0 || w2.Packets != 3 || w2.Errors != 0 {
				t.Errorf("writers counted %d/%d and %d/%d packets/errors, want 3/0 each", w.Packets, w.Errors, w2.Packets, w2.Errors)
			}

			buf := make([]byte, 2048)
			for i, want := range payloads {
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if from != src || !bytes.Equal(buf[:n], want) {
					t.Errorf("datagram %d: %q from %s, want %q from %s", i, buf[:n], from, want, src)
				}
			}

			// Not an IP packet: the device refuses it, and it is counted.
			if err := w.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7}); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err == nil || w.Errors != 1 || w.Packets != 4 {
				t.Errorf("writing garbage: %v; %d packets, %d errors; want an error, 4 packets, 1 error", err, w.Packets, w.Errors)
			}
			// And nothing more arrived.
			conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, from, err := conn.ReadFromUDPAddrPort(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("unexpected datagram %q from %s (%v)", buf[:n], from, err)
			}
		})
	}
}
