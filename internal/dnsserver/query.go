package dnsserver

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"time"

	"github.com/miekg/dns"
)

const (
	// udpSize is the EDNS buffer size we advertise and the largest answer we
	// send over UDP, whatever the client offers (DNS flag day 2020: no IP
	// fragmentation).
	udpSize = 1232
	// maxChain bounds the CNAMEs followed in one answer.
	maxChain = 8
)

// result is a resolved answer, before packing.
type result struct {
	rcode             int
	aa                bool
	answer, ns, extra []dns.RR
	glue              int // the first glue records of extra must not be dropped

	// exit is the key of the last CNAME target when it leaves the zone the
	// answer was compiled for, or ends in a delegation (compile time only).
	exit string
	// wild counts the chain steps answered by wildcard synthesis; stopped is
	// set when the chain ended on a loop or the length limit.
	wild     int
	stopped  bool
	referral bool
}

// resolver runs the authoritative lookup algorithm (RFC 1034 4.3.2 with RFC
// 4592 wildcards) over compiled zones. At query time cat lets CNAME chains
// continue into our other zones; at compile time cat is nil, chains stop at
// the zone's edge, and track records every name looked up.
type resolver struct {
	cat   *catalog
	track func(key string)
	visit func(src *node) // sees each name whose data the chain consults (compile time)
}

func (r *resolver) note(key string) {
	if r.track != nil {
		r.track(key)
	}
}

// locate finds key in z: its node, or else its closest encloser and the
// wildcard below that.
func (r *resolver) locate(z *zoneView, key string) (n, ce, wild *node) {
	r.note(key)
	if n = z.get(key); n != nil {
		return n, nil, nil
	}
	for i := int(key[0]) + 1; i < len(key); i += int(key[i]) + 1 {
		if ce = z.get(key[i:]); ce != nil {
			break
		}
		r.note(key[i:])
	}
	if ce != nil && ce.cut == nil {
		wild = z.get("\x01*" + ce.key)
	}
	return nil, ce, wild
}

// resolve answers qname (key: its key) of type qtype from zone z.
func (r *resolver) resolve(z *zoneView, qname, key string, qtype uint16) result {
	res := result{aa: true}
	var seen [maxChain + 1]string
	name := qname
	for step := 0; ; step++ {
		seen[step] = key
		n, ce, wild := r.locate(z, key)
		cut := ce
		if n != nil {
			cut = n
		}
		if cut != nil {
			cut = cut.cut
		}
		if cut != nil && (n != cut || qtype != dns.TypeDS) {
			if step > 0 && r.cat == nil {
				res.exit = key
			}
			r.referral(z, z.get(cut.key), &res)
			return res
		}
		src := n
		if src == nil {
			if wild == nil {
				res.rcode = dns.RcodeNameError
				res.ns = []dns.RR{z.neg}
				return res
			}
			src = wild
			res.wild++
		}
		synth := src != n
		if r.visit != nil {
			r.visit(src)
		}
		if qtype == dns.TypeANY {
			// RFC 8482: one RRset rather than everything at the name.
			if len(src.sets) > 0 {
				res.answer = appendOwned(res.answer, src.sets[0].rrs, name, synth)
				r.additional(z, src.sets[0].rrs, &res)
				return res
			}
		} else if rrs := src.set(qtype); rrs != nil {
			res.answer = appendOwned(res.answer, rrs, name, synth)
			r.additional(z, rrs, &res)
			return res
		} else if cn := src.set(dns.TypeCNAME); cn != nil {
			res.answer = appendOwned(res.answer, cn, name, synth)
			c, ok := cn[0].(*dns.CNAME)
			if !ok {
				return res
			}
			target := c.Target
			tkey, err := wireKey(target)
			if err != nil {
				return res
			}
			if step+1 > maxChain || contains(seen[:step+1], tkey) {
				res.stopped = true
				return res
			}
			if r.cat == nil {
				if !inZone(tkey, z.apex) {
					res.exit = tkey
					return res
				}
			} else if z = r.cat.find(tkey); z == nil {
				// Not ours: the client resolves the rest.
				return res
			}
			name, key = target, tkey
			continue
		}
		res.ns = []dns.RR{z.neg}
		return res
	}
}

func contains(keys []string, k string) bool {
	for _, s := range keys {
		if s == k {
			return true
		}
	}
	return false
}

// appendOwned appends rrs to dst; synthesized from a wildcard, the records
// get the query name as owner (RFC 4592 2.2).
func appendOwned(dst, rrs []dns.RR, name string, synth bool) []dns.RR {
	if !synth {
		return append(dst, rrs...)
	}
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = name
		dst = append(dst, c)
	}
	return dst
}

// referral answers with the delegation at cut: its NS set in authority, not
// authoritative (unless a CNAME chain led here), and the glue in additional,
// in-domain glue first since it is required (RFC 9471).
func (r *resolver) referral(z *zoneView, cut *node, res *result) {
	if len(res.answer) == 0 {
		res.aa = false
	}
	res.referral = true
	ns := cut.set(dns.TypeNS)
	res.ns = append(res.ns, ns...)
	var required, optional []dns.RR
	var done []string
	for _, rr := range ns {
		n, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		tkey, ok := r.target(z, n.Ns, &done)
		if !ok {
			continue
		}
		t := z.get(tkey)
		if t == nil {
			continue
		}
		if inZone(tkey, cut.key) {
			required = appendAddrs(required, t)
		} else {
			optional = appendAddrs(optional, t)
		}
	}
	res.glue = len(required)
	res.extra = append(required, optional...)
}

// additional adds the addresses of the in-zone targets of MX, SRV and NS
// answers (RFC 1035 3.3, RFC 2782).
func (r *resolver) additional(z *zoneView, rrs []dns.RR, res *result) {
	var done []string
	for _, rr := range rrs {
		var target string
		switch v := rr.(type) {
		case *dns.MX:
			target = v.Mx
		case *dns.SRV:
			target = v.Target
		case *dns.NS:
			target = v.Ns
		default:
			return
		}
		tkey, ok := r.target(z, target, &done)
		if !ok {
			continue
		}
		if t := z.get(tkey); t != nil {
			res.extra = appendAddrs(res.extra, t)
		}
	}
}

// target returns the key of an additional-section target, unless it is the
// root, outside z, or already done.
func (r *resolver) target(z *zoneView, target string, done *[]string) (string, bool) {
	if target == "." || target == "" {
		return "", false
	}
	key, err := wireKey(target)
	if err != nil || !inZone(key, z.apex) || contains(*done, key) {
		return "", false
	}
	*done = append(*done, key)
	r.note(key)
	return key, true
}

func appendAddrs(dst []dns.RR, n *node) []dns.RR {
	dst = append(dst, n.set(dns.TypeA)...)
	return append(dst, n.set(dns.TypeAAAA)...)
}

// ServeDNSContext answers r with the full semantics of the server. Requests
// with an opcode in s.opcodes (NOTIFY, UPDATE) or a QUERY for a type in
// s.qtypes (AXFR, IXFR) go to those handlers, with ctx; other opcodes get
// NOTIMP. A QUERY must have one question and no answer or authority records
// (else FORMERR); EDNS versions above 0 get BADVERS; a TSIG that does not
// verify gets NOTAUTH, one that does gets a signed answer. The answer fits
// the client's UDP limit when w is a UDP writer: optional additional
// records are dropped first, then TC is set with no records.
func (s *Server) ServeDNSContext(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	if r.Response {
		// Never answer an answer: that is how reflection loops start.
		return
	}
	if h := s.opcodes[r.Opcode]; h != nil {
		h(ctx, w, r)
		return
	}
	m := reply(r)
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		writeReply(w, m)
		return
	}
	if len(r.Question) != 1 {
		m.Question = nil
		m.Rcode = dns.RcodeFormatError
		writeReply(w, m)
		return
	}
	q := r.Question[0]
	// Before the section checks: an IXFR request carries the client's SOA
	// in authority (RFC 1995 3).
	if h := s.qtypes[q.Qtype]; h != nil {
		h(ctx, w, r)
		return
	}
	if len(r.Answer) != 0 || len(r.Ns) != 0 {
		m.Rcode = dns.RcodeFormatError
		writeReply(w, m)
		return
	}
	opt, ok := ednsOf(r)
	if !ok {
		m.Rcode = dns.RcodeFormatError
		writeReply(w, m)
		return
	}
	if opt != nil {
		m.SetEdns0(udpSize, opt.Do())
		if opt.Version() != 0 {
			// RFC 6891 6.1.3; Pack puts the upper rcode bits in the OPT.
			m.Rcode = dns.RcodeBadVers
			writeReply(w, m)
			return
		}
	}
	if t := r.IsTsig(); t != nil {
		if err := w.TsigStatus(); err != nil {
			s.tsigRefuse(w, m, r, t, err)
			return
		}
		m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
	}
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
		m.Rcode = dns.RcodeRefused
	case q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG:
		m.Rcode = dns.RcodeFormatError
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
	case q.Qtype == dns.TypeMAILA || q.Qtype == dns.TypeMAILB || q.Qtype == dns.TypeTKEY:
		m.Rcode = dns.RcodeNotImplemented
	}
	if m.Rcode != dns.RcodeSuccess {
		writeReply(w, m)
		return
	}
	key, err := wireKey(q.Name)
	if err != nil {
		m.Rcode = dns.RcodeFormatError
		writeReply(w, m)
		return
	}
	cat := s.cat.Load()
	z := cat.find(key)
	if z == nil {
		// Not ours, and we never recurse.
		m.Rcode = dns.RcodeRefused
		writeReply(w, m)
		return
	}
	res := (&resolver{cat: cat}).resolve(z, q.Name, key, q.Qtype)
	m.Rcode = res.rcode
	m.Authoritative = res.aa
	m.Answer, m.Ns = res.answer, res.ns
	extra := m.Extra // OPT, TSIG
	m.Extra = append(res.extra[:len(res.extra):len(res.extra)], extra...)
	fit(m, len(res.extra)-res.glue, len(extra), answerLimit(w, opt))
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write", "peer", w.RemoteAddr(), "err", err)
	}
}

// reply returns the skeleton of an answer to r: RD and CD copied (RFC 1035,
// RFC 6840 5.9), RA never set.
func reply(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	m.Question = r.Question
	m.Compress = true
	return m
}

// writeReply writes an answer with no records. A failed write needs no
// handling: the client asks again.
func writeReply(w dns.ResponseWriter, m *dns.Msg) {
	_ = w.WriteMsg(m)
}

// ednsOf returns r's OPT record; ok is false when r carries several.
func ednsOf(r *dns.Msg) (opt *dns.OPT, ok bool) {
	for _, rr := range r.Extra {
		if o, is := rr.(*dns.OPT); is {
			if opt != nil {
				return nil, false
			}
			opt = o
		}
	}
	return opt, true
}

// answerLimit returns the largest answer the client takes: over UDP 512
// bytes, or its EDNS buffer size up to ours; over TCP a whole message.
func answerLimit(w dns.ResponseWriter, opt *dns.OPT) int {
	if _, udp := w.LocalAddr().(*net.UDPAddr); !udp {
		return dns.MaxMsgSize
	}
	return udpLimit(opt)
}

func udpLimit(opt *dns.OPT) int {
	if opt == nil {
		return dns.MinMsgSize
	}
	return clampUDP(int(opt.UDPSize()))
}

func clampUDP(n int) int {
	return min(max(n, dns.MinMsgSize), udpSize)
}

// tsigOverhead is room kept for the TSIG record of a signed answer (name,
// algorithm, a SHA-512 MAC and the fixed fields).
const tsigOverhead = 200

// fit makes m fit in limit bytes: first by dropping the optional additional
// records (the optional records before the last trailing ones, OPT and
// TSIG), then, if the answer still does not fit, by sending no records with
// TC set so that the client retries over TCP.
func fit(m *dns.Msg, optional, trailing int, limit int) {
	if m.IsTsig() != nil {
		limit -= tsigOverhead
	}
	if m.Len() <= limit {
		return
	}
	keep := len(m.Extra) - trailing - optional
	m.Extra = append(m.Extra[:keep:keep], m.Extra[len(m.Extra)-trailing:]...)
	if m.Len() <= limit {
		return
	}
	m.Truncated = true
	m.Answer, m.Ns = nil, nil
	m.Extra = m.Extra[len(m.Extra)-trailing:]
}

// tsigRefuse answers a request whose TSIG did not verify: NOTAUTH with the
// TSIG error (RFC 8945 5.2). BADKEY and BADSIG answers are unsigned; a
// BADTIME answer is signed and carries our time.
func (s *Server) tsigRefuse(w dns.ResponseWriter, m, r *dns.Msg, t *dns.TSIG, err error) {
	m.Rcode = dns.RcodeNotAuth
	code := uint16(dns.RcodeBadSig)
	switch {
	case errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		code = dns.RcodeBadKey
	case errors.Is(err, dns.ErrTime):
		code = dns.RcodeBadTime
	}
	rr := &dns.TSIG{
		Hdr:        dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  t.Algorithm,
		TimeSigned: t.TimeSigned,
		Fudge:      t.Fudge,
		OrigId:     r.Id,
		Error:      code,
	}
	if code == dns.RcodeBadTime {
		var now [8]byte
		binary.BigEndian.PutUint64(now[:], uint64(time.Now().Unix()))
		rr.OtherLen = 6
		rr.OtherData = hex.EncodeToString(now[2:])
	}
	m.Extra = append(m.Extra, rr)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write", "peer", w.RemoteAddr(), "err", err)
	}
}
