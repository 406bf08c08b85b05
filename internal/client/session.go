package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/iphttps/iphttps/internal/batchio"
	"github.com/iphttps/iphttps/internal/dnsquery"
	"github.com/iphttps/iphttps/internal/netcfg"
	"github.com/iphttps/iphttps/internal/packet"
	"github.com/iphttps/iphttps/internal/proxy"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
	"github.com/iphttps/iphttps/internal/wire"
)

const (
	maxHead      = 8 << 10
	readerSize   = 128 << 10
	outboxLimit  = 256 << 10
	keepAlive    = 30 * time.Second
	writeTimeout = 30 * time.Second // a server that reads nothing for this long is given up
	// sendWait is how long the TUN reader waits for room in a full send
	// queue before dropping: waiting passes the tunnel's pace back to the
	// senders (the kernel queues, TCP slows down) instead of losing packets.
	sendWait = 500 * time.Millisecond
	// notSentLowat bounds the unsent bytes in the kernel's socket buffer
	// (TCP_NOTSENT_LOWAT), keeping the queue in front of the tunnel shallow.
	notSentLowat = 128 << 10
)

// ipHTTPS is the IP-HTTPS transport: an HTTPS connection to the server
// (through the proxies), the IP-HTTPS POST, and the link engine (duplicate
// address detection, router solicitation, SLAAC, liveness) over it.
type ipHTTPS struct{ c *Client }

func (ipHTTPS) Name() string { return "IP-HTTPS" }

// Connect runs one IP-HTTPS connection (the host side is t.c itself).
func (t ipHTTPS) Connect(ctx context.Context, _ Link) (bool, error) { return t.c.connect(ctx) }

// UpFor is how long the last connection's link was up.
func (t ipHTTPS) UpFor() time.Duration { return t.c.lk.upFor() }

// outboxSender queues the host's packets on the connection's send queue.
type outboxSender struct {
	ob *wire.Outbox
	c  *counters
}

// Send queues pkts, taking the queue's lock once for the batch; a packet
// that is refused is counted and skipped.
func (o outboxSender) Send(pkts [][]byte) (sent, bytes int) {
	for len(pkts) > 0 {
		n, err := o.ob.AppendBatchWait(pkts, sendWait)
		for _, p := range pkts[:n] {
			bytes += len(p)
		}
		sent += n
		if err == nil {
			return sent, bytes
		}
		switch {
		case errors.Is(err, wire.ErrFull):
			o.c.dropOutboxFull.Add(1)
		case errors.Is(err, wire.ErrClosed):
			o.c.dropLinkDown.Add(uint64(len(pkts) - n))
			return sent, bytes
		default:
			o.c.dropBadFrame.Add(1)
		}
		pkts = pkts[n+1:]
	}
	return sent, bytes
}

// connect makes one connection and runs it until it ends. wasUp tells whether
// the link came all the way up (an address was configured).
func (c *Client) connect(ctx context.Context) (bool, error) {
	c.st.Update(func(s *status.Interface) { s.State, s.NextRetry = "LinkDown", time.Time{} })
	conn, via, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	c.c.connects.Add(1)
	c.st.Update(func(s *status.Interface) { s.State, s.Server = "Established", conn.RemoteAddr().String() })

	r, err := c.post(ctx, conn)
	if err != nil {
		return false, err
	}
	if via != proxy.Direct && c.o.Proxy.Cache != nil {
		// This proxy works: try it first next time.
		if err := c.o.Proxy.Cache.Store(c.o.Target.Addr(), via); err != nil {
			c.log.Warn("cannot remember the proxy", "err", err)
		}
	}

	// LinkUp: packets flow both ways; the link engine brings up addresses.
	ob := wire.NewOutbox(outboxLimit)
	sctx, cancel := context.WithCancel(ctx)
	nd := make(chan ndp.Message, 16)
	pumps := make(chan error, 2)
	go func() { pumps <- c.receive(r, nd) }()
	// The sending side runs a goroutine only while it has a batch to send;
	// a small packet goes out from the goroutine that queued it.
	ob.Go(packetWriter(conn), func(err error) { pumps <- err })
	c.Attach(outboxSender{ob: ob, c: &c.c})
	engine := make(chan error, 1)
	go func() { engine <- c.lk.run(sctx, c, ob, nd, serverIsIPv6(conn)) }()

	pending := 2
	select {
	case err = <-engine:
		// The link engine gave up (no prefix published), or ctx ended.
		engine = nil
	case err = <-pumps:
		pending--
		if err == nil {
			err = errors.New("the server closed the connection")
		}
		err = fmt.Errorf("IP-HTTPS connection to %s lost: %w", conn.RemoteAddr(), err)
	}
	c.Detach()
	cancel()
	ob.Close()
	conn.Close()
	for ; pending > 0; pending-- {
		<-pumps
	}
	if engine != nil {
		<-engine
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return c.lk.wasUp(), err
}

// dial reaches the server (through each proxy route in turn, or directly)
// and, for https, runs TLS with the Windows checks. A server asking for a
// client certificate the client lacks gives SEC_I_INCOMPLETE_CREDENTIALS
// (0x90320), as on Windows. It returns the proxy used, or "direct".
func (c *Client) dial(ctx context.Context) (net.Conn, string, error) {
	target := c.o.Target.Addr()
	routes, err := c.o.Proxy.Routes(ctx, target)
	if err != nil {
		return nil, "", winerr.New(winerr.HostNotFound, err)
	}
	d := net.Dialer{KeepAlive: keepAlive, Control: func(_, _ string, rc syscall.RawConn) error {
		if err := netcfg.SetTCPUserTimeout(rc, writeTimeout); err != nil {
			return err
		}
		return netcfg.SetNotSentLowat(rc, notSentLowat)
	}}
	var (
		raw net.Conn
		via string
	)
	for i, rt := range routes {
		via = rt.Proxy.String()
		c.st.Update(func(s *status.Interface) { s.Proxy = via })
		actx, cancel := context.WithTimeout(ctx, c.o.ConnectTimeout)
		raw, err = proxy.Connect(actx, &d, rt.Proxy, target)
		cancel()
		if err == nil {
			break
		}
		if i < len(routes)-1 {
			c.log.Info("cannot reach the server this way; trying the next", "proxy", via, "source", rt.Source, "err", err)
		}
	}
	if err != nil {
		return nil, via, c.explainDNS(ctx, via, err)
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if c.o.TLS == nil {
		return raw, via, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.ConnectTimeout)
	defer cancel()
	cfg := c.o.TLS.Clone()
	var asked atomic.Bool
	certs := cfg.Certificates
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked.Store(true)
		if len(certs) > 0 {
			return &certs[0], nil
		}
		return &tls.Certificate{}, nil
	}
	cork := batchio.New(raw, nil)
	tconn := tls.Client(cork, cfg)
	if err := tconn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, via, c.tlsError(err, asked.Load(), len(certs) > 0)
	}
	// In TLS 1.3 the server judges the client certificate after the client
	// finished: keep the flag to explain a failure on the first read.
	return &tlsConn{Conn: tconn, cork: cork, asked: &asked, haveCert: len(certs) > 0}, via, nil
}

// explainDNS tells the two "no such host" answers apart, as Windows does: a
// name that does not exist is 0x2af9, a name with no address record is
// 0x2afc (Go's resolver reports both as not found).
func (c *Client) explainDNS(ctx context.Context, via string, err error) error {
	var dnsErr *net.DNSError
	if via != proxy.Direct || !errors.As(err, &dnsErr) || !dnsErr.IsNotFound || dnsErr.Name != c.o.Target.Host {
		return err
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if dnsquery.NoAddress(qctx, dnsErr.Name) {
		return winerr.Errorf(winerr.NoData, "the name %s exists in the DNS but has no address record (A or AAAA): %w", dnsErr.Name, err)
	}
	return winerr.Errorf(winerr.HostNotFound, "the name %s does not exist in the DNS (NXDOMAIN): %w", dnsErr.Name, err)
}

type tlsConn struct {
	*tls.Conn
	cork     *batchio.Conn // under the TLS connection
	asked    *atomic.Bool
	haveCert bool
}

// packetReader reads the server's stream; under TLS it can read without
// waiting (Reader.TryFill).
func packetReader(conn net.Conn) io.Reader {
	if tc, ok := conn.(*tlsConn); ok {
		return batchio.Stream{Upper: conn, Lower: tc.cork}
	}
	return conn
}

// packetWriter is where the send queue writes its batches: under TLS, the
// batch's records leave together through the corked connection.
func packetWriter(conn net.Conn) io.Writer {
	w := wire.WithWriteDeadline(conn, writeTimeout)
	if tc, ok := conn.(*tlsConn); ok {
		return batchio.Writer{Upper: w, Lower: tc.cork}
	}
	return w
}

func (c *Client) tlsError(err error, asked, haveCert bool) error {
	if asked && !haveCert {
		return winerr.New(winerr.IncompleteCredentials,
			fmt.Errorf("the server requires a client certificate (authentication mode certificates) and none is configured (--cert/--key): %w", err))
	}
	if _, ok := winerr.CodeOf(err); ok {
		return fmt.Errorf("TLS with %s: %w", c.o.Target.Host, err) // the code (and its text) is in err already
	}
	return fmt.Errorf("TLS with %s: %w", c.o.Target.Host, err)
}

// post sends the IP-HTTPS request and reads the answer; it returns the reader
// that holds any packet bytes that followed the head.
func (c *Client) post(ctx context.Context, conn net.Conn) (*wire.Reader, error) {
	deadline := time.Now().Add(c.o.ConnectTimeout)
	conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	explain := func(err error) error {
		if tc, ok := conn.(*tlsConn); ok {
			return c.tlsError(err, tc.asked.Load(), tc.haveCert)
		}
		return err
	}
	r := wire.NewReader(packetReader(conn), readerSize)
	resp, err := wire.Open(conn, r, c.o.Target.Path, c.o.Target.HostHeader, maxHead)
	if err != nil {
		return nil, explain(err)
	}
	if resp.Status != http.StatusOK {
		return nil, winerr.Errorf(winerr.NoData,
			"the server answered %d %s to POST %s: the URL is not an IP-HTTPS endpoint there (wrong path, or IP-HTTPS disabled on the server)",
			resp.Status, resp.Reason, c.o.Target.Path)
	}
	return r, nil
}

// receive moves the server's packets to the TUN device in batches, handing the
// router and neighbor advertisements to the link engine.
func (c *Client) receive(r *wire.Reader, nd chan<- ndp.Message) error {
	w := tundev.NewWriter(c.host, 128)
	flush := func() {
		if err := w.Flush(); err != nil {
			c.c.tunWriteErrors.Add(1)
		}
	}
	defer flush()
	for {
		pkt, err := r.Next()
		if err != nil {
			if errors.Is(err, wire.ErrNotIPv6) || errors.Is(err, wire.ErrJumbogram) {
				c.c.dropNotIPv6.Add(1)
			}
			return err
		}
		c.c.pktsDown.Add(1)
		c.c.bytesDown.Add(uint64(len(pkt)))
		if typ, ok := packet.ICMPv6Type(pkt); ok && (typ == packet.TypeRouterAdvertisement || typ == packet.TypeNeighborAdvertisement) {
			if m, err := packet.ParseND(pkt); err == nil {
				if typ == packet.TypeRouterAdvertisement {
					if src := packet.Src(pkt); src.IsLinkLocalUnicast() {
						c.routerLL.Store(&src)
					}
				}
				select {
				case nd <- m:
				default:
				}
			}
		} else if err := w.Add(pkt); err != nil {
			c.c.tunWriteErrors.Add(1)
		}
		// Flush only when the next read would wait (see server.receive).
		if w.Pending() > 0 && !r.HasPacket() && !r.TryFill() {
			flush()
		}
	}
}
