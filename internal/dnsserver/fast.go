package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// fastResult says what the fast path did with a packet.
type fastResult uint8

const (
	fastSlow fastResult = iota // hand it to the slow path
	fastDone                   // the answer is in the output buffer
	fastDrop                   // not even a query: no answer at all
)

// Header flag bits (RFC 1035 4.1.1, RFC 4035 for CD).
const (
	flagQR = 0x8000
	flagTC = 0x0200
	flagRD = 0x0100
	flagCD = 0x0010

	optLen = 11 // an OPT record with no options
)

// answerFast answers the plain query in req from the compiled view into out
// (at least udpSize bytes) without allocating. It parses only the header,
// the question and an OPT record; anything else (other opcodes, TSIG, a
// second question, EDNS versions above 0, meta types, names with an answer
// not compiled) goes to the slow path, and packets without a header or
// that are responses are dropped.
func (s *Server) answerFast(req, out []byte) (int, fastResult) {
	if len(req) < 12 {
		return 0, fastDrop
	}
	flags := binary.BigEndian.Uint16(req[2:])
	if flags&flagQR != 0 {
		return 0, fastDrop
	}
	if flags&0x7A00 != 0 || // opcode other than QUERY, or TC
		binary.BigEndian.Uint16(req[4:]) != 1 ||
		binary.BigEndian.Uint16(req[6:]) != 0 ||
		binary.BigEndian.Uint16(req[8:]) != 0 {
		return 0, fastSlow
	}
	ar := binary.BigEndian.Uint16(req[10:])
	if ar > 1 {
		return 0, fastSlow
	}

	// The question name, lowercased into key; no compression in a question.
	var key [255]byte
	kl, off := 0, 12
	for {
		if off >= len(req) {
			return 0, fastSlow
		}
		l := int(req[off])
		if l == 0 {
			break
		}
		if l > 63 || off+1+l > len(req) || kl+1+l >= len(key) {
			return 0, fastSlow
		}
		key[kl] = byte(l)
		copy(key[kl+1:], req[off+1:off+1+l])
		lower(key[kl+1 : kl+1+l])
		kl += 1 + l
		off += 1 + l
	}
	key[kl] = 0
	kl++
	off++
	if off+4 > len(req) {
		return 0, fastSlow
	}
	qtype := binary.BigEndian.Uint16(req[off:])
	if binary.BigEndian.Uint16(req[off+2:]) != dns.ClassINET {
		return 0, fastSlow
	}
	switch qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB,
		dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return 0, fastSlow
	}
	qend := off + 4
	off = qend

	edns, do, limit := false, false, dns.MinMsgSize
	if ar == 1 {
		if off+optLen > len(req) || req[off] != 0 ||
			binary.BigEndian.Uint16(req[off+1:]) != dns.TypeOPT {
			return 0, fastSlow
		}
		ttl := binary.BigEndian.Uint32(req[off+5:])
		if ttl>>16&0xFF != 0 { // EDNS version: BADVERS on the slow path
			return 0, fastSlow
		}
		rdlen := int(binary.BigEndian.Uint16(req[off+9:]))
		if off+optLen+rdlen != len(req) || !validOptions(req[off+optLen:]) {
			return 0, fastSlow
		}
		edns, do = true, ttl&0x8000 != 0
		limit = clampUDP(int(binary.BigEndian.Uint16(req[off+3:])))
		off += optLen + rdlen
	}
	if off != len(req) {
		return 0, fastSlow
	}

	cat := s.cat.Load()
	z := cat.findBytes(key[:kl])
	var t *template
	if z != nil {
		t = lookupFast(z, key[:kl], qtype)
		if t == nil || t.slow {
			return 0, fastSlow
		}
		if exit := t.exit(); len(exit) > 0 {
			if other := cat.findBytes(exit); other != nil && other != z {
				return 0, fastSlow
			}
		}
	}

	// Header and question, the question as the client wrote it.
	qlen := kl
	hdr := qend
	copy(out[:2], req[:2])
	copy(out[12:hdr], req[12:qend])
	an, ns, arOut := uint16(0), uint16(0), uint16(0)
	var f uint16
	n := hdr
	if t == nil {
		f = flagQR | dns.RcodeRefused
	} else {
		f = t.flags
		body, arKeep := t.body(), t.ar
		extra := 0
		if edns {
			extra = optLen
		}
		switch {
		case hdr+len(body)+extra <= limit:
		case hdr+int(t.minLen)+extra <= limit:
			body, arKeep = body[:t.minLen], t.arMin
		default:
			body, arKeep = nil, 0
			f |= flagTC
		}
		if body != nil {
			an, ns, arOut = t.an, t.ns, arKeep
		}
		copy(out[hdr:], body)
		if delta := qlen - int(t.refLen); delta != 0 {
			for i := range int(t.nreloc) {
				r := t.reloc(i)
				if r >= len(body) {
					break
				}
				p := hdr + r
				v := int(binary.BigEndian.Uint16(out[p:])&0x3FFF) + delta
				binary.BigEndian.PutUint16(out[p:], 0xC000|uint16(v))
			}
		}
		n += len(body)
	}
	f |= flags & (flagRD | flagCD)
	binary.BigEndian.PutUint16(out[2:], f)
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], an)
	binary.BigEndian.PutUint16(out[8:], ns)
	if edns {
		arOut++
		o := out[n : n+optLen]
		o[0] = 0
		binary.BigEndian.PutUint16(o[1:], dns.TypeOPT)
		binary.BigEndian.PutUint16(o[3:], udpSize)
		var ttl uint32
		if do {
			ttl = 0x8000
		}
		binary.BigEndian.PutUint32(o[5:], ttl)
		binary.BigEndian.PutUint16(o[9:], 0)
		n += optLen
	}
	binary.BigEndian.PutUint16(out[10:], arOut)
	return n, fastDone
}

// validOptions reports whether b is a well-formed list of EDNS options
// (code, length, data). Their content is ignored, as RFC 6891 6.1.2 asks
// for unknown options; a malformed list goes to the slow path for FORMERR.
func validOptions(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		l := 4 + int(binary.BigEndian.Uint16(b[2:]))
		if l > len(b) {
			return false
		}
		b = b[l:]
	}
	return true
}

// lookupFast returns the compiled answer for key (lowercase, in z), or nil.
func lookupFast(z *zoneView, key []byte, qtype uint16) *template {
	if n := z.getBytes(key); n != nil {
		if n.cut != nil && (n.cut != n || qtype != dns.TypeDS) {
			return z.get(n.cut.key).referral
		}
		return n.answer(qtype)
	}
	for i := int(key[0]) + 1; i < len(key); i += int(key[i]) + 1 {
		ce := z.getBytes(key[i:])
		if ce == nil {
			continue
		}
		if ce.cut != nil {
			return z.get(ce.cut.key).referral
		}
		var wk [256]byte
		wk[0], wk[1] = 1, '*'
		wl := 2 + copy(wk[2:], key[i:])
		if w := z.getBytes(wk[:wl]); w != nil {
			if w.cut != nil {
				// A wildcard owning NS (RFC 4592 4.2): rare and
				// odd, left to the slow path.
				return nil
			}
			return w.answer(qtype)
		}
		return z.nx
	}
	return nil
}

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
func (s *Server) ServeUDP(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxUDPWorkers)

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
			s.serveSlowUDP(ctx, conn, addr, in[:n], &wg, sem)
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
