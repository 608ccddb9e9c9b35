package discovery

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"buoy/internal/wire"
)

// DefaultWindow is how long an observation counts in the vote after it
// was made, unless refreshed: long enough to outlast a few lost
// heartbeats at the default 1 s interval, short enough that a departed
// view stops counting soon.
const DefaultWindow = 30 * time.Second

// Observation is one peer's report of how it sees this node, together with
// what this node knows about the link it came over.
type Observation struct {
	// Observer is the name of the peer that reported it (from the link's
	// certificate, not from the message).
	Observer string
	// Seen is this node's address as the observer sees it: the remote
	// address of the observer's socket (the heartbeat's YouAre).
	Seen netip.AddrPort
	// Local is the local address of this node's socket on that link. A
	// node may know its own sockets; it may not list its interfaces.
	// Optional: without it the observation still votes but says nothing
	// about NAT.
	Local netip.AddrPort
	// Remote is the observer's address as this node sees it on the link
	// (the socket's remote address). Optional; with the observer's record
	// it tells whether the observer sits on this node's side of a NAT.
	Remote netip.AddrPort
	// Outbound is true if this node dialed the link. Only links this node
	// dialed show how its NAT maps outgoing connections.
	Outbound bool
	// At is when the heartbeat carrying it arrived.
	At time.Time
}

// NAT classifies the address translation between a node and its peers.
type NAT string

// NAT classes, as shown by "buoy status" and carried in records.
const (
	// NATUnknown: no observation to judge from yet.
	NATUnknown NAT = "unknown"
	// NATNone: peers see this node at its socket's own address.
	NATNone NAT = "none"
	// NATCone: peers see another address, and all peers of links dialed
	// from one local port see the same external port, so the mapping does
	// not depend on the destination and others can reach it through it.
	NATCone NAT = "cone"
	// NATSymmetric: peers of links dialed from one local port see different
	// external ports: each destination gets its own mapping.
	NATSymmetric NAT = "symmetric"
	// NATCGNAT: this node's voted or local address is in the carrier-grade
	// NAT range 100.64.0.0/10, so a second NAT it does not control sits
	// between it and the Internet.
	NATCGNAT NAT = "cgnat"
)

// Translated reports whether n says that peers do not see the node at its
// own socket address. A class unknown to this version (from a newer peer's
// record) counts as translated.
func (n NAT) Translated() bool {
	switch n {
	case "", NATUnknown, NATNone:
		return false
	}
	return true
}

// rank orders classes from least to most restrictive.
func (n NAT) rank() int {
	switch n {
	case NATNone:
		return 1
	case NATCone:
		return 2
	case NATSymmetric:
		return 3
	case NATCGNAT:
		return 4
	}
	return 0
}

// RecordSource gives the record held for a node; Book implements it. Self
// consults it to tell whether an observer is behind the same NAT.
// Implementations must not call back into Self.
type RecordSource interface {
	Record(node string) (Record, bool)
	// KnownNAT returns the last NAT class other than NATUnknown that
	// node's records showed, or NATUnknown if none did.
	KnownNAT(node string) NAT
}

// SelfConfig configures a Self.
type SelfConfig struct {
	// Window is how long an observation counts; DefaultWindow if zero.
	Window time.Duration
	// Peers, if set, supplies the observers' records (usually the Book).
	Peers RecordSource
}

// Self votes this node's own public address from its peers' observations.
//
// Each observer has one vote per family, its latest observation, which
// counts for Window. The address with the most distinct observers wins;
// on a tie the current address stays, so a single dissenting peer never
// moves the vote, while a majority moves it at once. When no observation
// counts any more the last voted address is kept: silence is not
// evidence of a change.
//
// An observer on this node's side of a NAT (it sees this node at its
// local address, is reached at one of its own local addresses, and its
// record says it is behind a NAT) votes for its own public address
// instead of the LAN address it sees, because behind one NAT both share
// it. Without that, two machines behind one router with a single outside
// peer would tie between the LAN address and the public one. Such a vote
// is only the neighbour's own vote passed on, so it weighs half: when the
// router's address changes, one outside peer that sees the new address
// outweighs the neighbour that still believes the old one.
type Self struct {
	window time.Duration
	peers  RecordSource

	// mu guards the following fields.
	mu    sync.Mutex
	obs   map[string]Observation // observer → its latest observation
	voted [2]netip.Addr          // per family index: the current vote
	local []netip.Addr           // local IPs of the last links seen, sorted
}

// NewSelf returns a Self with no observations.
func NewSelf(cfg SelfConfig) *Self {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	return &Self{window: cfg.Window, peers: cfg.Peers, obs: map[string]Observation{}}
}

// ObservationFromHeartbeat builds the observation carried by a heartbeat
// received from observer on a link with the given local and remote socket
// addresses. A heartbeat without YouAre (a relayed link, where the sender
// sees no address of ours) carries none: the caller skips it.
func ObservationFromHeartbeat(observer string, hb wire.Heartbeat, local, remote netip.AddrPort, outbound bool, at time.Time) (Observation, error) {
	if hb.YouAre == "" {
		return Observation{}, fmt.Errorf("observation from %s: %w: heartbeat has no you_are", observer, ErrMalformed)
	}
	seen, err := netip.ParseAddrPort(hb.YouAre)
	if err != nil {
		return Observation{}, fmt.Errorf("observation from %s: %w: you_are %.70q: %v", observer, ErrMalformed, hb.YouAre, err)
	}
	o := Observation{Observer: observer, Seen: seen, Local: local, Remote: remote, Outbound: outbound, At: at}
	if err := o.check(); err != nil {
		return Observation{}, err
	}
	return o.canonical(), nil
}

func (o Observation) canonical() Observation {
	o.Seen, o.Local, o.Remote = canon(o.Seen), canon(o.Local), canon(o.Remote)
	return o
}

// check refuses what no honest peer on a working link can report.
func (o Observation) check() error {
	if err := validName(o.Observer); err != nil {
		return fmt.Errorf("observation: %w", err)
	}
	seen, local := canon(o.Seen), canon(o.Local)
	switch {
	case o.At.IsZero():
		return fmt.Errorf("observation from %s: %w: no time", o.Observer, ErrMalformed)
	case !seen.IsValid() || seen.Port() == 0:
		return fmt.Errorf("observation from %s: %w: seen address %v", o.Observer, ErrMalformed, o.Seen)
	case o.Local.IsValid() && !unicast(local.Addr()):
		return fmt.Errorf("observation from %s: %w: local address %v", o.Observer, ErrMalformed, o.Local)
	case !unicast(seen.Addr()):
		return fmt.Errorf("observation from %s: %w: %v is not a unicast address", o.Observer, ErrImplausible, seen)
	case seen.Addr().IsLoopback() && !(local.IsValid() && local.Addr().IsLoopback()):
		return fmt.Errorf("observation from %s: %w: loopback %v over a link that is not on loopback", o.Observer, ErrImplausible, seen)
	case seen.Addr().IsLinkLocalUnicast() && !(local.IsValid() && local.Addr().IsLinkLocalUnicast()):
		return fmt.Errorf("observation from %s: %w: link-local %v over a link that is not link-local", o.Observer, ErrImplausible, seen)
	}
	return nil
}

// Observe records o as its observer's latest view and votes again. It
// reports whether a voted address changed. An observation older than the
// one held for the same observer is ignored; an impossible one is refused
// with an error wrapping ErrMalformed or ErrImplausible and changes
// nothing.
func (s *Self) Observe(o Observation) (changed bool, err error) {
	if err := o.check(); err != nil {
		return false, err
	}
	o = o.canonical()
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.obs[o.Observer]; ok && prev.At.After(o.At) {
		return false, nil
	}
	s.obs[o.Observer] = o
	return s.voteLocked(o.At), nil
}

// Forget drops observer's observation, for when its link closes: a view
// over a link that no longer exists says nothing about the present, and
// keeping it would hold the vote on an address the node may have lost.
// It reports whether a voted address changed.
func (s *Self) Forget(observer string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.obs, observer)
	return s.voteLocked(now)
}

// Expire drops observations older than the window and votes again; call
// it on every heartbeat tick, and after the peers' records changed. It
// reports whether a voted address changed.
func (s *Self) Expire(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.voteLocked(now)
}

// Address returns the voted address of family f, or the zero Addr if no
// peer has reported one yet.
func (s *Self) Address(f Family) netip.Addr {
	i := f.index()
	if i < 0 {
		return netip.Addr{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.voted[i]
}

// Addresses returns the voted addresses, IPv4 first; empty until a peer
// has reported one.
func (s *Self) Addresses() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Addr
	for _, a := range s.voted {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// Observations returns the observations that count at now, one per
// observer, sorted by observer.
func (s *Self) Observations(now time.Time) []Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liveLocked(now)
}

// LocalAddrs returns the distinct local IPs of the links whose
// observations counted at the last vote, sorted; when none counted, those
// of the last vote that had some. They are the node's LAN addresses.
func (s *Self) LocalAddrs() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.local)
}

// NAT returns the most restrictive NAT class over both families, so a
// dual-stack node behind an IPv4 NAT is "cone" even though its IPv6
// address is not translated.
func (s *Self) NAT(now time.Time) NAT {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.liveLocked(now)
	best := NATUnknown
	for i, f := range families {
		if n := classify(live, f, s.voted[i]); n.rank() > best.rank() {
			best = n
		}
	}
	return best
}

// NATFor returns the NAT class of family f.
func (s *Self) NATFor(f Family, now time.Time) NAT {
	i := f.index()
	if i < 0 {
		return NATUnknown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return classify(s.liveLocked(now), f, s.voted[i])
}

// liveLocked returns the observations younger than the window at now,
// sorted by observer.
func (s *Self) liveLocked(now time.Time) []Observation {
	out := make([]Observation, 0, len(s.obs))
	for _, o := range s.obs {
		if now.Sub(o.At) < s.window {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b Observation) int { return strings.Compare(a.Observer, b.Observer) })
	return out
}

type tally struct {
	// weight is 2 per observer that saw the address and 1 per LAN
	// neighbour that passed on its own public address (see ballot).
	weight int
	latest time.Time
}

// voteLocked recomputes every family's vote from the live observations
// and reports whether one changed.
func (s *Self) voteLocked(now time.Time) bool {
	for name, o := range s.obs {
		if now.Sub(o.At) >= s.window {
			delete(s.obs, name)
		}
	}
	live := s.liveLocked(now)
	changed := false
	for i, f := range families {
		support := map[netip.Addr]tally{}
		for _, o := range live {
			ip, derived, ok := s.ballot(o, f)
			if !ok {
				continue
			}
			t := support[ip]
			t.weight += 2
			if derived {
				t.weight--
			}
			if o.At.After(t.latest) {
				t.latest = o.At
			}
			support[ip] = t
		}
		if len(support) == 0 {
			continue // nobody says anything: keep what we had
		}
		if next := pick(support, s.voted[i]); next != s.voted[i] {
			s.voted[i] = next
			changed = true
		}
	}
	var local []netip.Addr
	for _, o := range live {
		if o.Local.IsValid() && !slices.Contains(local, o.Local.Addr()) {
			local = append(local, o.Local.Addr())
		}
	}
	if len(local) > 0 {
		slices.SortFunc(local, netip.Addr.Compare)
		if len(local) > wire.MaxRecordLAN {
			local = local[:wire.MaxRecordLAN]
		}
		s.local = local
	}
	return changed
}

// ballot returns the IP of family f that observation o votes for, and
// whether it is derived: the observer's own public address rather than
// what it saw.
func (s *Self) ballot(o Observation, f Family) (ip netip.Addr, derived, ok bool) {
	if s.peers != nil && o.Local.IsValid() && o.Remote.IsValid() && o.Seen == o.Local {
		if rec, ok := s.peers.Record(o.Observer); ok && containsIP(rec.LAN, o.Remote.Addr()) {
			var pub netip.Addr
			for _, ap := range rec.Addrs {
				if FamilyOf(ap.Addr()) == f && !containsIP(rec.LAN, ap.Addr()) {
					pub = ap.Addr()
					break
				}
			}
			// The observer is behind a NAT and we reach each other
			// untranslated, at our local addresses: we are behind the
			// same NAT, so its public address is ours. If it does not
			// know a public address of this family distinct from its
			// LAN ones, it abstains rather than vote for a LAN address.
			// An observer whose class is unknown but whose record has
			// such an address has just lost every link out of the LAN
			// (its router's address changed): it counts as behind the
			// NAT too, or it would vote for our LAN address. Only if
			// its records showed it behind a NAT before, though: a
			// public node that just moved looks the same for a moment
			// (its old address voted, its new one local, no class), and
			// taking it for a neighbour made the nodes that did so vote
			// its old address for themselves, which made it and them
			// hold each other there for good.
			//
			// Its public address is only its own vote, as old as ours
			// when the router's address changes, so it weighs half an
			// observer: it settles nothing against one that saw us, or
			// two such neighbours would hold each other on the old
			// address for ever.
			switch {
			case pub.IsValid() && (rec.NAT.Translated() || rec.NAT == NATUnknown && s.peers.KnownNAT(o.Observer).Translated()):
				return pub, true, true
			case rec.NAT.Translated():
				return netip.Addr{}, false, false
			}
		}
	}
	if FamilyOf(o.Seen.Addr()) != f {
		return netip.Addr{}, false, false
	}
	return o.Seen.Addr(), false, true
}

// pick returns the winner of a non-empty vote: the current address if it
// has as much weight as any other; else the address with the most
// weight, then the most recently observed, then the lowest.
func pick(support map[netip.Addr]tally, current netip.Addr) netip.Addr {
	most := 0
	for _, t := range support {
		most = max(most, t.weight)
	}
	if t, ok := support[current]; ok && t.weight == most {
		return current
	}
	var best netip.Addr
	var bestT tally
	for a, t := range support {
		if t.weight != most {
			continue
		}
		if !best.IsValid() || t.latest.After(bestT.latest) || t.latest.Equal(bestT.latest) && a.Less(best) {
			best, bestT = a, t
		}
	}
	return best
}

// classify derives the NAT class of family f from the live observations;
// voted is that family's current vote, the only seen address that counts
// for the class, so that neither a dissenting peer nor a view from before
// an address change can make the NAT look symmetric or carrier-grade.
func classify(live []Observation, f Family, voted netip.Addr) NAT {
	agreed := func(o Observation) bool { return !voted.IsValid() || o.Seen.Addr() == voted }
	var direct, translated, cgnat bool
	mapping := map[netip.AddrPort]netip.AddrPort{} // local port → external, links we dialed
	symmetric := false
	for _, o := range live {
		if FamilyOf(o.Seen.Addr()) != f {
			continue
		}
		if isCGNAT(o.Local.Addr()) || agreed(o) && isCGNAT(o.Seen.Addr()) {
			cgnat = true
		}
		if !o.Local.IsValid() {
			continue
		}
		if o.Seen == o.Local {
			// Seen untranslated: no NAT, unless our vote is an address
			// none of our sockets has. Then this is a neighbour behind
			// our NAT, and the outside views that made the vote are
			// gone for now (the router's address just changed).
			direct = direct || !voted.IsValid() || o.Local.Addr() == voted
			continue
		}
		translated = true
		if o.Outbound && agreed(o) {
			if ext, ok := mapping[o.Local]; ok && ext != o.Seen {
				symmetric = true
			}
			mapping[o.Local] = o.Seen
		}
	}
	switch {
	case cgnat:
		return NATCGNAT
	case symmetric:
		return NATSymmetric
	case translated:
		return NATCone
	case direct:
		return NATNone
	}
	return NATUnknown
}
