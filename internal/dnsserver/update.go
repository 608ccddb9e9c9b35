package dnsserver

import (
	"context"
	"time"

	"github.com/miekg/dns"
)

// updateTimeout bounds the wait for an UPDATE's Raft commit. A client that
// has not heard back by then has retried or given up; the request is
// answered SERVFAIL, which tells it the outcome is unknown.
const updateTimeout = 30 * time.Second

// serveUpdate answers an RFC 2136 UPDATE. It checks what can be checked
// without the zone's data: the request is signed with one of our TSIG keys
// (unsigned: REFUSED; bad signature: NOTAUTH with the TSIG error), the zone
// section names one zone we serve, and the prerequisite and update sections
// are well-formed (FORMERR) and inside the zone (NOTZONE). Everything else —
// evaluating the prerequisites and applying the updates, atomically — is the
// state machine's job: Source.Update returns once the change is committed,
// with the rcode to answer.
func (s *Server) serveUpdate(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	m, ok := s.opReply(w, r)
	if !ok {
		return
	}
	signed, ok := s.checkTSIG(w, r, m)
	if !ok {
		return
	}
	if !signed {
		s.log.Info("dns update refused: not signed", "peer", w.RemoteAddr())
		s.finish(w, m, dns.RcodeRefused)
		return
	}
	origin, rcode := s.checkUpdate(r)
	if rcode == dns.RcodeSuccess {
		rcode = s.applyUpdate(ctx, origin, r)
	}
	if rcode == dns.RcodeFormatError && len(r.Question) != 1 {
		m.Question = nil
	}
	s.log.Info("dns update", "peer", w.RemoteAddr(), "zone", origin, "key", r.IsTsig().Hdr.Name,
		"prereqs", len(r.Answer), "updates", len(r.Ns), "rcode", dns.RcodeToString[rcode])
	s.finish(w, m, rcode)
}

// applyUpdate hands a checked update to the source and returns the rcode to
// answer.
func (s *Server) applyUpdate(ctx context.Context, origin string, r *dns.Msg) int {
	ctx, cancel := context.WithTimeout(ctx, updateTimeout)
	defer cancel()
	rcode, err := s.cfg.Source.Update(ctx, origin, r.Answer, r.Ns)
	if err != nil {
		s.log.Warn("dns update not committed", "zone", origin, "err", err)
		return dns.RcodeServerFailure
	}
	if rcode < 0 || rcode > 0xF {
		// Extended rcodes need an OPT; none of RFC 2136's does.
		s.log.Error("dns update: source returned a bad rcode", "zone", origin, "rcode", rcode)
		return dns.RcodeServerFailure
	}
	return rcode
}

// checkUpdate checks the sections of an UPDATE (RFC 2136 3.1, 3.2 and
// 3.4.1) and returns the zone's origin and NOERROR, or the rcode to answer.
func (s *Server) checkUpdate(r *dns.Msg) (origin string, rcode int) {
	if len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeSOA {
		return "", dns.RcodeFormatError
	}
	zone := r.Question[0]
	origin = canonical(zone.Name)
	if zone.Qclass != dns.ClassINET || s.cfg.Source == nil || s.cat.Load().zones[origin] == nil {
		return origin, dns.RcodeNotAuth
	}
	for _, rr := range r.Answer {
		if rc := checkPrereq(origin, rr); rc != dns.RcodeSuccess {
			return origin, rc
		}
	}
	for _, rr := range r.Ns {
		if rc := checkChange(origin, rr); rc != dns.RcodeSuccess {
			return origin, rc
		}
	}
	return origin, dns.RcodeSuccess
}

// checkPrereq checks one record of the prerequisite section (RFC 2136 2.4,
// 3.2.1):
//
//	class ANY,  type ANY,   no rdata: the name is in use
//	class ANY,  type T,     no rdata: an RRset of type T exists
//	class NONE, type ANY,   no rdata: the name is not in use
//	class NONE, type T,     no rdata: no RRset of type T exists
//	class IN,   type T,     rdata:    the RRset of type T is exactly these records
func checkPrereq(origin string, rr dns.RR) int {
	h := rr.Header()
	if h.Ttl != 0 {
		return dns.RcodeFormatError
	}
	if !dns.IsSubDomain(origin, h.Name) {
		return dns.RcodeNotZone
	}
	switch h.Class {
	case dns.ClassANY, dns.ClassNONE:
		if h.Rdlength != 0 || isMeta(h.Rrtype) {
			return dns.RcodeFormatError
		}
	case dns.ClassINET:
		if h.Rrtype == dns.TypeANY || isMeta(h.Rrtype) || !hasRdata(h) {
			return dns.RcodeFormatError
		}
	default:
		return dns.RcodeFormatError
	}
	return dns.RcodeSuccess
}

// checkChange checks one record of the update section (RFC 2136 2.5,
// 3.4.1.3):
//
//	class IN,   type T,   rdata:    add the record
//	class ANY,  type ANY, no rdata: delete every RRset of the name
//	class ANY,  type T,   no rdata: delete the RRset of type T
//	class NONE, type T,   rdata:    delete the record
func checkChange(origin string, rr dns.RR) int {
	h := rr.Header()
	if !dns.IsSubDomain(origin, h.Name) {
		return dns.RcodeNotZone
	}
	switch h.Class {
	case dns.ClassINET:
		if h.Rrtype == dns.TypeANY || isMeta(h.Rrtype) || !hasRdata(h) {
			return dns.RcodeFormatError
		}
	case dns.ClassANY:
		if h.Ttl != 0 || h.Rdlength != 0 || isMeta(h.Rrtype) {
			return dns.RcodeFormatError
		}
	case dns.ClassNONE:
		if h.Ttl != 0 || h.Rrtype == dns.TypeANY || isMeta(h.Rrtype) || !hasRdata(h) {
			return dns.RcodeFormatError
		}
	default:
		return dns.RcodeFormatError
	}
	return dns.RcodeSuccess
}

// isMeta reports the query-only and transaction types, which never name an
// RRset (ANY is handled by the callers: it is allowed in some places).
func isMeta(t uint16) bool {
	switch t {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB,
		dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return true
	}
	return false
}

// hasRdata reports whether a record that must carry data does: a record
// unpacked with an empty rdata has its fields zero, which would reach the
// state machine as a record nobody wrote. The few types whose data may be
// empty pass.
func hasRdata(h *dns.RR_Header) bool {
	switch h.Rrtype {
	case dns.TypeNULL, dns.TypeAPL:
		return true
	}
	return h.Rdlength != 0
}
