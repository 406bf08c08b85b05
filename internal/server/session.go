package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/iphttps/iphttps/internal/batchio"
	"github.com/iphttps/iphttps/internal/netcfg"
	"github.com/iphttps/iphttps/internal/router"
	"github.com/iphttps/iphttps/internal/status"
	"github.com/iphttps/iphttps/internal/tundev"
	"github.com/iphttps/iphttps/internal/winerr"
	"github.com/iphttps/iphttps/internal/wire"
)

const (
	maxHead       = 8 << 10   // largest HTTP request head accepted
	readerSize    = 128 << 10 // per-connection receive buffer
	outboxLimit   = 256 << 10 // per-connection send queue, in bytes
	tcpKeepAlive  = 30 * time.Second
	errorDeadline = 5 * time.Second
	writeTimeout  = 30 * time.Second // a client that reads nothing for this long is dropped
	// sendWait is how long a full send queue may hold up the goroutine
	// feeding it (the TUN reader serves every client) while the client's
	// connection is draining; a client that stopped reading is not waited for.
	sendWait = 2 * time.Millisecond
	// notSentLowat bounds the unsent bytes in the kernel's socket buffer
	// (TCP_NOTSENT_LOWAT), keeping the queue in front of the tunnel shallow.
	notSentLowat = 128 << 10
)

// batchWriter writes batches through a corked connection, without the
// TryWrite that would let an appending goroutine write inline.
type batchWriter struct{ w batchio.Writer }

func (b batchWriter) Write(p []byte) (int, error) { return b.w.Write(p) }

// session is one client's HTTPS connection; it is the router's Port for it.
type session struct {
	srv     *Server
	conn    net.Conn
	remote  string     // the client's address and port (from the PROXY header when on)
	src     netip.Addr // the client's address, for the per-source limits
	subject string
	since   time.Time
	outbox  *wire.Outbox
	client  *router.Client

	closeOnce sync.Once
}

// Send queues pkt for the client; false when its queue is full (the router
// counts the drop as drop_queue_full).
func (ss *session) Send(pkt []byte) bool {
	return ss.outbox.AppendWait(pkt, sendWait) == nil
}

func (ss *session) close() {
	ss.closeOnce.Do(func() {
		if ss.outbox != nil {
			ss.outbox.Close()
		}
		ss.conn.Close()
	})
}

func (ss *session) info() status.Client {
	ci := status.Client{Remote: ss.remote, Subject: ss.subject, Since: ss.since}
	if ss.outbox != nil {
		st := ss.outbox.Stats()
		ci.BytesOut, ci.PktsOut = st.Bytes, st.Packets
	}
	if ss.client != nil {
		st := ss.client.Stats() // the router counts what the client sent
		ci.BytesIn, ci.PktsIn = st.RxBytes, st.RxPackets
		for _, a := range ss.client.Addrs() {
			ci.Addresses = append(ci.Addresses, a.String())
		}
	}
	return ci
}

// serve runs one connection: the PROXY header when configured, TLS
// handshake, the IP-HTTPS POST, then packets.
func (s *Server) serve(ctx context.Context, raw net.Conn) {
	cur := s.cur.Load() // one snapshot: a reload applies to later connections
	// One deadline for the PROXY header and the TLS handshake.
	deadline := time.Now().Add(cur.HandshakeTimeout)
	peer := addrPortOf(raw.RemoteAddr())
	ss := &session{srv: s, conn: raw, remote: peer.String(), src: peer.Addr(), since: time.Now()}
	defer ss.close()
	// Until the session is in the client table, shutdown ends the
	// connection in whatever phase it is; from then on closeSessions does,
	// with a TLS close_notify.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	refused := func(why string) {
		s.c.refused(why)
		s.logLimited(why, slog.LevelWarn, "connection refused: too many connections in their handshake", "client", ss.remote, "reason", why,
			"max_pending", cur.Limits.MaxPending, "max_pending_per_source", cur.Limits.MaxPendingPerSource)
	}
	// The connection holds a pending slot from the start: under the peer's
	// address while the PROXY header is read, then under the client's.
	if why := s.admit.beginPending(ss.src, cur.Limits); why != "" {
		refused(why)
		return
	}
	pendingSrc := ss.src
	endPending := sync.OnceFunc(func() { s.admit.endPending(pendingSrc) })
	defer endPending()
	if s.o.ProxyProtocol {
		if !trustedProxy(peer.Addr(), s.o.ProxyFrom) {
			s.c.proxyErrors.Add(1)
			s.logLimited("proxy", slog.LevelWarn, "connection refused: not from a load balancer allowed to send the PROXY header (proxy_protocol_from)", "peer", peer)
			return
		}
		raw.SetReadDeadline(deadline)
		src, err := readProxyHeader(raw)
		if err != nil {
			s.c.proxyErrors.Add(1)
			s.logLimited("proxy", slog.LevelWarn, "connection refused: PROXY protocol header missing or bad", "peer", peer, "err", err)
			return
		}
		if closedBeforeData(raw) {
			// A load balancer's health check: a header, then gone.
			s.c.healthChecks.Add(1)
			return
		}
		raw.SetReadDeadline(time.Time{})
		ss.remote, ss.src = src.String(), src.Addr()
		if ss.src != pendingSrc {
			endPending()
			if why := s.admit.beginPending(ss.src, cur.Limits); why != "" {
				refused(why)
				return
			}
			pendingSrc = ss.src
			endPending = sync.OnceFunc(func() { s.admit.endPending(pendingSrc) })
			defer endPending()
		}
	}
	log := s.log.With("client", ss.remote)
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlivePeriod(tcpKeepAlive)
		tc.SetKeepAlive(true)
		if rc, err := tc.SyscallConn(); err == nil {
			netcfg.SetTCPUserTimeout(rc, writeTimeout)
			netcfg.SetNotSentLowat(rc, notSentLowat)
		}

	}

	// Packets leave through the Outbox in large batches; under TLS each
	// batch is many records, sent together through a corked connection.
	// Reads can be tried without waiting, to batch writes to the TUN device.
	low := batchio.New(raw, &s.corkBufs)
	in := batchio.Stream{Upper: low, Lower: low}
	var out io.Writer = wire.WithWriteDeadline(low, writeTimeout)
	if s.o.TLS != nil {
		tconn := tls.Server(low, cur.TLS)
		in.Upper = tconn
		// Not offered as a wire.TryWriter: the goroutines that queue
		// packets for a client (the TUN reader serves every client) must
		// never write to its connection themselves, where a write the TLS
		// layer makes from the read side (an alert) could hold them up.
		out = batchWriter{batchio.Writer{Upper: wire.WithWriteDeadline(tconn, writeTimeout), Lower: low}}
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := tconn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			code := s.c.handshakeFailed(err)
			s.logLimited("handshake "+winerr.Hex(code), slog.LevelInfo, "TLS handshake failed", "client", ss.remote, "code", winerr.Hex(code), "err", err)
			return
		}
		if pcs := tconn.ConnectionState().PeerCertificates; len(pcs) > 0 {
			ss.subject = pcs[0].Subject.String()
		}
		ss.conn = tconn
	}

	r := wire.NewReaderPool(in, readerSize, &s.readBufs)
	defer r.Release()
	ss.conn.SetReadDeadline(time.Now().Add(cur.HeadTimeout))
	req, err := r.ReadRequest(maxHead)
	if err != nil {
		var he *wire.HeadError
		switch {
		case errors.As(err, &he):
			s.reject(ss, he.Status, cur.ServerHeader)
			s.logLimited("head", slog.LevelInfo, "bad IP-HTTPS request head", "client", ss.remote, "err", err, "status", he.Status)
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.c.headTimeouts.Add(1)
			s.logLimited("head", slog.LevelInfo, "no IP-HTTPS request head in time", "client", ss.remote, "head_timeout", cur.HeadTimeout)
		default:
			code := s.c.handshakeFailed(err)
			s.logLimited("head", slog.LevelInfo, "no IP-HTTPS request", "client", ss.remote, "code", winerr.Hex(code), "err", err)
		}
		return
	}
	switch {
	case req.Method != http.MethodPost:
		s.reject(ss, http.StatusMethodNotAllowed, cur.ServerHeader)
		s.logLimited("request", slog.LevelInfo, "request refused: method is not POST", "client", ss.remote, "method", req.Method, "path", req.Path)
		return
	case !pathMatches(req.Path, cur.Path):
		s.reject(ss, http.StatusNotFound, cur.ServerHeader)
		s.logLimited("request", slog.LevelInfo, "request refused: not the IP-HTTPS path", "client", ss.remote, "path", req.Path, "want", cur.Path)
		return
	}
	ss.conn.SetReadDeadline(time.Time{})
	endPending()

	// [MS-IPHTTPS] 3.2.5.1: add a Client Table entry or just disconnect.
	ss.outbox = wire.NewOutboxPool(outboxLimit, &s.buffers)
	if why := s.addSession(ss, cur); why != "" {
		if why == refusedModeChanged {
			log.Info("client refused: the authentication mode changed during its handshake; it must reconnect")
		} else if why != refusedClosing {
			s.c.refused(why)
			s.logLimited(why, slog.LevelWarn, "client refused: session limit reached", "client", ss.remote, "reason", why,
				"max_clients", cur.Limits.MaxClients, "max_clients_per_source", cur.Limits.MaxClientsPerSource)
		}
		return
	}
	defer s.removeSession(ss)
	stop() // from here closeSessions ends the connection, saying goodbye
	s.c.sessionsTotal.Add(1)
	s.c.sessionsActive.Add(1)
	defer s.c.sessionsActive.Add(^uint64(0))

	head := wire.AppendResponse(nil, cur.ServerHeader, time.Now())
	ss.conn.SetWriteDeadline(time.Now().Add(errorDeadline))
	if _, err := ss.conn.Write(head); err != nil {
		log.Info("client went away before the response", "err", err)
		return
	}
	ss.conn.SetWriteDeadline(time.Time{})
	log.Info("client connected", "subject", ss.subject, "host", req.Host)

	// The sending side runs a goroutine only while it has packets to send.
	done := make(chan error, 1)
	ss.outbox.Go(out, func(err error) {
		if err != nil {
			ss.close() // a failed writer ends the session: the reader sees the close
		}
		done <- err
	})
	s.router.Advertise(ss.client)
	err = s.receive(ss, r)
	notIPv6 := errors.Is(err, wire.ErrNotIPv6) || errors.Is(err, wire.ErrJumbogram)
	if notIPv6 {
		// Counted before the close, so whoever sees the close sees the count.
		s.router.RecordDrop(ss.client, router.DropNotIPv6)
	}
	ss.close()
	werr := <-done
	switch {
	case notIPv6:
		log.Warn("client sent data that is not an IPv6 packet; session closed", "err", err)
	case errors.Is(err, wire.ErrTruncated):
		s.c.dropTruncated.Add(1)
		log.Info("client disconnected inside a packet", "err", err)
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		log.Info("client disconnected", "packets_in", ss.client.Stats().RxPackets)
	default:
		if werr != nil {
			err = werr
		}
		log.Info("client connection ended", "err", err)
	}
}

// receive deframes the client's packets and hands them to the router; packets
// for the host are gathered and written to the TUN device in batches.
func (s *Server) receive(ss *session, r *wire.Reader) error {
	var w *tundev.Writer
	defer func() {
		if w != nil {
			s.flush(w)
		}
	}()
	for {
		pkt, err := r.Next()
		if err != nil {
			return err
		}
		if s.router.FromClient(ss.client, pkt) == router.ToHost {
			if w == nil {
				w = s.writers.Get().(*tundev.Writer)
			}
			if err := w.Add(pkt); err != nil {
				s.c.tunWriteErrors.Add(1)
			}
		}
		// Flush the batch to the TUN device only when the next read would
		// wait: records already received keep extending it.
		if w != nil && !r.HasPacket() && !r.TryFill() {
			s.flush(w)
			w = nil
		}
	}
}

func (s *Server) flush(w *tundev.Writer) {
	if err := w.Flush(); err != nil {
		s.c.tunWriteErrors.Add(1)
		s.log.Debug("TUN write failed", "err", err)
	}
	s.writers.Put(w)
}

// pathMatches compares case-insensitively, as HTTP.sys does, allowing a
// trailing slash.
func pathMatches(p, want string) bool {
	return strings.EqualFold(strings.TrimSuffix(p, "/"), want)
}

func (s *Server) reject(ss *session, code int, serverHeader string) {
	switch code {
	case http.StatusNotFound:
		s.c.notFound.Add(1)
	case http.StatusMethodNotAllowed:
		s.c.badMethod.Add(1)
	default:
		s.c.badRequest.Add(1)
	}
	ss.conn.SetWriteDeadline(time.Now().Add(errorDeadline))
	ss.conn.Write(wire.AppendError(nil, code, serverHeader, time.Now()))
}

func dropKey(reason string) string {
	k := strings.ToLower(strings.NewReplacer(" ", "_", "-", "_").Replace(reason))
	if !strings.HasPrefix(k, "drop_") {
		k = "drop_" + k
	}
	return k
}
