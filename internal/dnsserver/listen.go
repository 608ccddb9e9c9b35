package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// ListenUDP opens n UDP sockets bound to the same addr with SO_REUSEPORT,
// so that the kernel spreads the queries over n ServeUDP loops. When addr
// has port 0 the first socket picks the port and the others bind to it.
// Where SO_REUSEPORT does not exist (non-Unix systems) it opens one socket
// whatever n is. Each socket gets a receive buffer of UDPRecvBuffer bytes
// where the system allows it, and on a wildcard address (0.0.0.0 or ::,
// which open one dual-stack socket each) reports every query's
// destination address from the start, so that ServeUDP answers from it.
// On error no socket is left open.
func ListenUDP(addr string, n int) ([]net.PacketConn, error) {
	if n < 1 {
		n = 1
	}
	if !reusePortSupported {
		n = 1
	}
	lc := net.ListenConfig{Control: listenControl}
	var conns []net.PacketConn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for range n {
		// Binding does not block: there is nothing for a context to stop.
		c, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		conns = append(conns, c)
		if uc, ok := c.(*net.UDPConn); ok {
			setRecvBuffer(uc, UDPRecvBuffer)
		}
		if len(conns) == 1 {
			// Bind the others to the port the first one got.
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("listen udp %s: %w", addr, err)
			}
			port := c.LocalAddr().(*net.UDPAddr).Port
			addr = net.JoinHostPort(host, strconv.Itoa(port))
		}
	}
	return conns, nil
}

// listenControl prepares each of ListenUDP's sockets before it is bound:
// SO_REUSEPORT, and on a wildcard address the reporting of each query's
// destination address, from which ServeUDP answers it (see pktinfoFamily).
func listenControl(network, address string, c syscall.RawConn) error {
	if err := reusePort(network, address, c); err != nil {
		return err
	}
	pktinfoControl(network, address, c)
	return nil
}

// UDPRecvBuffer is the receive buffer ListenUDP asks for on each socket
// (NSD, too, raises its own, with SO_RCVBUFFORCE). Linux's default, 208
// KiB (net.core.rmem_default), holds only a few hundred small queries,
// given the kernel's overhead per datagram: bursts such as dnsperf's 200
// queries in flight overflowed it, and the kernel dropped queries before
// the server could read them.
const UDPRecvBuffer = 1 << 20

// TCPLimits bounds what ServeTCPWith gives to clients. Zero fields take the
// defaults.
type TCPLimits struct {
	// MaxConns is the number of connections served at once (default 256);
	// a connection beyond it is closed as soon as it is accepted.
	MaxConns int
	// IdleTimeout is how long a connection may take to send its next query
	// (or the rest of one) before it is closed (default 10 s; RFC 7766 6.2.3
	// asks for seconds, not minutes).
	IdleTimeout time.Duration
	// WriteTimeout bounds the sending of one answer message (default 10 s):
	// a client that stops reading cannot hold a connection, or a transfer,
	// forever.
	WriteTimeout time.Duration
	// MaxQueries is the number of queries answered on one connection before
	// it is closed (default 1000).
	MaxQueries int
}

// Default TCP limits; see TCPLimits.
const (
	DefaultTCPMaxConns     = 256
	DefaultTCPIdleTimeout  = 10 * time.Second
	DefaultTCPWriteTimeout = 10 * time.Second
	DefaultTCPMaxQueries   = 1000
)

func (l TCPLimits) withDefaults() TCPLimits {
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultTCPMaxConns
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultTCPIdleTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultTCPWriteTimeout
	}
	if l.MaxQueries <= 0 {
		l.MaxQueries = DefaultTCPMaxQueries
	}
	return l
}

// ServeTCP is ServeTCPWith with the default limits.
func (s *Server) ServeTCP(ctx context.Context, l net.Listener) error {
	return s.ServeTCPWith(ctx, l, TCPLimits{})
}

// ServeTCPWith answers DNS over TCP (RFC 7766) on l until ctx is done, then
// closes l and every connection, waits for their goroutines and returns nil;
// it returns an error if accepting fails for another reason. Each
// connection runs on a goroutine of its own and may carry several queries,
// answered one after the other in the order they came (pipelined queries
// wait in the socket buffer).
//
// This is our own loop rather than miekg's dns.Server: miekg has no limit
// on connections (each costs a goroutine and a buffer: a client could open
// thousands), its shutdown is not tied to a context, and its writer cannot
// be told apart from an unverified one (see TsigProvider). The loop is
// short, and the writer shares the UDP slow path's TSIG handling.
func (s *Server) ServeTCPWith(ctx context.Context, l net.Listener, lim TCPLimits) error {
	lim = lim.withDefaults()
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, lim.MaxConns)
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isTemporary(err) {
				// Out of file descriptors and the like: wait as net/http
				// does, rather than spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("dns tcp accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return fmt.Errorf("serve tcp %s: %w", l.Addr(), err)
		}
		backoff = 0
		select {
		case sem <- struct{}{}:
		default:
			s.log.Debug("dns tcp connection over the limit", "peer", c.RemoteAddr(), "limit", lim.MaxConns)
			_ = c.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s.serveConn(ctx, c, lim)
		})
	}
}

// isTemporary reports accept errors worth retrying (EMFILE, ECONNABORTED
// and the like). net.Error.Temporary is deprecated but still the only way
// the net package says so.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// serveConn answers the queries of one connection until the client closes
// it, goes idle for lim.IdleTimeout, reaches lim.MaxQueries, sends garbage,
// or ctx is done.
func (s *Server) serveConn(ctx context.Context, c net.Conn, lim TCPLimits) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	w := &tcpWriter{conn: c, tsig: s.tsig, timeout: lim.WriteTimeout}
	var lenBuf [2]byte
	for range lim.MaxQueries {
		// One deadline for the length and the message: a client sending
		// a byte at a time gets no more time than an idle one.
		_ = c.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		raw := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, raw); err != nil {
			return
		}
		if !s.serveTCPMsg(ctx, w, raw) || w.closed {
			return
		}
	}
}

// serveTCPMsg answers one message read from a TCP connection, as the UDP
// slow path does. It returns false when the connection should be closed:
// the message was garbage, and nothing sensible can follow it on a stream.
func (s *Server) serveTCPMsg(ctx context.Context, w *tcpWriter, raw []byte) bool {
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		if len(raw) < 12 || raw[2]&0x80 != 0 {
			return false
		}
		var b [12]byte
		copy(b[:2], raw[:2])
		b[2] = 0x80 | raw[2]&0x79 // QR, opcode and RD of the query
		b[3] = dns.RcodeFormatError
		_, _ = w.Write(b[:])
		return true
	}
	if req.Response {
		return true
	}
	w.reset()
	if t := req.IsTsig(); t != nil {
		w.mac = t.MAC
		w.status = verifyTSIG(s.tsig, raw)
	}
	s.ServeDNSContext(ctx, w, req)
	return true
}

// tcpWriter is the dns.ResponseWriter of a TCP connection. Like miekg's, it
// signs the messages that carry a TSIG record, each over the previous one's
// MAC (the request's for the first), with the timers only once the handler
// calls TsigTimersOnly(true), as multi-message transfers do.
type tcpWriter struct {
	conn    net.Conn
	tsig    dns.TsigProvider
	timeout time.Duration

	// Per request (reset before each one).
	mac        string // the MAC to sign the next message over
	timersOnly bool
	status     error // the request's TSIG verification

	closed bool
	buf    []byte // length prefix and message, reused
}

func (w *tcpWriter) reset() {
	w.mac, w.timersOnly, w.status = "", false, nil
}

func (w *tcpWriter) LocalAddr() net.Addr   { return w.conn.LocalAddr() }
func (w *tcpWriter) RemoteAddr() net.Addr  { return w.conn.RemoteAddr() }
func (w *tcpWriter) TsigStatus() error     { return w.status }
func (w *tcpWriter) TsigTimersOnly(b bool) { w.timersOnly = b }
func (w *tcpWriter) Hijack()               {}
func (w *tcpWriter) Close() error          { w.closed = true; return w.conn.Close() }

// WriteMsg packs m, signing it when it carries a TSIG record, and sends it.
func (w *tcpWriter) WriteMsg(m *dns.Msg) error {
	var (
		b   []byte
		err error
	)
	if m.IsTsig() != nil && w.tsig != nil {
		b, w.mac, err = dns.TsigGenerateWithProvider(m, w.tsig, w.mac, w.timersOnly)
	} else {
		b, err = m.Pack()
	}
	if err != nil {
		return fmt.Errorf("pack answer: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// Write sends b as one message, with its length prefix.
func (w *tcpWriter) Write(b []byte) (int, error) {
	if w.closed {
		return 0, net.ErrClosed
	}
	if len(b) > dns.MaxMsgSize {
		return 0, fmt.Errorf("write answer: %d bytes: %w", len(b), dns.ErrBuf)
	}
	w.buf = append(binary.BigEndian.AppendUint16(w.buf[:0], uint16(len(b))), b...)
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	if _, err := w.conn.Write(w.buf); err != nil {
		return 0, fmt.Errorf("write answer: %w", err)
	}
	return len(b), nil
}
