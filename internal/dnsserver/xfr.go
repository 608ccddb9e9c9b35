package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// xfrMsgSize bounds the uncompressed size of the records in one transfer
// message. Compression and the TSIG record (tsigOverhead) keep the packed
// message well under the 65,535 bytes TCP allows; 32 KiB keeps the number of
// messages, and so the TSIG work, low while never risking the limit.
const xfrMsgSize = 32 << 10

// registerHandlers implements handlerRegistrar: New calls it to route the
// opcodes and query types this half of the package answers.
func (s *Server) registerHandlers() {
	s.opcodes[dns.OpcodeNotify] = s.serveNotify
	s.opcodes[dns.OpcodeUpdate] = s.serveUpdate
	s.qtypes[dns.TypeAXFR] = s.serveXFR
	s.qtypes[dns.TypeIXFR] = s.serveXFR
}

// serveXFR answers AXFR (RFC 5936) and IXFR (RFC 1995) requests. A transfer
// is allowed to a client that signed the request with any of our TSIG keys,
// or, unsigned, to an address in Config.TransferACL; everyone else is
// REFUSED before learning whether the zone exists.
func (s *Server) serveXFR(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	m, ok := s.opReply(w, r)
	if !ok {
		return
	}
	signed, ok := s.checkTSIG(w, r, m)
	if !ok {
		return
	}
	q := r.Question[0]
	if !signed && !s.transferAllowed(w.RemoteAddr()) {
		s.log.Info("dns transfer refused", "peer", w.RemoteAddr(), "zone", q.Name)
		s.finish(w, m, dns.RcodeRefused)
		return
	}
	if q.Qtype == dns.TypeAXFR && isUDP(w) {
		// AXFR is TCP only (RFC 5936 4.2); Knot answers NOTIMP the same way.
		s.finish(w, m, dns.RcodeNotImplemented)
		return
	}
	var ixfrFrom *dns.SOA
	if q.Qtype == dns.TypeIXFR {
		if len(r.Ns) != 1 {
			s.finish(w, m, dns.RcodeFormatError)
			return
		}
		soa, isSOA := r.Ns[0].(*dns.SOA)
		if !isSOA || canonical(soa.Hdr.Name) != canonical(q.Name) {
			s.finish(w, m, dns.RcodeFormatError)
			return
		}
		ixfrFrom = soa
	}
	origin := canonical(q.Name)
	var z *Zone
	if s.cfg.Source != nil && (q.Qclass == dns.ClassINET || q.Qclass == dns.ClassANY) {
		z = s.cfg.Source.Zone(origin)
	}
	if z == nil {
		// RFC 5936 2.2.1: not authoritative for the zone asked for.
		s.finish(w, m, dns.RcodeNotAuth)
		return
	}
	soa := zoneSOA(z)
	if soa == nil {
		s.log.Error("dns transfer of a zone without SOA", "zone", origin)
		s.finish(w, m, dns.RcodeServerFailure)
		return
	}
	x := &xfrSender{w: w, tmpl: m, limit: xfrMsgSize}
	var err error
	switch {
	case ixfrFrom != nil && !serialLess(ixfrFrom.Serial, soa.Serial), ixfrFrom != nil && isUDP(w):
		// Up to date, or over UDP where only the SOA fits: the client
		// retries over TCP when it sees a newer serial (RFC 1995 2, 4).
		err = x.send(ctx, []dns.RR{soa})
	case ixfrFrom != nil:
		diffs, ok := s.cfg.Source.Changes(origin, ixfrFrom.Serial)
		if ok && !diffsChain(diffs, ixfrFrom.Serial, soa.Serial) {
			s.log.Warn("dns ixfr history does not chain; sending the whole zone",
				"zone", origin, "from", ixfrFrom.Serial, "to", soa.Serial)
			ok = false
		}
		if ok {
			err = x.send(ctx, ixfrRecords(soa, diffs))
		} else {
			err = x.send(ctx, axfrRecords(soa, z))
		}
	default:
		err = x.send(ctx, axfrRecords(soa, z))
	}
	if err != nil {
		s.log.Info("dns transfer aborted", "peer", w.RemoteAddr(), "zone", origin, "err", err)
		// The client cannot tell a cut transfer from a slow one: hang up.
		_ = w.Close()
		return
	}
	s.log.Debug("dns transfer", "peer", w.RemoteAddr(), "zone", origin,
		"type", dns.TypeToString[q.Qtype], "serial", soa.Serial, "messages", x.sent, "signed", signed)
}

// opReply returns the skeleton of an answer to a transfer, NOTIFY or
// UPDATE request: the query's header bits as reply sets them, and an OPT
// when the request had one (RFC 6891 6.1.1). AA is set only on the answers
// that carry zone data or acknowledge a NOTIFY. ok is false when it has
// answered r already: FORMERR for several OPT records, BADVERS for an EDNS
// version other than 0 (RFC 6891 6.1.3).
func (s *Server) opReply(w dns.ResponseWriter, r *dns.Msg) (m *dns.Msg, ok bool) {
	m = reply(r)
	opt, ok := ednsOf(r)
	if !ok {
		s.finish(w, m, dns.RcodeFormatError)
		return nil, false
	}
	if opt != nil {
		m.SetEdns0(udpSize, opt.Do())
		if opt.Version() != 0 {
			s.finish(w, m, dns.RcodeBadVers)
			return nil, false
		}
	}
	return m, true
}

// finish answers with rcode and no records (keeping the OPT and the TSIG
// the skeleton m may carry).
func (s *Server) finish(w dns.ResponseWriter, m *dns.Msg, rcode int) {
	m.Rcode = rcode
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write", "peer", w.RemoteAddr(), "err", err)
	}
}

// transferAllowed reports whether addr is in Config.TransferACL.
func (s *Server) transferAllowed(addr net.Addr) bool {
	ip, ok := addrIP(addr)
	if !ok {
		return false
	}
	for _, p := range s.cfg.TransferACL {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrIP returns the IP address of a UDP or TCP peer, IPv4-mapped IPv6
// addresses unmapped so that IPv4 prefixes match them.
func addrIP(addr net.Addr) (netip.Addr, bool) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		if addr == nil {
			return netip.Addr{}, false
		}
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return netip.Addr{}, false
		}
	}
	ip := ap.Addr().Unmap()
	return ip, ip.IsValid()
}

// isUDP reports whether w answers over UDP.
func isUDP(w dns.ResponseWriter) bool {
	_, udp := w.LocalAddr().(*net.UDPAddr)
	return udp
}

// zoneSOA returns a copy of z's apex SOA carrying z.Serial, or nil.
func zoneSOA(z *Zone) *dns.SOA {
	for _, rr := range z.Records {
		if soa, ok := rr.(*dns.SOA); ok && canonical(soa.Hdr.Name) == canonical(z.Origin) {
			c := dns.Copy(soa).(*dns.SOA)
			c.Serial = z.Serial
			return c
		}
	}
	return nil
}

// serialLess reports a < b in serial number arithmetic (RFC 1982).
func serialLess(a, b uint32) bool {
	return int32(b-a) > 0
}

// diffsChain reports whether diffs lead step by step from serial from to
// serial to. A history that does not is not sent: the zone is.
func diffsChain(diffs []Diff, from, to uint32) bool {
	if len(diffs) == 0 {
		return false
	}
	at := from
	for _, d := range diffs {
		if d.FromSOA == nil || d.ToSOA == nil || d.FromSOA.Serial != at {
			return false
		}
		at = d.ToSOA.Serial
	}
	return at == to
}

// axfrRecords returns the records of an AXFR answer: the SOA, every other
// record, the SOA again (RFC 5936 2.2).
func axfrRecords(soa *dns.SOA, z *Zone) []dns.RR {
	out := make([]dns.RR, 0, len(z.Records)+1)
	out = append(out, soa)
	for _, rr := range z.Records {
		if rr.Header().Rrtype == dns.TypeSOA {
			continue
		}
		out = append(out, rr)
	}
	return append(out, soa)
}

// ixfrRecords returns the records of an incremental IXFR answer: the current
// SOA, then for each step the old SOA, the deleted records, the new SOA and
// the added records, and the current SOA again (RFC 1995 4).
func ixfrRecords(soa *dns.SOA, diffs []Diff) []dns.RR {
	n := 2
	for _, d := range diffs {
		n += 2 + len(d.Deleted) + len(d.Added)
	}
	out := make([]dns.RR, 0, n)
	out = append(out, soa)
	for _, d := range diffs {
		out = append(out, d.FromSOA)
		out = append(out, d.Deleted...)
		out = append(out, d.ToSOA)
		out = append(out, d.Added...)
	}
	return append(out, soa)
}

// xfrSender splits the records of a transfer into messages of at most limit
// bytes of records, each a copy of tmpl (question, OPT, TSIG stub).
type xfrSender struct {
	w     dns.ResponseWriter
	tmpl  *dns.Msg
	limit int
	sent  int
}

// send writes rrs in as many messages as needed. The writer signs each one
// when tmpl carries a TSIG: the first over the request's MAC, the others
// over the previous message's MAC and the timers (RFC 8945 5.3.1).
func (x *xfrSender) send(ctx context.Context, rrs []dns.RR) error {
	for len(rrs) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("transfer: %w", err)
		}
		n, size := 0, 0
		for n < len(rrs) {
			l := dns.Len(rrs[n])
			if n > 0 && size+l > x.limit {
				break
			}
			size += l
			n++
		}
		m := x.message(rrs[:n])
		if err := x.w.WriteMsg(m); err != nil {
			return fmt.Errorf("transfer message %d: %w", x.sent+1, err)
		}
		x.sent++
		x.w.TsigTimersOnly(true)
		rrs = rrs[n:]
	}
	return nil
}

// message returns a copy of the skeleton holding rrs. The TSIG stub is
// fresh for each message: the writer fills the MAC and time in.
func (x *xfrSender) message(rrs []dns.RR) *dns.Msg {
	m := x.tmpl.Copy()
	m.Authoritative = true
	m.Answer = rrs
	m.Extra = m.Extra[:0]
	for _, rr := range x.tmpl.Extra {
		if t, ok := rr.(*dns.TSIG); ok {
			rr = newTSIG(t.Hdr.Name, t.Algorithm, t.Fudge, m.Id)
		}
		m.Extra = append(m.Extra, rr)
	}
	return m
}
