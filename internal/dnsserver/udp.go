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
// On a *net.UDPConn bound to a wildcard address, each answer leaves from
// the address its query was sent to (see pktinfoFamily).
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

// pktinfoFamily says which control message carries a query's destination
// address in, and its answer's source address out, on a socket bound to a
// wildcard address. A socket bound to one address needs neither: the
// kernel sends from that address. On a wildcard socket it would pick the
// source by route, and on a host with several addresses (a secondary or
// floating address, two on one interface) that may not be the address
// the query was sent to; resolvers, and dig, drop such answers. NSD, Knot
// and CoreDNS answer from the destination address the same way.
type pktinfoFamily uint8

const (
	pktinfoOff pktinfoFamily = iota // bound to one address, or not known
	pktinfo4                        // an IPv4 socket: IP_PKTINFO
	pktinfo6                        // an IPv6 socket, dual-stack ones included: IPV6_PKTINFO
)

// wildcardBound reports whether uc is bound to 0.0.0.0 or ::.
func wildcardBound(uc *net.UDPConn) bool {
	a, ok := uc.LocalAddr().(*net.UDPAddr)
	return ok && a.IP.IsUnspecified()
}

// replySource returns the address an answer to a query sent to dst should
// come from: dst itself, unless it cannot be a source (a multicast or
// broadcast destination), when the kernel picks as it would without one.
func replySource(dst netip.Addr, ok bool) (netip.Addr, bool) {
	u := dst.Unmap()
	if !ok || !u.IsValid() || u.IsUnspecified() || u.IsMulticast() || u == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, false
	}
	return dst, true
}

// servePktinfo turns on destination addresses for uc when it is bound to a
// wildcard address, and returns the family of its control messages. Where
// that fails it logs why and returns pktinfoOff: answers then leave from
// the address the kernel picks.
func (s *Server) servePktinfo(uc *net.UDPConn) pktinfoFamily {
	fam, err := enablePktinfo(uc)
	if err != nil {
		s.log.Warn("dns udp answers may leave from another address than the query reached", "addr", uc.LocalAddr(), "err", err)
	}
	return fam
}

// serveUDPLoop is ServeUDP one packet at a time, through the methods of
// conn.
func (s *Server) serveUDPLoop(ctx context.Context, conn net.PacketConn, wg *sync.WaitGroup, sem chan struct{}) error {
	uc, _ := conn.(*net.UDPConn)
	fam := pktinfoOff
	if uc != nil {
		fam = s.servePktinfo(uc)
	}
	in := make([]byte, dns.MaxMsgSize)
	out := make([]byte, udpSize)
	var inCtl, outCtl []byte
	if fam != pktinfoOff {
		inCtl, outCtl = make([]byte, pktinfoSpace), make([]byte, pktinfoSpace)
	}
	for {
		var (
			n, cn int
			ap    netip.AddrPort
			addr  net.Addr
			err   error
		)
		// UDPConn's AddrPort methods do not allocate; ReadFrom would.
		switch {
		case fam != pktinfoOff:
			n, cn, _, ap, err = uc.ReadMsgUDPAddrPort(in, inCtl)
		case uc != nil:
			n, ap, err = uc.ReadFromUDPAddrPort(in)
		default:
			n, addr, err = conn.ReadFrom(in)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serve udp %s: %w", conn.LocalAddr(), err)
		}
		var src netip.Addr
		if fam != pktinfoOff {
			var ok bool
			if src, ok = replySource(parsePktinfo(inCtl[:cn])); !ok {
				src = netip.Addr{}
			}
		}
		m, res := s.answerFast(in[:n], out)
		switch res {
		case fastDone:
			// A failed send is like a lost packet: the client asks again.
			switch {
			case src.IsValid():
				cn := putPktinfo(outCtl, fam, src)
				_, _, _ = uc.WriteMsgUDPAddrPort(out[:m], outCtl[:cn], ap)
			case uc != nil:
				_, _ = uc.WriteToUDPAddrPort(out[:m], ap)
			default:
				_, _ = conn.WriteTo(out[:m], addr)
			}
		case fastSlow:
			peer := udpPeer{conn: conn, addr: addr}
			if uc != nil {
				peer.addr = net.UDPAddrFromAddrPort(ap)
				peer.setSource(fam, src)
			}
			s.serveSlowUDP(ctx, peer, in[:n], wg, sem)
		}
	}
}

// udpPeer is where the slow path sends an answer: to addr over conn, from
// the address in the control message ctl when there is one (then conn is
// a *net.UDPConn).
type udpPeer struct {
	conn net.PacketConn
	addr net.Addr
	ctl  []byte
}

// setSource makes p's answers leave from src, if it is valid, with the
// control message of family fam.
func (p *udpPeer) setSource(fam pktinfoFamily, src netip.Addr) {
	if !src.IsValid() || fam == pktinfoOff {
		return
	}
	ctl := make([]byte, pktinfoSpace)
	if n := putPktinfo(ctl, fam, src); n > 0 {
		p.ctl = ctl[:n]
	}
}

// send sends b to p.
func (p udpPeer) send(b []byte) (int, error) {
	if p.ctl != nil {
		uc, ok1 := p.conn.(*net.UDPConn)
		ua, ok2 := p.addr.(*net.UDPAddr)
		if ok1 && ok2 {
			n, _, err := uc.WriteMsgUDP(b, p.ctl, ua)
			return n, err
		}
	}
	return p.conn.WriteTo(b, p.addr)
}

// serveSlowUDP answers one packet the fast path passed on.
func (s *Server) serveSlowUDP(ctx context.Context, peer udpPeer, raw []byte, wg *sync.WaitGroup, sem chan struct{}) {
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
		_, _ = peer.send(b[:])
		return
	}
	if req.Response {
		return
	}
	w := &udpWriter{peer: peer, limit: dns.MinMsgSize, tsig: s.tsig}
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
	peer   udpPeer
	limit  int
	tsig   dns.TsigProvider
	mac    string // the request's TSIG MAC, for signing the answer
	status error  // the request's TSIG verification
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.peer.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return w.peer.addr }
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
	return w.peer.send(b)
}
