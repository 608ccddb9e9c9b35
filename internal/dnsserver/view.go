package dnsserver

import (
	"github.com/miekg/dns"
)

// Names inside the compiled view are keyed by their lowercase wire format
// ("\x03www\x07example\x03org\x00"): the fast path gets them from the packet
// by lowercasing in place, suffixes are label boundaries, escapes need no
// handling, and a map lookup with string(bytes) does not allocate. Label
// length bytes are at most 63, below 'A', so lowercasing the whole key is
// safe.

// catalog is one immutable set of compiled zones. A change builds a new
// catalog that shares every untouched zone with the old one.
type catalog struct {
	zones map[string]*zoneView // by origin (lowercase FQDN)
	wire  map[string]*zoneView // by apex key (lowercase wire format)
	// few lists the zones when there are few of them: comparing a name's
	// suffixes with their apexes is cheaper than hashing every suffix.
	few []*zoneView
}

// fewZones is the largest catalog searched by comparison rather than by map.
const fewZones = 4

// with returns a copy of c in which the zone origin is v (or absent when v
// is nil).
func (c *catalog) with(origin string, v *zoneView) *catalog {
	n := &catalog{
		zones: make(map[string]*zoneView, len(c.zones)+1),
		wire:  make(map[string]*zoneView, len(c.zones)+1),
	}
	for k, z := range c.zones {
		if k != origin {
			n.zones[k] = z
			n.wire[z.apex] = z
		}
	}
	if v != nil {
		n.zones[origin] = v
		n.wire[v.apex] = v
	}
	if len(n.zones) <= fewZones {
		for _, z := range n.zones {
			n.few = append(n.few, z)
		}
	}
	return n
}

// find returns the zone with the longest origin that contains key, or nil.
func (c *catalog) find(key string) *zoneView {
	for i := 0; i < len(key); i += int(key[i]) + 1 {
		if z := c.wire[key[i:]]; z != nil {
			return z
		}
	}
	return nil
}

// findBytes is find for a key held in a byte slice, without allocating.
func (c *catalog) findBytes(key []byte) *zoneView {
	if c.few != nil {
		for i := 0; i < len(key); i += int(key[i]) + 1 {
			for _, z := range c.few {
				if len(z.apex) == len(key)-i && string(key[i:]) == z.apex {
					return z
				}
			}
		}
		return nil
	}
	for i := 0; i < len(key); i += int(key[i]) + 1 {
		if z := c.wire[string(key[i:])]; z != nil {
			return z
		}
	}
	return nil
}

// zoneView is one compiled zone: the zone's own records (base, compiled
// when the zone changes) and the overlay's nodes (over, compiled when the
// overlay changes), which hide base nodes of the same name.
type zoneView struct {
	origin string    // lowercase FQDN
	apex   string    // origin's key
	serial uint32    // the serial answered in the SOA
	soa    *dns.SOA  // the apex SOA as answered
	neg    *dns.SOA  // the SOA for negative answers: TTL = min(TTL, MINIMUM), RFC 2308
	nx     *template // the NXDOMAIN answer, for any name in the zone
	nodata *template // the NODATA answer, for any name in the zone

	base *layer
	// over holds the overlay's names, the empty non-terminals they add, and
	// copies of base nodes whose answers depend on any of them, all
	// compiled against the merged data.
	over map[string]*node
}

// layer is the compiled form of a zone's own records.
type layer struct {
	nodes map[string]*node
	// deps maps a name to the nodes whose compiled answers looked it up
	// (CNAME targets, additional-section targets, names walked to find a
	// closest encloser), so an overlay touching the name rebuilds them.
	deps map[string][]*node
}

// get returns the node named key, overlay first.
func (z *zoneView) get(key string) *node {
	if z.over != nil {
		if n := z.over[key]; n != nil {
			return n
		}
	}
	return z.base.nodes[key]
}

// getBytes is get for a key held in a byte slice, without allocating.
func (z *zoneView) getBytes(key []byte) *node {
	if z.over != nil {
		if n := z.over[string(key)]; n != nil {
			return n
		}
	}
	return z.base.nodes[string(key)]
}

// node is one name of a zone with its data and compiled answers. Nodes are
// immutable once their zone view is published.
type node struct {
	key  string  // lowercase wire name
	name string  // owner name as stored (presentation format)
	sets []rrset // sorted by type; empty for an empty non-terminal

	// cut is the delegation point at or above this name (a node with NS
	// records below the apex), nil where the zone is authoritative.
	cut *node

	// answers holds the compiled answer per query type; other answers any
	// type not listed (NODATA), nil when such types need the slow path
	// (names with a CNAME: the answer depends on the target's types).
	answers []typed
	other   *template
	// referral is the compiled referral of a delegation point.
	referral *template
}

// typed is a compiled answer for one query type. Templates are held by
// value: one allocation per node rather than one per answer.
type typed struct {
	qtype uint16
	t     template
}

// rrset is all records of one type at a name.
type rrset struct {
	rtype uint16
	rrs   []dns.RR
}

// set returns the records of type t at n, or nil.
func (n *node) set(t uint16) []dns.RR {
	for i := range n.sets {
		if n.sets[i].rtype == t {
			return n.sets[i].rrs
		}
	}
	return nil
}

// answer returns the compiled answer of n for qtype, or nil for the slow
// path. ANY is answered with the first RRset (RFC 8482), whose answer is
// the first compiled.
func (n *node) answer(qtype uint16) *template {
	if qtype == dns.TypeANY && len(n.sets) > 0 && len(n.answers) > 0 {
		return &n.answers[0].t
	}
	for i := range n.answers {
		if n.answers[i].qtype == qtype {
			return &n.answers[i].t
		}
	}
	return n.other
}

// template is a packed answer: header flags, section counts and the
// sections themselves, packed as they follow a question for a reference
// name. Pointers into the question or the sections shift when the actual
// name is longer or shorter than the reference (wildcard, NXDOMAIN and
// referral answers serve many names).
//
// Templates are the bulk of a compiled zone, so they are kept small: data
// carved from shared blocks holds the sections, then the offsets of the
// pointers that move (two bytes each), then the exit name.
type template struct {
	data       []byte
	secLen     uint16 // length of the sections in data
	minLen     uint16 // length of the sections through the required records
	flags      uint16 // header bytes 2-3: QR, AA and RCODE (RD and CD come from the query)
	an, ns, ar uint16 // section counts, without the OPT record
	arMin      uint16 // additional records that must stay (in-domain glue), placed first
	nreloc     uint8  // number of pointers that move
	refLen     uint8  // wire length of the reference name
	// slow marks answers the fast path must not serve (see compile).
	slow bool
}

// body returns the packed sections.
func (t *template) body() []byte { return t.data[:t.secLen] }

// reloc returns the offset in the sections of the i-th pointer that moves.
func (t *template) reloc(i int) int {
	return int(t.data[int(t.secLen)+2*i])<<8 | int(t.data[int(t.secLen)+2*i+1])
}

// exit returns the key of a CNAME target outside the zone, or nothing.
// When one of our other zones holds it the answer continues there, on the
// slow path.
func (t *template) exit() []byte { return t.data[int(t.secLen)+2*int(t.nreloc):] }
