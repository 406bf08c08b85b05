#!/usr/bin/python3
"""A 6to4 peer for the end-to-end tests, independent of iphttps.

It speaks RFC 3056 6to4 (IPv6 straight inside IPv4, protocol 41) on its
own: packets are built and parsed with scapy and go through raw IPv4
sockets of the namespace it runs in. Every mode writes JSON lines on
stdout (an "event" field in each) and is bounded in packets and time.

  ping    ICMPv6 echo requests to one or more IPv6 destinations through a
          6to4 relay; one line per reply with what it carried, then a
          summary.
  attack  reads "KIND COUNT" lines on stdin and sends COUNT packets of that
          kind (spoofed, malformed, floods: see KINDS), paced; one line per
          command.
  tunnel  a minimal 6to4 interface, as a host's sit device would be: a TUN
          device holding the host's 6to4 address, its packets carried in
          protocol 41 (2002::/16 straight to the IPv4 address embedded,
          everything else to the relay) and protocol 41 received carried
          back into it; the host's own TCP/IP stack then talks through it.
"""

import argparse
import fcntl
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

IPPROTO_IPV6 = 41


def emit(**fields):
    """Writes one JSON line on stdout."""
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def addr6to4(v4):
    """The 6to4 address of an IPv4 address, with the interface ID Windows
    uses: 2002:WWXX:YYZZ::WWXX:YYZZ (RFC 3056 section 2 gives the /48)."""
    b = ipaddress.IPv4Address(v4).packed
    return str(ipaddress.IPv6Address(b"\x20\x02" + b + b"\x00" * 6 + b))


def embedded4(b):
    """The IPv4 address the 6to4 address b (16 bytes) embeds, or None."""
    if b[:2] != b"\x20\x02":
        return None
    return str(ipaddress.IPv4Address(b[2:6]))


def echo_payload(ident, seq, size):
    """The data of echo request seq (the test rebuilds it to compare)."""
    s = ("6to4 peer id=%d seq=%d " % (ident, seq)).encode()
    return s + b"." * max(0, size - len(s))


def raw_sender():
    """A raw IPv4 socket that sends whole IPv4 packets (IP_HDRINCL)."""
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)


def proto41_socket():
    """A raw IPv4 socket of protocol 41: it receives every protocol-41
    packet to the namespace, IPv4 header included (and, being there, keeps
    the kernel from answering them with protocol unreachable)."""
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPV6)


# ---------------------------------------------------------------- ping


def cmd_ping(a):
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6, ICMPv6EchoRequest, ICMPv6EchoReply, in6_chksum
    from scapy.utils import checksum

    src6 = a.src6 or addr6to4(a.src4)
    out, rx = raw_sender(), proto41_socket()
    rx.settimeout(0.2)
    lock = threading.Lock()
    sent = {}  # seq -> (dst6, time)
    got = {}  # seq -> count of replies
    counts = {"unexpected": 0}
    stop_rx = threading.Event()

    def receive():
        while not stop_rx.is_set():
            try:
                data = rx.recv(65535)
            except socket.timeout:
                continue
            now = time.monotonic()
            p = IP(data)
            if p.proto != IPPROTO_IPV6 or IPv6 not in p or ICMPv6EchoReply not in p:
                with lock:
                    counts["unexpected"] += 1
                continue
            v6, er = p[IPv6], p[ICMPv6EchoReply]
            if er.id != a.id:
                with lock:
                    counts["unexpected"] += 1
                continue
            icmp = bytearray(bytes(v6.payload))
            wire_sum = icmp[2] << 8 | icmp[3]
            icmp[2:4] = b"\x00\x00"
            with lock:
                at = sent.get(er.seq)
                got[er.seq] = got.get(er.seq, 0) + 1
            emit(event="reply",
                 outer_src=p.src, outer_dst=p.dst, outer_proto=p.proto, outer_ttl=p.ttl,
                 outer_checksum_ok=checksum(data[:p.ihl * 4]) == 0,
                 inner_src=v6.src, inner_dst=v6.dst, hlim=v6.hlim, next_header=v6.nh,
                 icmp_type=er.type, id=er.id, seq=er.seq, data_hex=bytes(er.data).hex(),
                 icmp_checksum_ok=in6_chksum(58, v6, bytes(icmp)) == wire_sum,
                 request_dst=at[0] if at else None,
                 rtt_ms=round((now - at[1]) * 1000, 3) if at else None)

    t = threading.Thread(target=receive, daemon=True)
    t.start()

    stdin_closed = threading.Event()
    if a.until_stdin_closes:
        def watch():
            sys.stdin.read()
            stdin_closed.set()
        threading.Thread(target=watch, daemon=True).start()

    emit(event="ready", src4=a.src4, src6=src6)
    deadline = time.monotonic() + a.max_seconds
    stopped_by = "count"
    seq = 0
    for _ in range(a.count):
        if stdin_closed.is_set():
            stopped_by = "stdin"
            break
        if time.monotonic() > deadline:
            stopped_by = "deadline"
            break
        for dst6 in a.dst6:
            seq += 1
            pkt = (IP(src=a.src4, dst=a.dst4, proto=IPPROTO_IPV6, ttl=64) /
                   IPv6(src=src6, dst=dst6, hlim=64) /
                   ICMPv6EchoRequest(id=a.id, seq=seq, data=echo_payload(a.id, seq, a.size)))
            with lock:
                sent[seq] = (dst6, time.monotonic())
            out.sendto(bytes(pkt), (a.dst4, 0))
        time.sleep(a.interval)
    # The last replies: until every request is answered or --wait passes.
    end = time.monotonic() + a.wait
    while time.monotonic() < end:
        with lock:
            if all(s in got for s in sent):
                break
        time.sleep(0.02)
    stop_rx.set()
    t.join()
    with lock:
        lost = sorted(s for s in sent if s not in got)
        emit(event="summary", sent=len(sent), received=len(sent) - len(lost), lost=lost,
             duplicates=sum(n - 1 for n in got.values()), unexpected=counts["unexpected"],
             stopped_by=stopped_by)


# ---------------------------------------------------------------- attack


def attack_kinds(a):
    """Builds the packets of each attack kind: name -> function(i) giving
    the whole IPv4 packet (outer header, then what the kind puts inside)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6, ICMPv6EchoRequest
    from scapy.packet import Raw

    own6, server6 = addr6to4(a.src4), addr6to4(a.dst4)
    outer = IP(src=a.src4, dst=a.dst4, proto=IPPROTO_IPV6, ttl=64)

    def echo(src6, dst6):
        return lambda i: bytes(outer / IPv6(src=src6, dst=dst6) / ICMPv6EchoRequest(id=0x6666, seq=i & 0xffff, data=b"hostile"))

    def inner(f):
        return lambda i: bytes(outer / Raw(f(i)))

    def udp(src6, dst6):
        return lambda i: bytes(outer / IPv6(src=src6, dst=dst6) / UDP(sport=40000, dport=a.udp_port) / Raw(b"flood %d" % i))

    good = bytes(IPv6(src=own6, dst=a.host6) / ICMPv6EchoRequest(id=0x6666, data=b"hostile"))
    long_ = bytearray(good)
    long_[4:6] = struct.pack("!H", 100)  # Payload Length past the end of the packet
    ipv4 = bytes(IP(src=a.src4, dst=a.dst4, proto=17) / UDP(dport=9) / Raw(b"not IPv6"))
    return {
        # The inner source is the 6to4 address of another IPv4 address.
        "spoof-victim": echo(a.victim6, a.host6),
        "spoof-server": echo(server6, a.host6),
        # Native inner sources: only a relay's packets may carry them.
        "native-source": echo("2001:db8:66::1", a.host6),
        "native-intranet": echo(a.host6, a.host6),
        # Destinations the server does not serve.
        "unserved-destination": echo(own6, "2001:db8:ff::1"),
        "server-prefix-other": echo(own6, str(ipaddress.IPv6Address(server6.split("::")[0] + "::99"))),
        # A 6to4 destination of another IPv4 address: relaying through the
        # server to a third party.
        "relay-to-victim": echo(own6, a.victim6),
        # Sources no 6to4 packet may carry.
        "link-local-source": echo("fe80::bad", a.host6),
        "multicast-source": echo("ff02::1", a.host6),
        "loopback-source": echo("::1", a.host6),
        "mapped-source": echo("::ffff:" + a.src4, a.host6),
        # Not an IPv6 packet, or a truncated one.
        "empty": inner(lambda i: b""),
        "truncated-header": inner(lambda i: good[:20]),
        "length-past-end": inner(lambda i: bytes(long_)),
        "not-ipv6": inner(lambda i: ipv4),
        # Floods: the first refused, the second carried to the host.
        "flood-spoofed": udp(a.victim6, a.host6),
        "flood-valid": udp(own6, a.host6),
    }


def cmd_attack(a):
    kinds = attack_kinds(a)
    out = raw_sender()
    emit(event="ready", kinds=sorted(kinds))
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        if f[0] == "quit":
            break
        if len(f) != 2 or f[0] not in kinds or not f[1].isdigit():
            emit(event="error", line=line.strip())
            continue
        kind, n = f[0], min(int(f[1]), a.max_count)
        build = kinds[kind]
        # At most 256 distinct packets, sent in turn: a flood costs no more
        # building than a small kind.
        pkts = [build(i) for i in range(min(n, 256))]
        start = time.monotonic()
        sent = 0
        for i in range(n):
            if time.monotonic() - start > a.max_seconds:
                break
            out.sendto(pkts[i % len(pkts)], (a.dst4, 0))
            sent += 1
            if sent % a.burst == 0:
                time.sleep(a.pause)
        emit(event="sent", kind=kind, requested=n, sent=sent, seconds=round(time.monotonic() - start, 3))


# ---------------------------------------------------------------- tunnel

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def cmd_tunnel(a):
    own6, relay6 = addr6to4(a.src4), addr6to4(a.relay4)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", a.dev.encode(), IFF_TUN | IFF_NO_PI))
    # No link-local address: nothing to solicit routers or join groups with.
    run("ip", "link", "set", "dev", a.dev, "addrgenmode", "none")
    run("ip", "link", "set", "dev", a.dev, "mtu", "1280", "up")
    run("ip", "-6", "addr", "add", own6 + "/16", "dev", a.dev, "nodad")
    for r in a.route:
        run("ip", "-6", "route", "add", r, "via", relay6, "dev", a.dev)
    sock = proto41_socket()
    sock.bind((a.src4, 0))
    sock.settimeout(0.2)
    stats = {"to_ipv4": 0, "from_ipv4": 0, "refused": 0, "not_carried": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def count(k):
        with lock:
            stats[k] += 1

    def outbound():  # the host's IPv6 packets, into protocol 41
        while not stop.is_set():
            try:
                p = os.read(fd, 2048)
            except OSError:
                return
            if len(p) < 40 or p[0] >> 4 != 6:
                count("refused")
                continue
            src, dst = p[8:24], p[24:40]
            if dst[0] == 0xFF or src[0] == 0xFE and src[1] & 0xC0 == 0x80 or src == bytes(16):
                # Multicast, or from a link-local or no address: nothing
                # for the relay (sit does not carry them either).
                count("not_carried")
                continue
            nh = embedded4(dst) or a.relay4
            sock.sendto(p, (nh, 0))
            count("to_ipv4")

    def inbound():  # protocol 41, into the host (with sit's source check)
        while not stop.is_set():
            try:
                d = sock.recv(65535)
            except socket.timeout:
                continue
            ihl = (d[0] & 0x0F) * 4
            outer_src, p = str(ipaddress.IPv4Address(d[12:16])), d[ihl:]
            if len(p) < 40 or p[0] >> 4 != 6:
                count("refused")
                continue
            v4 = embedded4(p[8:24])
            if (v4 or a.relay4) != outer_src:
                count("refused")
                continue
            os.write(fd, p)
            count("from_ipv4")

    threads = [threading.Thread(target=f, daemon=True) for f in (outbound, inbound)]
    for t in threads:
        t.start()
    emit(event="ready", dev=a.dev, address=own6, relay=relay6)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait(a.duration)
    stop.set()
    with lock:
        emit(event="summary", **stats)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    p = sub.add_parser("ping")
    p.add_argument("--src4", required=True, help="this host's IPv4 address")
    p.add_argument("--dst4", required=True, help="the relay's IPv4 address")
    p.add_argument("--src6", help="the IPv6 source (default: this host's 6to4 address)")
    p.add_argument("--dst6", required=True, action="append", help="a destination (repeat for more, pinged in turn)")
    p.add_argument("--count", type=int, default=3, help="rounds of echo requests (one per destination each)")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--id", type=int, default=0x6f34)
    p.add_argument("--size", type=int, default=32, help="echo data bytes")
    p.add_argument("--wait", type=float, default=2.0, help="seconds to wait for the last replies")
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument("--until-stdin-closes", action="store_true", help="stop sending when stdin reaches its end")
    p.set_defaults(run=cmd_ping)

    p = sub.add_parser("attack")
    p.add_argument("--src4", required=True)
    p.add_argument("--dst4", required=True)
    p.add_argument("--victim6", required=True, help="another host's 6to4 address")
    p.add_argument("--host6", required=True, help="a host the relay serves")
    p.add_argument("--udp-port", type=int, default=9)
    p.add_argument("--burst", type=int, default=100)
    p.add_argument("--pause", type=float, default=0.005, help="seconds between bursts")
    p.add_argument("--max-count", type=int, default=50000, help="packets per command at most")
    p.add_argument("--max-seconds", type=float, default=20.0, help="seconds per command at most")
    p.set_defaults(run=cmd_attack)

    p = sub.add_parser("tunnel")
    p.add_argument("--src4", required=True)
    p.add_argument("--relay4", required=True)
    p.add_argument("--dev", default="tun6to4")
    p.add_argument("--route", action="append", default=[], help="an IPv6 prefix to reach through the relay")
    p.add_argument("--duration", type=float, default=30.0, help="seconds at most (or until stdin closes)")
    p.set_defaults(run=cmd_tunnel)

    a = ap.parse_args()
    a.run(a)


if __name__ == "__main__":
    main()
