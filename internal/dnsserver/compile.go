package dnsserver

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/miekg/dns"
)

// compile compiles a zone and its overlay into the view the server answers
// from. It returns an error wrapping ErrBadZone for content that cannot be
// served.
func compile(z *Zone, ov Overlay) (*zoneView, error) {
	base, err := compileBase(z)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", z.Origin, err)
	}
	return base.withOverlay(ov), nil
}

// compileBase compiles a zone's own records into a view with no overlay.
func compileBase(z *Zone) (*zoneView, error) {
	origin := canonical(z.Origin)
	apex, err := wireKey(origin)
	if err != nil {
		return nil, fmt.Errorf("%w: origin %q: %v", ErrBadZone, z.Origin, err)
	}
	nodes := make(map[string]*node, len(z.Records))
	for _, rr := range z.Records {
		if rr == nil || !servable(rr) {
			continue
		}
		h := rr.Header()
		key, err := wireKey(h.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: owner %q: %v", ErrBadZone, h.Name, err)
		}
		if !inZone(key, apex) {
			return nil, fmt.Errorf("%w: %s is outside %s", ErrBadZone, h.Name, origin)
		}
		n := nodes[key]
		if n == nil {
			n = &node{key: key, name: h.Name}
			nodes[key] = n
		}
		n.add(rr)
	}
	var soa *dns.SOA
	if top := nodes[apex]; top != nil && top.set(dns.TypeSOA) != nil {
		soa, _ = top.set(dns.TypeSOA)[0].(*dns.SOA)
	}
	if soa == nil {
		return nil, fmt.Errorf("%w: no SOA at %s", ErrBadZone, origin)
	}
	top := nodes[apex]
	soa = dns.Copy(soa).(*dns.SOA)
	if z.Serial != 0 {
		soa.Serial = z.Serial
	}
	// One SOA is served, with the serial the store decided on.
	top.replace(dns.TypeSOA, []dns.RR{soa})
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)

	for _, n := range nodes {
		n.finish()
	}
	addEmptyNonTerminals(nodes, apex, nil)
	for _, n := range nodes {
		n.cut = findCut(n.key, apex, func(k string) *node { return nodes[k] })
	}

	v := &zoneView{
		origin: origin,
		apex:   apex,
		serial: soa.Serial,
		soa:    soa,
		neg:    neg,
		base:   &layer{nodes: nodes, deps: map[string][]*node{}},
	}
	c := &compiler{}
	v.nx = c.negative(v, dns.RcodeNameError)
	v.nodata = c.negative(v, dns.RcodeSuccess)

	var cur *node
	c.r.track = func(k string) {
		if k == cur.key {
			return
		}
		d := v.base.deps[k]
		if len(d) > 0 && d[len(d)-1] == cur {
			return
		}
		v.base.deps[k] = append(d, cur)
	}
	for _, n := range nodes {
		cur = n
		c.node(v, n)
	}
	return v, nil
}

// servable reports whether rr is zone data: class IN, not a meta-type that
// only exists in messages, and of the Go type miekg uses for its type.
func servable(rr dns.RR) bool {
	h := rr.Header()
	if h.Class != dns.ClassINET {
		return false
	}
	switch h.Rrtype {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeIXFR, dns.TypeAXFR,
		dns.TypeMAILA, dns.TypeMAILB, dns.TypeANY, dns.TypeNone:
		return false
	}
	// A known type in the generic form (RFC 3597) would break the code
	// that reads a type's fields; parsers and Unpack never make one.
	if _, generic := rr.(*dns.RFC3597); generic && dns.TypeToRR[h.Rrtype] != nil {
		return false
	}
	return true
}

// add appends rr to the set of its type.
func (n *node) add(rr dns.RR) {
	t := rr.Header().Rrtype
	for i := range n.sets {
		if n.sets[i].rtype == t {
			n.sets[i].rrs = append(n.sets[i].rrs, rr)
			return
		}
	}
	n.sets = append(n.sets, rrset{rtype: t, rrs: []dns.RR{rr}})
}

// replace sets the records of type t.
func (n *node) replace(t uint16, rrs []dns.RR) {
	for i := range n.sets {
		if n.sets[i].rtype == t {
			n.sets[i].rrs = rrs
			return
		}
	}
	n.sets = append(n.sets, rrset{rtype: t, rrs: rrs})
}

// finish sorts the sets by type and drops duplicate records, which an RRset
// must not contain (RFC 2181 5).
func (n *node) finish() {
	slices.SortFunc(n.sets, func(a, b rrset) int { return cmp.Compare(a.rtype, b.rtype) })
	for i := range n.sets {
		rrs := n.sets[i].rrs
		if len(rrs) < 2 {
			continue
		}
		out := rrs[:0:0]
		for _, rr := range rrs {
			if !containsDuplicate(out, rr) {
				out = append(out, rr)
			}
		}
		n.sets[i].rrs = out
	}
}

func containsDuplicate(rrs []dns.RR, rr dns.RR) bool {
	for _, o := range rrs {
		if dns.IsDuplicate(o, rr) {
			return true
		}
	}
	return false
}

// addEmptyNonTerminals adds a node without records for every missing
// ancestor (up to the apex) of the names in nodes, so that such names answer
// NODATA rather than NXDOMAIN (RFC 8020) and stop wildcard matching. When
// base is set, names it holds count as present.
func addEmptyNonTerminals(nodes map[string]*node, apex string, base map[string]*node) {
	var missing []string
	for k := range nodes {
		for i := int(k[0]) + 1; i < len(k); i += int(k[i]) + 1 {
			a := k[i:]
			if len(a) < len(apex) || nodes[a] != nil || base[a] != nil {
				break
			}
			missing = append(missing, a)
		}
	}
	for _, a := range missing {
		if nodes[a] == nil {
			nodes[a] = &node{key: a, name: keyName(a)}
		}
	}
}

// findCut returns the delegation point at or above key: the node closest to
// the apex, below it, that owns NS records. Data below a delegation is glue,
// never answered with authority.
func findCut(key, apex string, get func(string) *node) *node {
	var cut *node
	for i := 0; len(key)-i > len(apex); i += int(key[i]) + 1 {
		if n := get(key[i:]); n != nil && n.set(dns.TypeNS) != nil {
			cut = n
		}
	}
	return cut
}

// negative compiles the zone's shared NXDOMAIN or NODATA answer: the
// negative SOA in authority, packed against the apex so that it serves any
// name in the zone.
func (c *compiler) negative(z *zoneView, rcode int) *template {
	t := c.build(result{rcode: rcode, aa: true, ns: []dns.RR{z.neg}}, z.apex, packShift)
	return &t
}

// node compiles the answers of n.
func (c *compiler) node(z *zoneView, n *node) {
	n.answers, n.other, n.referral = nil, nil, nil
	if n.cut != nil {
		if n.cut == n {
			ref := c.build(c.r.resolve(z, n.name, n.key, dns.TypeNS), n.key, packShift)
			n.referral = &ref
			n.answers = []typed{{dns.TypeDS, c.build(c.r.resolve(z, n.name, n.key, dns.TypeDS), n.key, packExact)}}
		}
		return
	}
	mode := packExact
	if isWildcard(n.key) {
		mode = packWild
	}
	n.answers = make([]typed, 0, len(n.sets))
	add := func(t uint16) {
		n.answers = append(n.answers, typed{t, c.answer(z, n, t, mode)})
	}
	// The first set's answer comes first: it is also the ANY answer.
	for _, s := range n.sets {
		add(s.rtype)
	}
	if n.set(dns.TypeCNAME) == nil {
		n.other = z.nodata
		return
	}
	// A name with a CNAME answers each type from the end of its chain. A
	// type that no name on the chain has follows the whole chain to the
	// same end, so one answer (compiled for type NONE) serves them all;
	// the types the chain's names have get their own.
	var types []uint16
	c.r.visit = func(src *node) {
		for _, s := range src.sets {
			if n.set(s.rtype) == nil && !slices.Contains(types, s.rtype) {
				types = append(types, s.rtype)
			}
		}
	}
	res := c.r.resolve(z, n.name, n.key, dns.TypeNone)
	c.r.visit = nil
	if res.referral && n.set(dns.TypeDS) == nil && !slices.Contains(types, dns.TypeDS) {
		types = append(types, dns.TypeDS) // DS at a delegation is the parent's
	}
	for _, t := range types {
		add(t)
	}
	other := c.answer(z, n, dns.TypeNone, mode)
	n.other = &other
}

// answer compiles the answer of n to qtype.
func (c *compiler) answer(z *zoneView, n *node, qtype uint16, mode packMode) template {
	res := c.r.resolve(z, n.name, n.key, qtype)
	t := c.build(res, n.key, mode)
	// A wildcard answer is compiled for the wildcard's own name. That stands
	// for every name it matches only while the CNAME chain never meets a
	// wildcard again or stops on a loop: those depend on the actual name.
	if mode == packWild && (res.wild > 0 || res.stopped) {
		t.slow = true
	}
	return t
}

// isWildcard reports whether key's first label is "*".
func isWildcard(key string) bool {
	return len(key) > 2 && key[0] == 1 && key[1] == '*'
}

// withOverlay returns a copy of z with the overlay ov merged in. Overlay
// names hide the zone's own records at the same name; the overlay cannot
// touch the apex, add wildcards, NS or SOA records, or put names at or below
// a delegation (the zone's structure stays the zone file's). Base nodes whose
// answers depend on an overlay name are recompiled into the overlay layer;
// nothing else is.
func (z *zoneView) withOverlay(ov Overlay) *zoneView {
	v := *z
	v.over = nil
	if len(ov.Records) == 0 && len(ov.Empty) == 0 {
		return &v
	}
	over := map[string]*node{}
	for _, rr := range ov.Records {
		if rr == nil || !servable(rr) {
			continue
		}
		h := rr.Header()
		if h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS {
			continue
		}
		key, err := wireKey(h.Name)
		if err != nil || key == z.apex || !inZone(key, z.apex) || isWildcard(key) {
			continue
		}
		if findCut(key, z.apex, z.base.get) != nil {
			continue
		}
		rr = dns.Copy(rr)
		if rr.Header().Ttl == 0 {
			rr.Header().Ttl = ov.TTL
		}
		n := over[key]
		if n == nil {
			n = &node{key: key, name: h.Name}
			over[key] = n
		}
		n.add(rr)
	}
	for _, name := range ov.Empty {
		key, err := wireKey(name)
		if err != nil || key == z.apex || !inZone(key, z.apex) || isWildcard(key) || over[key] != nil {
			continue
		}
		if findCut(key, z.apex, z.base.get) != nil {
			continue
		}
		over[key] = &node{key: key, name: dns.Fqdn(name)}
	}
	if len(over) == 0 {
		return &v
	}
	for _, n := range over {
		n.finish()
	}
	addEmptyNonTerminals(over, z.apex, z.base.nodes)
	touched := make([]string, 0, len(over))
	for k := range over {
		touched = append(touched, k)
	}
	for _, k := range touched {
		for _, d := range z.base.deps[k] {
			if over[d.key] == nil {
				over[d.key] = d.clone()
			}
		}
	}
	v.over = over
	c := &compiler{}
	for _, n := range over {
		c.node(&v, n)
	}
	return &v
}

// get returns the node named key in the layer.
func (l *layer) get(key string) *node { return l.nodes[key] }

// clone returns a copy of n's data for recompiling its answers.
func (n *node) clone() *node {
	c := &node{key: n.key, name: n.name, sets: n.sets, cut: n.cut}
	if n.cut == n {
		c.cut = c
	}
	return c
}

// wireKey returns the lowercase wire format of the domain name s.
func wireKey(s string) (string, error) {
	var buf [256]byte
	n, err := dns.PackDomainName(dns.Fqdn(s), buf[:], 0, nil, false)
	if err != nil {
		return "", err
	}
	lower(buf[:n])
	return string(buf[:n]), nil
}

// lower lowercases ASCII letters in place; DNS names compare
// case-insensitively in ASCII only (RFC 4343).
func lower(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// keyName returns the presentation format of a key.
func keyName(key string) string {
	name, _, err := dns.UnpackDomainName([]byte(key), 0)
	if err != nil {
		return "."
	}
	return name
}

// inZone reports whether key equals apex or lies below it.
func inZone(key, apex string) bool {
	for i := 0; len(key)-i >= len(apex); i += int(key[i]) + 1 {
		if key[i:] == apex {
			return true
		}
	}
	return false
}
