package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxUDPWorkers bounds the requests the UDP loop hands to goroutines
// (UPDATE, NOTIFY, transfers: they may block). Beyond it they are refused.
const maxUDPWorkers = 64

// ServeUDP answers queries arriving on conn until ctx is done, then returns
// nil (or an error if reading fails for another reason). One goroutine
// reads, answers plain queries from the compiled view without allocating,
// and answers everything else through the slow path; requests for the
// transfer/update handlers run on goroutines of their own, which ServeUDP
// waits for before it returns. To stop reading it sets a past read deadline
// on conn; closing conn is the caller's job.
//
// On Linux, a *net.UDPConn is served in batches (recvmmsg and sendmmsg) with
// system calls that bypass the Go runtime's bookkeeping: see udp_linux.go.
// Other connections go through net.PacketConn's methods.
func (s *Server) ServeUDP(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxUDPWorkers)

	if uc, ok := conn.(*net.UDPConn); ok {
		return s.serveUDPBatch(ctx, uc, &wg, sem)
	}
	return s.serveUDPLoop(ctx, conn, &wg, sem)
}

// serveUDPLoop is ServeUDP one packet at a time, through the methods of
// conn.
func (s *Server) serveUDPLoop(ctx context.Context, conn net.PacketConn, wg *sync.WaitGroup, sem chan struct{}) error {
	uc, _ := conn.(*net.UDPConn)
	in := make([]byte, dns.MaxMsgSize)
	out := make([]byte, udpSize)
	for {
		var (
			n    int
			ap   netip.AddrPort
			addr net.Addr
			err  error
		)
		// UDPConn's AddrPort methods do not allocate; ReadFrom would.
		if uc != nil {
			n, ap, err = uc.ReadFromUDPAddrPort(in)
		} else {
			n, addr, err = conn.ReadFrom(in)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serve udp %s: %w", conn.LocalAddr(), err)
		}
		m, res := s.answerFast(in[:n], out)
		switch res {
		case fastDone:
			// A failed send is like a lost packet: the client asks again.
			if uc != nil {
				_, _ = uc.WriteToUDPAddrPort(out[:m], ap)
			} else {
				_, _ = conn.WriteTo(out[:m], addr)
			}
		case fastSlow:
			if uc != nil {
				addr = net.UDPAddrFromAddrPort(ap)
			}
			s.serveSlowUDP(ctx, conn, addr, in[:n], wg, sem)
		}
	}
}

// serveSlowUDP answers one packet the fast path passed on.
func (s *Server) serveSlowUDP(ctx context.Context, conn net.PacketConn, addr net.Addr, raw []byte, wg *sync.WaitGroup, sem chan struct{}) {
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		// Something with a query header gets FORMERR; less is garbage.
		if len(raw) < 12 || raw[2]&0x80 != 0 {
			return
		}
		var b [12]byte
		copy(b[:2], raw[:2])
		b[2] = 0x80 | raw[2]&0x79 // QR, opcode and RD of the query
		b[3] = dns.RcodeFormatError
		_, _ = conn.WriteTo(b[:], addr)
		return
	}
	if req.Response {
		return
	}
	w := &udpWriter{conn: conn, addr: addr, limit: dns.MinMsgSize, tsig: s.tsig}
	if opt, ok := ednsOf(req); ok {
		w.limit = udpLimit(opt)
	}
	if t := req.IsTsig(); t != nil {
		w.mac = t.MAC
		w.status = dns.ErrSecret
		if s.tsig != nil {
			// TsigVerify rewrites the ID in the buffer it is given.
			w.status = dns.TsigVerifyWithProvider(append([]byte(nil), raw...), s.tsig, "", false)
		}
	}
	hooked := s.opcodes[req.Opcode] != nil ||
		req.Opcode == dns.OpcodeQuery && len(req.Question) == 1 && s.qtypes[req.Question[0].Qtype] != nil
	if !hooked {
		s.ServeDNSContext(ctx, w, req)
		return
	}
	select {
	case sem <- struct{}{}:
	default:
		m := reply(req)
		m.Rcode = dns.RcodeRefused
		writeReply(w, m)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-sem }()
		s.ServeDNSContext(ctx, w, req)
	}()
}

// errTooBig is returned by udpWriter.Write for an answer larger than the
// client accepts.
var errTooBig = errors.New("answer larger than the client's UDP limit")

// udpWriter is the dns.ResponseWriter of the UDP slow path. Like miekg's, it
// signs answers that carry a TSIG record; unlike it, it never sends more
// than the client accepts.
type udpWriter struct {
	conn   net.PacketConn
	addr   net.Addr
	limit  int
	tsig   dns.TsigProvider
	mac    string // the request's TSIG MAC, for signing the answer
	status error  // the request's TSIG verification
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return w.addr }
func (w *udpWriter) Close() error         { return nil }
func (w *udpWriter) TsigStatus() error    { return w.status }
func (w *udpWriter) TsigTimersOnly(bool)  {}
func (w *udpWriter) Hijack()              {}

// WriteMsg packs m (signing it when it carries a TSIG record) and sends it,
// truncated to the client's limit if the handler did not.
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := w.pack(m)
	if err != nil {
		return fmt.Errorf("pack answer: %w", err)
	}
	if len(b) > w.limit {
		m.Truncate(w.limit)
		if b, err = w.pack(m); err != nil {
			return fmt.Errorf("pack answer: %w", err)
		}
		if len(b) > w.limit {
			// Signed answers are not truncated by miekg: send TC alone.
			t := reply(m)
			t.Response, t.Rcode, t.Truncated = true, m.Rcode, true
			t.Authoritative = m.Authoritative
			if b, err = t.Pack(); err != nil {
				return fmt.Errorf("pack answer: %w", err)
			}
		}
	}
	_, err = w.Write(b)
	return err
}

func (w *udpWriter) pack(m *dns.Msg) ([]byte, error) {
	if m.IsTsig() != nil && w.tsig != nil {
		b, _, err := dns.TsigGenerateWithProvider(m, w.tsig, w.mac, false)
		return b, err
	}
	return m.Pack()
}

// Write sends b as the answer.
func (w *udpWriter) Write(b []byte) (int, error) {
	if len(b) > w.limit {
		return 0, errTooBig
	}
	return w.conn.WriteTo(b, w.addr)
}
