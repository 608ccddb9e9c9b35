package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Limits on zones. They keep one Raft entry, one apply and one snapshot of
// bounded size; a zone beyond them is refused with ErrBadCommand (put) or
// ErrZoneTooLarge (update), never truncated.
const (
	// MaxZoneRecords is the most records one zone may hold.
	MaxZoneRecords = 200_000
	// MaxCommandBytes is the largest encoded command. raft-wal refuses log
	// entries over 64 MiB including its own framing, so this stays below.
	MaxCommandBytes = 60 << 20
	// MaxUpdateRecords bounds the prerequisite plus update records of one
	// zone.update (a DNS message cannot carry more anyway).
	MaxUpdateRecords = 65_535
	// MaxHistoryDiffs and MaxHistoryRecords bound the change history kept
	// per zone for IXFR: the newest diffs are kept while both hold. A change
	// bigger than MaxHistoryRecords clears the history (an AXFR is cheaper
	// than such an IXFR anyway).
	MaxHistoryDiffs   = 100
	MaxHistoryRecords = 10_000
)

// Errors of zone commands. Those of zone.update map to DNS rcodes (Rcode).
var (
	ErrZoneUnknown    = errors.New("zone unknown")
	ErrZoneTooLarge   = errors.New("zone would exceed the record limit")
	ErrUpdateNotZone  = errors.New("update record outside the zone")
	ErrUpdateNXDomain = errors.New("update prerequisite failed: name not in use")
	ErrUpdateYXDomain = errors.New("update prerequisite failed: name in use")
	ErrUpdateNXRRSet  = errors.New("update prerequisite failed: RRset does not exist as required")
	ErrUpdateYXRRSet  = errors.New("update prerequisite failed: RRset exists")
)

// Rcode returns the DNS rcode that answers a zone.update whose apply (or
// forwarding) ended with err: NOERROR for nil, the prerequisite rcodes of
// RFC 2136, FORMERR for a malformed update, NOTAUTH for a zone this cluster
// does not serve, SERVFAIL for anything else (no leader, timeouts).
func Rcode(err error) int {
	switch {
	case err == nil:
		return dns.RcodeSuccess
	case errors.Is(err, ErrUpdateNXDomain):
		return dns.RcodeNameError
	case errors.Is(err, ErrUpdateYXDomain):
		return dns.RcodeYXDomain
	case errors.Is(err, ErrUpdateNXRRSet):
		return dns.RcodeNXRrset
	case errors.Is(err, ErrUpdateYXRRSet):
		return dns.RcodeYXRrset
	case errors.Is(err, ErrUpdateNotZone):
		return dns.RcodeNotZone
	case errors.Is(err, ErrZoneUnknown):
		return dns.RcodeNotAuth
	case errors.Is(err, ErrZoneTooLarge):
		return dns.RcodeRefused
	case errors.Is(err, ErrBadCommand):
		return dns.RcodeFormatError
	}
	return dns.RcodeServerFailure
}

// ZoneState is one zone as replicated: its records in canonical form, its
// serial and a bounded history of changes. Like everything reachable from a
// State it never changes once published; a change makes a new ZoneState and
// States share the ZoneStates of zones that did not change.
type ZoneState struct {
	// Origin is the zone's apex: lowercase, fully qualified.
	Origin string
	// Serial is the serial of the zone's SOA record.
	Serial uint32
	// Version is the Raft index of the entry that last changed the zone
	// (or of the snapshot it was restored from). A server compiles a zone
	// again only when its Version, or its pointer, changed.
	Version uint64

	// recs are sorted by cmpRec, unique by identity (owner, class, type,
	// rdata), one TTL per RRset, exactly one SOA at the apex.
	recs []rec
	// history is oldest first; each diff's To is the next one's From and
	// the last one's To is Serial.
	history []*zoneDiff
}

// ZoneDiff is one change of a zone in IXFR form (RFC 1995): the SOA before
// with the records deleted, the SOA after with the records added. The SOAs
// are not repeated in Deleted and Added.
type ZoneDiff struct {
	FromSOA, ToSOA *dns.SOA
	Deleted, Added []dns.RR
}

// rec is one record of a zone: the canonical presentation text (what is
// compared, sorted and snapshotted) and its parsed form (what is served).
// Both are shared between ZoneStates and never modified.
type rec struct {
	text string
	rr   dns.RR
}

type zoneDiff struct {
	from, to       rec // the SOA records
	deleted, added []rec
}

func (d *zoneDiff) size() int { return len(d.deleted) + len(d.added) }

// RRs returns the zone's records in canonical order, SOA included. The
// slice is the caller's; the records are shared with the State and must
// not be modified (dns.Copy one first).
func (z *ZoneState) RRs() []dns.RR {
	out := make([]dns.RR, len(z.recs))
	for i, r := range z.recs {
		out[i] = r.rr
	}
	return out
}

// Records returns the zone's records in canonical presentation format, one
// record per string, in canonical order.
func (z *ZoneState) Records() []string {
	out := make([]string, len(z.recs))
	for i, r := range z.recs {
		out[i] = r.text
	}
	return out
}

// Len returns the number of records, SOA included.
func (z *ZoneState) Len() int { return len(z.recs) }

// SOA returns the zone's SOA record (shared: do not modify).
func (z *ZoneState) SOA() *dns.SOA {
	i, ok := z.find(z.Origin, dns.TypeSOA)
	if !ok {
		return nil // unreachable: every stored zone has its SOA
	}
	return z.recs[i].rr.(*dns.SOA)
}

// Changes returns the diffs that lead from serial from to the current
// serial, oldest first, for IXFR. ok is false when the history does not
// reach back to from (the caller answers with a full transfer); from equal
// to the current serial gives no diffs and ok. The returned records are
// copies the caller may keep and modify.
func (z *ZoneState) Changes(from uint32) (diffs []ZoneDiff, ok bool) {
	if from == z.Serial {
		return nil, true
	}
	start := -1
	for i := len(z.history) - 1; i >= 0; i-- {
		if z.history[i].from.rr.(*dns.SOA).Serial == from {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, false
	}
	copyAll := func(rs []rec) []dns.RR {
		out := make([]dns.RR, len(rs))
		for i, r := range rs {
			out[i] = dns.Copy(r.rr)
		}
		return out
	}
	for _, d := range z.history[start:] {
		diffs = append(diffs, ZoneDiff{
			FromSOA: dns.Copy(d.from.rr).(*dns.SOA),
			ToSOA:   dns.Copy(d.to.rr).(*dns.SOA),
			Deleted: copyAll(d.deleted),
			Added:   copyAll(d.added),
		})
	}
	return diffs, true
}

// HistoryLen returns the number of diffs kept for IXFR.
func (z *ZoneState) HistoryLen() int { return len(z.history) }

// Zone returns the zone with apex origin (any case, final dot optional), or
// nil.
func (s *State) Zone(origin string) *ZoneState {
	return s.Zones[dns.CanonicalName(origin)]
}

// ZoneList returns the zones ordered by origin.
func (s *State) ZoneList() []*ZoneState {
	out := make([]*ZoneState, 0, len(s.Zones))
	for _, z := range s.Zones {
		out = append(out, z)
	}
	slices.SortFunc(out, func(a, b *ZoneState) int { return strings.Compare(a.Origin, b.Origin) })
	return out
}

// ZonesChanged compares s with an older view: changed lists the zones that
// are new or differ in s, dropped those that old had and s lacks, both
// sorted. A zone whose ZoneState is shared by both views did not change.
// old may be nil (everything in s is new).
func (s *State) ZonesChanged(old *State) (changed, dropped []string) {
	var prev map[string]*ZoneState
	if old != nil {
		prev = old.Zones
	}
	for o, z := range s.Zones {
		if prev[o] != z {
			changed = append(changed, o)
		}
	}
	for o := range prev {
		if _, ok := s.Zones[o]; !ok {
			dropped = append(dropped, o)
		}
	}
	slices.Sort(changed)
	slices.Sort(dropped)
	return changed, dropped
}

// serialGreater reports a > b in RFC 1982 serial number arithmetic (32
// bits). For the one undefined distance, 2^31, it is false both ways.
func serialGreater(a, b uint32) bool { return int32(a-b) > 0 }

// nextSerial is the serial a changed zone gets: the proposed one (from a
// zone file or an updated SOA) if it is ahead of the current, else the
// current plus one, so secondaries see every change.
func nextSerial(proposed, current uint32) uint32 {
	if serialGreater(proposed, current) {
		return proposed
	}
	return current + 1
}

// applyZonePut replaces (or creates) a zone. Reloading unchanged content is
// a no-op: the zone keeps its serial and its ZoneState.
func (s *State) applyZonePut(index uint64, d *ZoneData) error {
	if d.recs == nil {
		return fmt.Errorf("%w: zone.put for %s was not decoded", ErrBadCommand, d.Origin)
	}
	recs := d.recs
	soaAt, _ := findIn(recs, d.Origin, dns.TypeSOA)
	fileSerial := recs[soaAt].rr.(*dns.SOA).Serial
	old := s.Zones[d.Origin]
	if old == nil {
		s.Zones[d.Origin] = &ZoneState{Origin: d.Origin, Serial: fileSerial, Version: index, recs: recs}
		return nil
	}
	// Compare with the current content as if the file carried the current
	// serial: only a real change (or a serial moved ahead) is a change.
	cand := slices.Clone(recs)
	cand[soaAt] = withSerial(recs[soaAt], old.Serial)
	same := slices.EqualFunc(old.recs, cand, func(a, b rec) bool { return a.text == b.text })
	if same && !serialGreater(fileSerial, old.Serial) {
		return nil
	}
	serial := nextSerial(fileSerial, old.Serial)
	cand[soaAt] = withSerial(recs[soaAt], serial)
	deleted, added := diffRecs(old.recs, cand)
	oldSOA, _ := old.find(old.Origin, dns.TypeSOA)
	diff := &zoneDiff{from: old.recs[oldSOA], to: cand[soaAt], deleted: deleted, added: added}
	s.Zones[d.Origin] = &ZoneState{
		Origin:  d.Origin,
		Serial:  serial,
		Version: index,
		recs:    cand,
		history: appendHistory(old.history, diff),
	}
	return nil
}

func (s *State) applyZoneDrop(origin string) error {
	// Idempotent like member.leave: a retried drop that finds the zone gone
	// succeeds. The API checks that a zone exists before dropping it.
	delete(s.Zones, origin)
	return nil
}

// withSerial returns the SOA record r with its serial set.
func withSerial(r rec, serial uint32) rec {
	soa := dns.Copy(r.rr).(*dns.SOA)
	soa.Serial = serial
	return newRec(soa)
}

// appendHistory returns h plus d, dropping the oldest diffs to keep within
// MaxHistoryDiffs and MaxHistoryRecords. h is not modified.
func appendHistory(h []*zoneDiff, d *zoneDiff) []*zoneDiff {
	total := d.size()
	if total > MaxHistoryRecords {
		return nil
	}
	start := len(h)
	for start > 0 && len(h)-start+1 < MaxHistoryDiffs && total+h[start-1].size() <= MaxHistoryRecords {
		start--
		total += h[start].size()
	}
	out := make([]*zoneDiff, 0, len(h)-start+1)
	out = append(out, h[start:]...)
	return append(out, d)
}

// diffRecs returns the records of a missing from b and of b missing from
// a, both sorted lists, leaving out SOA records. A record whose TTL changed
// is deleted and added.
func diffRecs(a, b []rec) (deleted, added []rec) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = cmpRec(a[i], b[j])
		}
		switch {
		case c < 0:
			deleted = appendNonSOA(deleted, a[i])
			i++
		case c > 0:
			added = appendNonSOA(added, b[j])
			j++
		default:
			if a[i].text != b[j].text {
				deleted = appendNonSOA(deleted, a[i])
				added = appendNonSOA(added, b[j])
			}
			i++
			j++
		}
	}
	return deleted, added
}

func appendNonSOA(rs []rec, r rec) []rec {
	if r.rr.Header().Rrtype == dns.TypeSOA {
		return rs
	}
	return append(rs, r)
}

// find returns the index of the first record of RRset (owner, t).
func (z *ZoneState) find(owner string, t uint16) (int, bool) { return findIn(z.recs, owner, t) }

// findIn returns the index of the first record of RRset (owner, t) in the
// sorted recs, or where it would be.
func findIn(recs []rec, owner string, t uint16) (int, bool) {
	i := ownerStart(recs, owner)
	for ; i < len(recs) && recs[i].owner() == owner; i++ {
		if recs[i].rr.Header().Rrtype == t {
			return i, true
		}
	}
	return i, false
}

// ownerStart returns the index of the first record of owner in the sorted
// recs, or where it would be. Records of one owner are contiguous.
func ownerStart(recs []rec, owner string) int {
	i, _ := slices.BinarySearchFunc(recs, owner, func(r rec, o string) int {
		return strings.Compare(r.owner(), o)
	})
	return i
}

// ownerRecs returns the records of owner (shared: do not modify).
func ownerRecs(recs []rec, owner string) []rec {
	i := ownerStart(recs, owner)
	j := i
	for j < len(recs) && recs[j].owner() == owner {
		j++
	}
	return recs[i:j:j]
}

// owner returns the owner name of the record's text form.
func (r rec) owner() string {
	if i := strings.IndexByte(r.text, '\t'); i >= 0 {
		return r.text[:i]
	}
	return r.text
}

// rest returns the text after the TTL: class, type and rdata. Owner plus
// rest identify a record; the TTL belongs to the RRset.
func (r rec) rest() string {
	i := strings.IndexByte(r.text, '\t')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(r.text[i+1:], '\t')
	if j < 0 {
		return ""
	}
	return r.text[i+1+j+1:]
}

// cmpRec orders records by owner then class, type and rdata. Records of one
// owner, and of one RRset, end up contiguous: a name is a prefix of another
// only if the longer one continues with a name byte, which sorts after the
// tab that ends every owner.
func cmpRec(a, b rec) int {
	if c := strings.Compare(a.owner(), b.owner()); c != 0 {
		return c
	}
	return strings.Compare(a.rest(), b.rest())
}

func newRec(rr dns.RR) rec { return rec{text: rr.String(), rr: rr} }

// canonicalize puts a record the store owns into canonical form: owner and
// the domain names in the rdata of the types RFC 4034 section 6.2 lists
// lowercased (so records equal in DNS terms compare equal as text). The
// names DNSSEC signs in their original case (NSEC next name, RRSIG signer)
// are left alone.
func canonicalize(rr dns.RR) {
	h := rr.Header()
	h.Name = dns.CanonicalName(h.Name)
	lc := strings.ToLower
	switch x := rr.(type) {
	case *dns.NS:
		x.Ns = lc(x.Ns)
	case *dns.CNAME:
		x.Target = lc(x.Target)
	case *dns.DNAME:
		x.Target = lc(x.Target)
	case *dns.PTR:
		x.Ptr = lc(x.Ptr)
	case *dns.MX:
		x.Mx = lc(x.Mx)
	case *dns.SRV:
		x.Target = lc(x.Target)
	case *dns.SOA:
		x.Ns, x.Mbox = lc(x.Ns), lc(x.Mbox)
	case *dns.NAPTR:
		x.Replacement = lc(x.Replacement)
	case *dns.KX:
		x.Exchanger = lc(x.Exchanger)
	case *dns.RP:
		x.Mbox, x.Txt = lc(x.Mbox), lc(x.Txt)
	case *dns.AFSDB:
		x.Hostname = lc(x.Hostname)
	case *dns.RT:
		x.Host = lc(x.Host)
	case *dns.PX:
		x.Map822, x.Mapx400 = lc(x.Map822), lc(x.Mapx400)
	case *dns.MINFO:
		x.Rmail, x.Email = lc(x.Rmail), lc(x.Email)
	case *dns.MB:
		x.Mb = lc(x.Mb)
	case *dns.MG:
		x.Mg = lc(x.Mg)
	case *dns.MR:
		x.Mr = lc(x.Mr)
	case *dns.MD:
		x.Md = lc(x.Md)
	case *dns.MF:
		x.Mf = lc(x.Mf)
	}
}

// hasData reports whether the record has rdata in its text form; miekg
// parses some types with none (as update deletions carry them).
func hasData(r rec) bool {
	return strings.TrimSpace(strings.TrimPrefix(r.text, r.rr.Header().String())) != ""
}

// isMetaType reports types that are questions or transport, never data
// (RFC 6895 section 3.1): a zone must not hold them.
func isMetaType(t uint16) bool {
	switch t {
	case dns.TypeNone, dns.TypeOPT, dns.TypeTKEY, dns.TypeTSIG, dns.TypeIXFR,
		dns.TypeAXFR, dns.TypeMAILB, dns.TypeMAILA, dns.TypeANY:
		return true
	}
	return false
}

// coexistsWithCNAME reports the types a CNAME owner may also hold (RFC
// 4035 section 2.5).
func coexistsWithCNAME(t uint16) bool {
	return t == dns.TypeCNAME || t == dns.TypeRRSIG || t == dns.TypeNSEC
}

// normalize turns canonical records into a zone's record list: sorted,
// duplicates removed, and each RRset (other than RRSIG, whose records cover
// different types) given the lowest TTL of its records, as RFC 2181 section
// 5.2 tells a receiver to treat an RRset with mixed TTLs.
func normalize(rrs []dns.RR) []rec {
	recs := make([]rec, len(rrs))
	for i, rr := range rrs {
		recs[i] = newRec(rr)
	}
	// Ties (duplicates, perhaps with other TTLs) are broken by the whole
	// text, so the result does not depend on the input's order.
	slices.SortFunc(recs, func(a, b rec) int {
		if c := cmpRec(a, b); c != 0 {
			return c
		}
		return strings.Compare(a.text, b.text)
	})
	// The lowest TTL is taken before duplicates go, so that which copy of
	// a duplicate stays does not matter.
	for i := 0; i < len(recs); {
		h := recs[i].rr.Header()
		j, minTTL := i, h.Ttl
		for j < len(recs) && recs[j].rr.Header().Rrtype == h.Rrtype && recs[j].owner() == recs[i].owner() {
			minTTL = min(minTTL, recs[j].rr.Header().Ttl)
			j++
		}
		if h.Rrtype != dns.TypeRRSIG {
			for k := i; k < j; k++ {
				if recs[k].rr.Header().Ttl != minTTL {
					recs[k].rr.Header().Ttl = minTTL // ours: freshly parsed
					recs[k] = newRec(recs[k].rr)
				}
			}
		}
		i = j
	}
	return slices.CompactFunc(recs, func(a, b rec) bool { return cmpRec(a, b) == 0 })
}

// checkZone enforces what every stored zone satisfies: class IN, no meta
// types, names inside the zone, exactly one SOA and it at the apex, CNAME
// alone at its name, at most MaxZoneRecords records.
func checkZone(origin string, recs []rec) error {
	if len(recs) > MaxZoneRecords {
		return fmt.Errorf("zone %s has %d records, the limit is %d", origin, len(recs), MaxZoneRecords)
	}
	soas := 0
	for _, r := range recs {
		h := r.rr.Header()
		switch {
		case h.Class != dns.ClassINET:
			return fmt.Errorf("record %q: class %s, zones hold class IN only", r.text, dns.Class(h.Class))
		case isMetaType(h.Rrtype):
			return fmt.Errorf("record %q: type %s cannot be stored in a zone", r.text, dns.Type(h.Rrtype))
		case !hasData(r):
			return fmt.Errorf("record %q has no data", r.text)
		case !dns.IsSubDomain(origin, h.Name):
			return fmt.Errorf("record %q is outside the zone %s", r.text, origin)
		case h.Rrtype == dns.TypeSOA:
			if h.Name != origin {
				return fmt.Errorf("SOA record %q is not at the zone apex %s", r.text, origin)
			}
			soas++
		}
		if h.Rrtype == dns.TypeCNAME {
			for _, o := range ownerRecs(recs, h.Name) {
				if o.rr.Header().Rrtype == dns.TypeCNAME && o.text != r.text {
					return fmt.Errorf("%s has more than one CNAME", h.Name)
				}
				if !coexistsWithCNAME(o.rr.Header().Rrtype) {
					return fmt.Errorf("%s has a CNAME and other data (%s)", h.Name, dns.Type(o.rr.Header().Rrtype))
				}
			}
		}
	}
	switch soas {
	case 0:
		return fmt.Errorf("zone %s has no SOA record", origin)
	case 1:
		return nil
	}
	return fmt.Errorf("zone %s has %d SOA records, it needs exactly one", origin, soas)
}
