package store

import (
	"fmt"
	"maps"
	"slices"

	"github.com/miekg/dns"
)

// applyZoneUpdate applies an RFC 2136 update atomically: the prerequisites
// are checked against the zone as it is (section 3.2), then the updates run
// in order (section 3.4.2) on a working copy of the names they touch. The
// serial goes up once if anything changed.
func (s *State) applyZoneUpdate(index uint64, u *ZoneUpdate) error {
	z := s.Zones[u.Origin]
	if z == nil {
		return fmt.Errorf("%w: %s", ErrZoneUnknown, u.Origin)
	}
	for _, rr := range slices.Concat(u.prereq, u.updates) {
		if !dns.IsSubDomain(z.Origin, rr.Header().Name) {
			return fmt.Errorf("%w: %s is not in %s", ErrUpdateNotZone, rr.Header().Name, z.Origin)
		}
	}
	if err := z.checkPrereqs(u.prereq); err != nil {
		return err
	}

	w := &workset{z: z, names: map[string][]rec{}}
	apex := w.get(z.Origin)
	oldSOA := apex[mustFind(apex, dns.TypeSOA)]
	for _, rr := range u.updates {
		rr = dns.Copy(rr)
		canonicalize(rr)
		switch rr.Header().Class {
		case dns.ClassINET:
			w.add(rr)
		case dns.ClassANY:
			if rr.Header().Rrtype == dns.TypeANY {
				w.deleteName(rr.Header().Name)
			} else {
				w.deleteRRset(rr.Header().Name, rr.Header().Rrtype)
			}
		case dns.ClassNONE:
			w.deleteRR(rr)
		}
	}

	// What changed, leaving the SOA aside: the names were taken from the
	// zone and changed by copying, so comparing them finds every change.
	var deleted, added []rec
	for _, name := range slices.Sorted(maps.Keys(w.names)) {
		d, a := diffRecs(ownerRecs(z.recs, name), w.names[name])
		deleted, added = append(deleted, d...), append(added, a...)
	}
	apex = w.names[z.Origin]
	soaAt := mustFind(apex, dns.TypeSOA)
	newSOA := apex[soaAt]
	soaRaised := newSOA.text != oldSOA.text
	if len(deleted) == 0 && len(added) == 0 && !soaRaised {
		return nil
	}
	if !soaRaised {
		newSOA = withSerial(oldSOA, oldSOA.rr.(*dns.SOA).Serial+1)
		apex = slices.Clone(apex)
		apex[soaAt] = newSOA
		w.names[z.Origin] = apex
	}

	recs := w.merge()
	if len(recs) > MaxZoneRecords {
		return fmt.Errorf("%w: %s would hold %d records, the limit is %d", ErrZoneTooLarge, z.Origin, len(recs), MaxZoneRecords)
	}
	s.Zones[z.Origin] = &ZoneState{
		Origin:  z.Origin,
		Serial:  newSOA.rr.(*dns.SOA).Serial,
		Version: index,
		recs:    recs,
		history: appendHistory(z.history, &zoneDiff{from: oldSOA, to: newSOA, deleted: deleted, added: added}),
	}
	return nil
}

// checkPrereqs checks the prerequisites of RFC 2136 section 3.2.
func (z *ZoneState) checkPrereqs(prereq []dns.RR) error {
	// Value-dependent prerequisites (class IN) are gathered per RRset and
	// compared with the zone's RRsets as wholes after the others.
	type key struct {
		name string
		t    uint16
	}
	want := map[key][]string{}
	for _, rr := range prereq {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		recs := ownerRecs(z.recs, name)
		switch h.Class {
		case dns.ClassANY:
			if h.Rrtype == dns.TypeANY {
				if len(recs) == 0 {
					return fmt.Errorf("%w: %s", ErrUpdateNXDomain, name)
				}
			} else if !hasType(recs, h.Rrtype) {
				return fmt.Errorf("%w: no %s %s", ErrUpdateNXRRSet, name, dns.Type(h.Rrtype))
			}
		case dns.ClassNONE:
			if h.Rrtype == dns.TypeANY {
				if len(recs) > 0 {
					return fmt.Errorf("%w: %s", ErrUpdateYXDomain, name)
				}
			} else if hasType(recs, h.Rrtype) {
				return fmt.Errorf("%w: %s %s", ErrUpdateYXRRSet, name, dns.Type(h.Rrtype))
			}
		case dns.ClassINET:
			c := dns.Copy(rr)
			canonicalize(c)
			k := key{name, h.Rrtype}
			want[k] = append(want[k], newRec(c).rest())
		}
	}
	for k, rests := range want {
		var have []string
		for _, r := range ownerRecs(z.recs, k.name) {
			if r.rr.Header().Rrtype == k.t {
				have = append(have, r.rest())
			}
		}
		slices.Sort(rests)
		if !slices.Equal(slices.Compact(rests), have) {
			return fmt.Errorf("%w: %s %s differs", ErrUpdateNXRRSet, k.name, dns.Type(k.t))
		}
	}
	return nil
}

func hasType(recs []rec, t uint16) bool {
	for _, r := range recs {
		if r.rr.Header().Rrtype == t {
			return true
		}
	}
	return false
}

// mustFind returns the index of the first record of type t in recs, which
// must hold one.
func mustFind(recs []rec, t uint16) int {
	for i, r := range recs {
		if r.rr.Header().Rrtype == t {
			return i
		}
	}
	panic(fmt.Sprintf("store: no %s record where one must be", dns.Type(t)))
}

// workset holds the records of the names an update touches, each a sorted
// list replaced (never changed in place) by every operation, so the zone's
// own lists stay untouched.
type workset struct {
	z     *ZoneState
	names map[string][]rec
}

func (w *workset) get(name string) []rec {
	if recs, ok := w.names[name]; ok {
		return recs
	}
	recs := ownerRecs(w.z.recs, name)
	w.names[name] = recs
	return recs
}

// add adds rr (class IN, canonical) following RFC 2136 section 3.4.2.2: a
// CNAME is not added beside other data nor other data beside a CNAME, a
// CNAME or SOA replaces the one there, an SOA only with a higher serial and
// only at the apex, a record already there only sets the RRset's TTL. The
// RRset takes the TTL of the added record (RFC 2181 section 5.2: one TTL
// per RRset).
func (w *workset) add(rr dns.RR) {
	h := rr.Header()
	recs := w.get(h.Name)
	out := make([]rec, 0, len(recs)+1)
	switch h.Rrtype {
	case dns.TypeSOA:
		if h.Name != w.z.Origin {
			return
		}
		cur := recs[mustFind(recs, dns.TypeSOA)].rr.(*dns.SOA)
		if !serialGreater(rr.(*dns.SOA).Serial, cur.Serial) {
			return
		}
	case dns.TypeCNAME:
		for _, r := range recs {
			if !coexistsWithCNAME(r.rr.Header().Rrtype) {
				return
			}
		}
	default:
		if !coexistsWithCNAME(h.Rrtype) && hasType(recs, dns.TypeCNAME) {
			return
		}
	}
	nr := newRec(rr)
	singleton := h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeCNAME
	for _, r := range recs {
		rh := r.rr.Header()
		switch {
		case rh.Rrtype != h.Rrtype:
			out = append(out, r)
		case singleton || r.rest() == nr.rest():
			// replaced by nr
		case rh.Rrtype != dns.TypeRRSIG && rh.Ttl != h.Ttl:
			c := dns.Copy(r.rr)
			c.Header().Ttl = h.Ttl
			out = append(out, newRec(c))
		default:
			out = append(out, r)
		}
	}
	out = append(out, nr)
	slices.SortFunc(out, cmpRec)
	w.names[h.Name] = out
}

// deleteRRset deletes the RRset (name, t), never the apex SOA or NS.
func (w *workset) deleteRRset(name string, t uint16) {
	if name == w.z.Origin && (t == dns.TypeSOA || t == dns.TypeNS) {
		return
	}
	w.filter(name, func(r rec) bool { return r.rr.Header().Rrtype != t })
}

// deleteName deletes every RRset at name; at the apex, all but SOA and NS.
func (w *workset) deleteName(name string) {
	apex := name == w.z.Origin
	w.filter(name, func(r rec) bool {
		t := r.rr.Header().Rrtype
		return apex && (t == dns.TypeSOA || t == dns.TypeNS)
	})
}

// deleteRR deletes the record matching rr's name, type and rdata (rr has
// class NONE), never an SOA nor the apex's last NS.
func (w *workset) deleteRR(rr dns.RR) {
	h := rr.Header()
	if h.Rrtype == dns.TypeSOA {
		return
	}
	c := dns.Copy(rr)
	c.Header().Class = dns.ClassINET
	target := newRec(c).rest()
	recs := w.get(h.Name)
	if h.Name == w.z.Origin && h.Rrtype == dns.TypeNS {
		n := 0
		for _, r := range recs {
			if r.rr.Header().Rrtype == dns.TypeNS {
				n++
			}
		}
		if n <= 1 {
			return
		}
	}
	w.filter(h.Name, func(r rec) bool { return r.rest() != target })
}

func (w *workset) filter(name string, keep func(rec) bool) {
	recs := w.get(name)
	out := make([]rec, 0, len(recs))
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	w.names[name] = out
}

// merge returns the zone's records with the touched names replaced. The
// untouched stretches between touched names are copied as blocks, so a
// small update to a large zone costs a copy, not a comparison per record.
func (w *workset) merge() []rec {
	old := w.z.recs
	out := make([]rec, 0, len(old)+8)
	prev := 0
	for _, name := range slices.Sorted(maps.Keys(w.names)) {
		i := ownerStart(old, name)
		j := i
		for j < len(old) && old[j].owner() == name {
			j++
		}
		out = append(out, old[prev:i]...)
		out = append(out, w.names[name]...)
		prev = j
	}
	return append(out, old[prev:]...)
}
