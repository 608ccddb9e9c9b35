package dnsserver

import (
	"encoding/binary"

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
