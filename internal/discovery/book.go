package discovery

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"buoy/internal/wire"
)

// Defaults for BookConfig.
const (
	// DefaultQueryInterval is how often Wanted lists a peer that stays
	// unreachable after the first, immediate time.
	DefaultQueryInterval = 5 * time.Second
	// DefaultFailHold is how long a failed dial moves an address to the
	// end of the candidates.
	DefaultFailHold = time.Minute
)

// Bounds on the direct evidence kept per peer; the oldest goes first.
const (
	maxWorked   = 4
	maxObserved = 2
	maxHints    = 4
)

// BookConfig configures a Book.
type BookConfig struct {
	// Self is this node's name: records about it are not kept but
	// reported as Ours.
	Self string
	// Verify checks record signatures. Required.
	Verify Verifier
	// QueryInterval: DefaultQueryInterval if zero.
	QueryInterval time.Duration
	// FailHold: DefaultFailHold if zero.
	FailHold time.Duration
}

// Outcome says what Merge did with a record.
type Outcome int

// Merge outcomes.
const (
	// Refused: the record is malformed, forged or conflicting; the error
	// says which. Log it; nothing changed.
	Refused Outcome = iota
	// Accepted: the record is new or newer than the one held. Push it to
	// every other link, and redial the peer if it is unreachable.
	Accepted
	// Duplicate: the record is the one held.
	Duplicate
	// Stale: the record is older than the one held and was ignored; the
	// sender is behind and may be sent the newer one.
	Stale
	// Ours: a valid record of this node itself, not kept; pass its
	// incarnation to Own.Supersede.
	Ours
)

// String names the outcome for logs.
func (o Outcome) String() string {
	switch o {
	case Refused:
		return "refused"
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Ours:
		return "ours"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Reason says why an address is a candidate, best first.
type Reason string

// Candidate reasons, in rank order.
const (
	// ReasonWorked: this node dialed the address and the link came up.
	ReasonWorked Reason = "worked"
	// ReasonObserved: the peer dialed this node from this IP; with the
	// port it listens on.
	ReasonObserved Reason = "observed"
	// ReasonLAN: a local address of the peer's, which this node can reach
	// because both sit behind the same public IP.
	ReasonLAN Reason = "lan"
	// ReasonRecord: a public address from the peer's record.
	ReasonRecord Reason = "record"
	// ReasonHint: an address given from outside the discovery protocol
	// (a join address, a saved peer list, a member record).
	ReasonHint Reason = "hint"
)

// Candidate is an address to dial a peer at, with why.
type Candidate struct {
	Addr   netip.AddrPort
	Reason Reason
	// Failed: a dial to it failed within the fail hold, after the last
	// evidence for it, so it is ranked after every address that did not.
	Failed bool
}

// String formats the candidate for logs and debugging.
func (c Candidate) String() string {
	if c.Failed {
		return fmt.Sprintf("%s (%s, failed)", c.Addr, c.Reason)
	}
	return fmt.Sprintf("%s (%s)", c.Addr, c.Reason)
}

// Book is this node's view of where its peers are: each peer's freshest
// verified record and what this node saw directly.
//
// Records follow one rule: a higher incarnation always wins, a lower one
// is ignored, and a different record with the same incarnation is refused
// as a conflict. A record is kept only once its subject's signature
// verifies, so a member cannot move another member's address.
type Book struct {
	self       string
	verify     Verifier
	queryEvery time.Duration
	failHold   time.Duration

	// mu guards the following fields.
	mu        sync.Mutex
	peers     map[string]*peerEntry
	selfAddrs []netip.Addr
}

type peerEntry struct {
	rec    Record            // valid if signed.Sig != nil
	signed wire.SignedRecord // as received, to forward unchanged
	recAt  time.Time         // when rec was accepted
	// knownNAT is the last class other than NATUnknown its records
	// showed.
	knownNAT NAT

	up        bool
	upRemote  netip.Addr // the current link's remote IP; invalid if relayed
	queriedAt time.Time  // last time Wanted listed it; zero: due now

	worked   map[netip.AddrPort]time.Time // dialed and came up
	observed map[netip.Addr]time.Time     // its inbound links' source IPs
	hints    map[netip.AddrPort]time.Time
	failed   map[netip.AddrPort]time.Time
}

func (p *peerEntry) hasRecord() bool { return p.signed.Sig != nil }

// NewBook returns an empty Book.
func NewBook(cfg BookConfig) (*Book, error) {
	if err := validName(cfg.Self); err != nil {
		return nil, fmt.Errorf("new book: %w", err)
	}
	if cfg.Verify == nil {
		return nil, fmt.Errorf("new book: no verifier")
	}
	if cfg.QueryInterval <= 0 {
		cfg.QueryInterval = DefaultQueryInterval
	}
	if cfg.FailHold <= 0 {
		cfg.FailHold = DefaultFailHold
	}
	return &Book{
		self:       cfg.Self,
		verify:     cfg.Verify,
		queryEvery: cfg.QueryInterval,
		failHold:   cfg.FailHold,
		peers:      map[string]*peerEntry{},
	}, nil
}

// entryLocked returns name's entry, creating it.
func (b *Book) entryLocked(name string) *peerEntry {
	p := b.peers[name]
	if p == nil {
		p = &peerEntry{
			worked:   map[netip.AddrPort]time.Time{},
			observed: map[netip.Addr]time.Time{},
			hints:    map[netip.AddrPort]time.Time{},
			failed:   map[netip.AddrPort]time.Time{},
		}
		b.peers[name] = p
	}
	return p
}

// Merge takes a signed record received from a peer. It returns the parsed
// record (unless refused) and what it did; see Outcome. An error wraps
// ErrMalformed, ErrBadSignature or ErrConflict.
func (b *Book) Merge(sr wire.SignedRecord, now time.Time) (Record, Outcome, error) {
	rec, err := ParseRecord(sr.Record)
	if err != nil {
		return Record{}, Refused, fmt.Errorf("merge: %w", err)
	}
	msg := sr.Record.SigningBytes()
	if rec.Node != b.self {
		// Cheap answers first: most records that arrive are ones we hold.
		if out, ok := b.compare(rec, msg, sr.Sig); ok {
			return rec, out, nil
		}
	}
	// Verify outside the lock: the verifier may look up certificates.
	if err := b.verify(rec.Node, msg, sr.Sig); err != nil {
		return Record{}, Refused, fmt.Errorf("merge record of %s: %w: %v", rec.Node, ErrBadSignature, err)
	}
	if rec.Node == b.self {
		return rec, Ours, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.entryLocked(rec.Node)
	if p.hasRecord() {
		held := p.signed
		switch {
		case rec.Incarnation < p.rec.Incarnation:
			return rec, Stale, nil
		case rec.Incarnation == p.rec.Incarnation && bytes.Equal(msg, held.Record.SigningBytes()):
			return rec, Duplicate, nil
		case rec.Incarnation == p.rec.Incarnation:
			return Record{}, Refused, fmt.Errorf("merge record of %s: %w: incarnation %d already held with other content", rec.Node, ErrConflict, rec.Incarnation)
		}
	}
	// A newer (or first) record: evidence of addresses it does not list
	// is from before the peer moved and would be tried first in vain. The
	// current link's address stays: it shows where the peer is now. Only
	// that one: the link may well be one the peer made after it moved,
	// while the evidence of the link before it is stale, even if both
	// came up at the same instant.
	keep := func(a netip.Addr) bool {
		return containsIP(rec.Addrs, a) || containsIP(rec.LAN, a) || p.up && a == p.upRemote
	}
	for ap := range p.worked {
		if !keep(ap.Addr()) {
			delete(p.worked, ap)
		}
	}
	for ip := range p.observed {
		if !keep(ip) {
			delete(p.observed, ip)
		}
	}
	p.rec = rec.clone()
	if rec.NAT != NATUnknown && rec.NAT != "" {
		p.knownNAT = rec.NAT
	}
	p.signed = wire.SignedRecord{Record: sr.Record, Sig: slices.Clone(sr.Sig)}
	p.signed.Record.Addrs = slices.Clone(sr.Record.Addrs)
	p.signed.Record.LAN = slices.Clone(sr.Record.LAN)
	p.recAt = now
	return rec, Accepted, nil
}

// compare answers Stale or Duplicate without verifying, if it can.
func (b *Book) compare(rec Record, msg, sig []byte) (Outcome, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[rec.Node]
	if p == nil || !p.hasRecord() {
		return 0, false
	}
	switch {
	case rec.Incarnation < p.rec.Incarnation:
		// Not verified, but ignored either way.
		return Stale, true
	case rec.Incarnation == p.rec.Incarnation && bytes.Equal(sig, p.signed.Sig) && bytes.Equal(msg, p.signed.Record.SigningBytes()):
		return Duplicate, true
	}
	return 0, false
}

// Record returns the record held for node.
func (b *Book) Record(node string) (Record, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[node]
	if p == nil || !p.hasRecord() {
		return Record{}, false
	}
	return p.rec.clone(), true
}

// KnownNAT returns the last NAT class other than NATUnknown that node's
// records showed, or NATUnknown if none did (see Self).
func (b *Book) KnownNAT(node string) NAT {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.peers[node]; p != nil && p.knownNAT != "" {
		return p.knownNAT
	}
	return NATUnknown
}

// Signed returns the signed records held for the named nodes, or for all
// peers if none are named, sorted by node, exactly as received: the answer
// to a RecordQuery, or what to push on a new link.
func (b *Book) Signed(nodes ...string) []wire.SignedRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(nodes) == 0 {
		for name := range b.peers {
			nodes = append(nodes, name)
		}
	}
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	var out []wire.SignedRecord
	for _, name := range nodes {
		p := b.peers[name]
		if p == nil || !p.hasRecord() {
			continue
		}
		sr := p.signed
		sr.Sig = slices.Clone(sr.Sig)
		sr.Record.Addrs = slices.Clone(sr.Record.Addrs)
		sr.Record.LAN = slices.Clone(sr.Record.LAN)
		out = append(out, sr)
	}
	return out
}

// SetSelfAddrs tells the book this node's voted public addresses. A peer
// whose record has one of them is behind the same NAT, so its LAN
// addresses become candidates; a loopback address among them means the
// cluster runs on one host, so records' loopback addresses are usable.
func (b *Book) SetSelfAddrs(addrs []netip.Addr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.selfAddrs = b.selfAddrs[:0]
	for _, a := range addrs {
		b.selfAddrs = append(b.selfAddrs, a.Unmap().WithZone(""))
	}
}

// Hint adds an address for peer learned outside the protocol (the join
// address, the saved peer list, the member record in the replicated
// state). Hints rank last but make a peer known before any record of it.
func (b *Book) Hint(peer string, addr netip.AddrPort, now time.Time) error {
	if err := validName(peer); err != nil {
		return fmt.Errorf("hint: %w", err)
	}
	addr = canon(addr)
	if err := checkRecordAddr(addr); err != nil {
		return fmt.Errorf("hint for %s: %w", peer, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.entryLocked(peer)
	p.hints[addr] = now
	trimOldest(p.hints, maxHints)
	return nil
}

// LinkUp records that a link to peer is up. If this node dialed it,
// remote is an address that works; if the peer dialed, remote's IP is
// where the peer is (its port is an ephemeral one, so the candidate uses
// the peer's listening port). An invalid remote (a relayed link) only
// marks the peer up.
//
// A link may replace one that is still up (a probe replaced a silent
// link); see LinkDown for what becomes of the old link's address.
func (b *Book) LinkUp(peer string, remote netip.AddrPort, outbound bool, now time.Time) {
	remote = canon(remote)
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.entryLocked(peer)
	if p.upRemote != remote.Addr() {
		p.dropUnlistedLocked(p.upRemote)
	}
	p.up, p.upRemote = true, netip.Addr{}
	if !remote.IsValid() || !unicast(remote.Addr()) {
		return
	}
	p.upRemote = remote.Addr()
	if outbound {
		p.worked[remote] = now
		trimOldest(p.worked, maxWorked)
		delete(p.failed, remote)
		return
	}
	p.observed[remote.Addr()] = now
	trimOldest(p.observed, maxObserved)
}

// LinkDown records that the link to peer closed. The peer becomes due in
// Wanted at once.
//
// Merge keeps the evidence of the current link's address even when the
// record does not list it (the link may have been made after the record
// was issued). Once that link is gone, or replaced by one at another
// address, its evidence older than the record goes, as Merge would have
// dropped it: otherwise a dial that worked before the peer moved would
// still rank above everything the record says.
func (b *Book) LinkDown(peer string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[peer]
	if p == nil {
		return
	}
	p.dropUnlistedLocked(p.upRemote)
	p.up = false
	p.queriedAt = time.Time{}
}

// dropUnlistedLocked forgets the evidence of ip that is older than the
// record, if the record does not list ip.
func (p *peerEntry) dropUnlistedLocked(ip netip.Addr) {
	if !ip.IsValid() || !p.hasRecord() || containsIP(p.rec.Addrs, ip) || containsIP(p.rec.LAN, ip) {
		return
	}
	for ap, at := range p.worked {
		if ap.Addr() == ip && at.Before(p.recAt) {
			delete(p.worked, ap)
		}
	}
	if at, ok := p.observed[ip]; ok && at.Before(p.recAt) {
		delete(p.observed, ip)
	}
}

// DialFailed records that dialing peer at addr failed.
func (b *Book) DialFailed(peer string, addr netip.AddrPort, now time.Time) {
	addr = canon(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[peer]
	if p == nil {
		return
	}
	p.failed[addr] = now
	// Keep failures only for addresses that are still candidates.
	for ap := range p.failed {
		if _, ok := p.worked[ap]; ok {
			continue
		}
		if _, ok := p.hints[ap]; ok {
			continue
		}
		if _, ok := p.observed[ap.Addr()]; ok {
			continue
		}
		if containsIP(p.rec.Addrs, ap.Addr()) || containsIP(p.rec.LAN, ap.Addr()) {
			continue
		}
		delete(p.failed, ap)
	}
}

// Up reports whether a link to peer is up.
func (b *Book) Up(peer string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[peer]
	return p != nil && p.up
}

// Peers returns the names of all known peers, sorted.
func (b *Book) Peers() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.peers))
	for name := range b.peers {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Forget drops everything about peer, for a member that left.
func (b *Book) Forget(peer string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.peers, peer)
}

// Unreachable returns the known peers with no link up, sorted. On a new
// link, ask its peer for the records of all of them.
func (b *Book) Unreachable() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for name, p := range b.peers {
		if !p.up {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Wanted returns the unreachable peers due for a RecordQuery to every
// connected peer, sorted, and marks them asked at now: a peer is due at
// once when its link goes down (or when it becomes known), then every
// query interval while it stays unreachable.
func (b *Book) Wanted(now time.Time) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for name, p := range b.peers {
		if p.up || !p.queriedAt.IsZero() && now.Sub(p.queriedAt) < b.queryEvery {
			continue
		}
		p.queriedAt = now
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Candidates returns the addresses to dial peer at, best first, without
// duplicates. See Explain for the order.
func (b *Book) Candidates(peer string, now time.Time) []netip.AddrPort {
	cs := b.Explain(peer, now)
	out := make([]netip.AddrPort, len(cs))
	for i, c := range cs {
		out[i] = c.Addr
	}
	return out
}

// Explain returns peer's candidates with the reason for each. The order:
// addresses this node dialed successfully (most recent first); the IPs
// the peer dialed from, with its listening port; its LAN addresses if it
// shares this node's public IP (ahead of the public one, because many home
// routers do not hairpin a LAN connection to their own public address);
// its record's public addresses; hints. An address whose last dial failed,
// within the fail hold and after its last evidence, moves to the end.
// Loopback and link-local addresses from records are left out unless this
// node's own address is loopback (a cluster on one host).
func (b *Book) Explain(peer string, now time.Time) []Candidate {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[peer]
	if p == nil {
		return nil
	}
	type entry struct {
		Candidate
		evidence time.Time // latest evidence for the address
		order    int
	}
	var list []entry
	add := func(ap netip.AddrPort, r Reason, at time.Time) {
		if i := slices.IndexFunc(list, func(e entry) bool { return e.Addr == ap }); i >= 0 {
			if at.After(list[i].evidence) {
				list[i].evidence = at
			}
			return // already there with a reason ranked at least as high
		}
		list = append(list, entry{Candidate: Candidate{Addr: ap, Reason: r}, evidence: at, order: len(list)})
	}
	for _, ap := range byRecency(p.worked) {
		add(ap, ReasonWorked, p.worked[ap])
	}
	if port := b.portLocked(p); port != 0 {
		for _, ip := range byRecency(p.observed) {
			add(netip.AddrPortFrom(ip, port), ReasonObserved, p.observed[ip])
		}
	}
	if p.hasRecord() {
		loopbackOK := slices.ContainsFunc(b.selfAddrs, netip.Addr.IsLoopback)
		usable := func(ap netip.AddrPort) bool {
			return !hostScoped(ap.Addr()) || loopbackOK && ap.Addr().IsLoopback()
		}
		sameNAT := slices.ContainsFunc(p.rec.Addrs, func(ap netip.AddrPort) bool { return slices.Contains(b.selfAddrs, ap.Addr()) })
		if sameNAT {
			for _, ap := range p.rec.LAN {
				if usable(ap) {
					add(ap, ReasonLAN, p.recAt)
				}
			}
		}
		for _, ap := range p.rec.Addrs {
			if usable(ap) {
				add(ap, ReasonRecord, p.recAt)
			}
		}
	}
	for _, ap := range byRecency(p.hints) {
		add(ap, ReasonHint, p.hints[ap])
	}
	for i := range list {
		e := &list[i]
		if at, ok := p.failed[e.Addr]; ok && at.After(e.evidence) && now.Sub(at) < b.failHold {
			e.Failed = true
		}
	}
	slices.SortStableFunc(list, func(x, y entry) int {
		if x.Failed != y.Failed {
			if x.Failed {
				return 1
			}
			return -1
		}
		return x.order - y.order
	})
	out := make([]Candidate, len(list))
	for i, e := range list {
		out[i] = e.Candidate
	}
	return out
}

// portLocked returns the port peer listens on: its record's, else a
// hint's, else 0.
func (b *Book) portLocked(p *peerEntry) uint16 {
	if p.hasRecord() {
		return p.rec.Port
	}
	if hs := byRecency(p.hints); len(hs) > 0 {
		return hs[0].Port()
	}
	return 0
}

// addrKey is netip.Addr or netip.AddrPort: a map key with an order.
type addrKey[K any] interface {
	comparable
	Compare(K) int
}

// byRecency returns m's keys, most recent first, ties in address order so
// that the result does not depend on map order.
func byRecency[K addrKey[K]](m map[K]time.Time) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int {
		if c := m[b].Compare(m[a]); c != 0 {
			return c
		}
		return a.Compare(b)
	})
	return keys
}

// trimOldest drops m's oldest entries until at most limit remain.
func trimOldest[K addrKey[K]](m map[K]time.Time, limit int) {
	if len(m) <= limit {
		return
	}
	for _, k := range byRecency(m)[limit:] {
		delete(m, k)
	}
}

// String summarizes the book for debugging: each peer, up or down, its
// incarnation.
func (b *Book) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.peers))
	for name := range b.peers {
		names = append(names, name)
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, name := range names {
		p := b.peers[name]
		state := "down"
		if p.up {
			state = "up"
		}
		fmt.Fprintf(&sb, "%s %s inc=%d\n", name, state, p.rec.Incarnation)
	}
	return sb.String()
}
