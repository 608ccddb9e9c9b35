package dnsserver

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"
)

// packMode says how the reference name of a template relates to the names
// it answers.
type packMode uint8

const (
	// packExact: the reference is the query name itself (up to case), so
	// nothing moves.
	packExact packMode = iota
	// packWild: the reference is a wildcard "*.<closest encloser>"; owner
	// names equal to it stand for the query name, and pointers to anything
	// else move with the query name's length.
	packWild
	// packShift: the reference (apex, delegation point) is a suffix of the
	// query name; every pointer moves with the query name's length.
	packShift
)

// maxTarget is the highest offset registered as a compression target: a
// pointer holds 14 bits and may move by up to 255 bytes.
const maxTarget = 0x3FFF - 256

var errNameTooLong = errors.New("name too long")

// packer packs the sections of a template, compressing names against the
// reference question and earlier names, and remembers where the pointers
// that must move are. miekg's packer cannot say where it put pointers, so
// names are written here; rdata without names comes from miekg.
type packer struct {
	mode   packMode
	ref    string
	base   int // offset of the sections in the reference message
	buf    []byte
	names  map[string]int // lowercase wire suffix -> offset in the reference message
	relocs []uint16
	// answering is set while the answer section is packed: only there do
	// owner names equal to a wildcard reference stand for the query name;
	// elsewhere (an address in additional) they are the literal "*" name.
	answering bool
	scr       dns.Msg // scratch for packing rdata
	scrBuf    []byte
}

// reset prepares p for a template answering for the reference name ref.
func (p *packer) reset(ref string, mode packMode) {
	p.mode, p.ref, p.base = mode, ref, 12+len(ref)+4
	p.buf, p.relocs = p.buf[:0], p.relocs[:0]
	if p.names == nil {
		p.names = map[string]int{}
	}
	clear(p.names)
	for i := 0; i < len(ref)-1; i += int(ref[i]) + 1 {
		if i == 0 && mode == packWild {
			// The wildcard name itself only stands for the query name as
			// an owner; in rdata it is the literal "*" name.
			continue
		}
		p.names[ref[i:]] = 12 + i
	}
}

// name writes the domain name s, compressed.
func (p *packer) name(s string, owner bool) error {
	var w, l [256]byte
	n, err := dns.PackDomainName(s, w[:], 0, nil, false)
	if err != nil {
		return err
	}
	copy(l[:], w[:n])
	lower(l[:n])
	if p.mode == packWild && owner && p.answering && string(l[:n]) == p.ref {
		p.ptr(12, false)
		return nil
	}
	for i := 0; i < n; {
		if w[i] == 0 {
			p.buf = append(p.buf, 0)
			return nil
		}
		if off, ok := p.names[string(l[i:n])]; ok {
			p.ptr(off, p.mode != packExact)
			return nil
		}
		if pos := p.base + len(p.buf); pos <= maxTarget {
			p.names[string(l[i:n])] = pos
		}
		end := i + 1 + int(w[i])
		p.buf = append(p.buf, w[i:end]...)
		i = end
	}
	return errNameTooLong
}

func (p *packer) ptr(off int, move bool) {
	if move {
		p.relocs = append(p.relocs, uint16(len(p.buf)))
	}
	p.buf = append(p.buf, byte(0xC0|off>>8), byte(off))
}

// rr writes one record. Names in the rdata of the types RFC 1035 defines are
// compressed (RFC 3597 4 forbids it for any other type).
func (p *packer) rr(rr dns.RR) error {
	h := rr.Header()
	if err := p.name(h.Name, true); err != nil {
		return err
	}
	p.buf = binary.BigEndian.AppendUint16(p.buf, h.Rrtype)
	p.buf = binary.BigEndian.AppendUint16(p.buf, h.Class)
	p.buf = binary.BigEndian.AppendUint32(p.buf, h.Ttl)
	lenAt := len(p.buf)
	p.buf = append(p.buf, 0, 0)
	var err error
	switch v := rr.(type) {
	case *dns.CNAME:
		err = p.name(v.Target, false)
	case *dns.NS:
		err = p.name(v.Ns, false)
	case *dns.PTR:
		err = p.name(v.Ptr, false)
	case *dns.MX:
		p.buf = binary.BigEndian.AppendUint16(p.buf, v.Preference)
		err = p.name(v.Mx, false)
	case *dns.SOA:
		if err = p.name(v.Ns, false); err == nil {
			err = p.name(v.Mbox, false)
		}
		for _, x := range [...]uint32{v.Serial, v.Refresh, v.Retry, v.Expire, v.Minttl} {
			p.buf = binary.BigEndian.AppendUint32(p.buf, x)
		}
	case *dns.A:
		// The two commonest types, written without miekg's packer.
		ip := v.A.To4()
		if ip == nil {
			return dns.ErrRdata
		}
		p.buf = append(p.buf, ip...)
	case *dns.AAAA:
		if len(v.AAAA) != 16 {
			return dns.ErrRdata
		}
		p.buf = append(p.buf, v.AAAA...)
	default:
		err = p.rdata(rr)
	}
	if err != nil {
		return err
	}
	rdlen := len(p.buf) - lenAt - 2
	if rdlen > 0xFFFF {
		return dns.ErrRdata
	}
	binary.BigEndian.PutUint16(p.buf[lenAt:], uint16(rdlen))
	return nil
}

// rdata appends rr's rdata as miekg packs it, uncompressed. It packs a
// one-record message rather than calling dns.PackRR, which writes the
// record's Rdlength field: records are shared with concurrent readers.
func (p *packer) rdata(rr dns.RR) error {
	p.scr.Answer = append(p.scr.Answer[:0], rr)
	b, err := p.scr.PackBuffer(p.scrBuf)
	p.scr.Answer[0] = nil
	if err != nil {
		return err
	}
	p.scrBuf = b
	off := 12
	for off < len(b) && b[off] != 0 {
		off += int(b[off]) + 1
	}
	off += 1 + 10
	if off > len(b) {
		return dns.ErrRdata
	}
	p.buf = append(p.buf, b[off:]...)
	return nil
}

// arenaBlock is the size of the blocks template bodies are carved from:
// one allocation for many small bodies.
const arenaBlock = 64 << 10

// compiler compiles answers: it runs the resolver, packs with one reused
// packer and keeps the packed bytes in shared blocks.
type compiler struct {
	r     resolver
	p     packer
	arena []byte
}

// keep returns a copy of b that lives as long as the compiled view.
func (c *compiler) keep(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if cap(c.arena)-len(c.arena) < len(b) {
		c.arena = make([]byte, 0, max(arenaBlock, len(b)))
	}
	start := len(c.arena)
	c.arena = append(c.arena, b...)
	return c.arena[start:len(c.arena):len(c.arena)]
}

// build packs a resolved answer into a template for the reference name ref.
// An answer that cannot be packed, or is too large for a template, is
// marked slow, so the slow path (and miekg's packer) answers it.
func (c *compiler) build(res result, ref string, mode packMode) template {
	t := template{
		flags:  0x8000 | uint16(res.rcode&0xF),
		an:     uint16(len(res.answer)),
		ns:     uint16(len(res.ns)),
		ar:     uint16(len(res.extra)),
		arMin:  uint16(res.glue),
		refLen: uint8(len(ref)),
	}
	if res.aa {
		t.flags |= 0x0400
	}
	p := &c.p
	p.reset(ref, mode)
	// Answer, authority and the required glue first: minLen marks their
	// end, so an answer without the optional records is a prefix.
	glue := min(res.glue, len(res.extra))
	pack := func(rrs []dns.RR) bool {
		for _, rr := range rrs {
			if err := p.rr(rr); err != nil {
				return false
			}
		}
		return true
	}
	p.answering = true
	ok := pack(res.answer)
	p.answering = false
	if !ok || !pack(res.ns) || !pack(res.extra[:glue]) {
		t.slow = true
		return t
	}
	minLen := len(p.buf)
	if !pack(res.extra[glue:]) || len(p.buf) > 0xFFFF || len(p.relocs) > 0xFF {
		t.slow = true
		return t
	}
	t.secLen, t.minLen, t.nreloc = uint16(len(p.buf)), uint16(minLen), uint8(len(p.relocs))
	for _, r := range p.relocs {
		p.buf = binary.BigEndian.AppendUint16(p.buf, r)
	}
	p.buf = append(p.buf, res.exit...)
	t.data = c.keep(p.buf)
	return t
}
