package failover

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The simulator runs whole clusters of Holders, Witnesses and Assigners
// step by step in true time, with one clock per node running at its own
// rate from its own arbitrary origin, an unreliable network (delay, loss,
// reordering, stale messages seconds late, one-way and two-way cuts),
// crashes and restarts, and a model of Raft: one leader at a time, only a
// leader with a majority commits, a new leader has every committed entry,
// followers apply late and only while they reach the leader.
//
// After every step it checks that no two nodes hold a role: neither by
// Holds (belief) nor by the Promote/Demote events (what the hooks see).
// Beliefs start only when a step processes a message, and a step checks
// after processing, so two belief intervals that overlap at all overlap at
// the start of one of them, which is a checked instant: the check is exact,
// not sampled.

// simStep is the simulator's resolution; messages and calls happen at
// multiples of it.
const simStep = time.Millisecond

type simNode struct {
	name     string
	up       bool
	clock    time.Time // this node's monotonic clock: own origin, own rate
	rate     float64
	session  uint64
	holder   *Holder
	witness  *Witness
	state    map[string]Assignment // applied
	applied  int                   // log entries applied
	applyAt  time.Duration         // when the pending apply batch lands; <0: none
	hnext    time.Time
	promoted map[string]uint64 // role → epoch between a Promote event and its Demote
}

type simMsg struct {
	at       time.Duration
	from, to int
	renewal  *Renewal
	ack      *Ack
	release  *Release
}

type simEntry struct {
	result Assignment
}

type simProposal struct {
	at   time.Duration
	term int
	cmd  Command
}

type simPromo struct {
	epoch uint64
	node  string
}

type sim struct {
	t        Timing
	rng      *rand.Rand
	now      time.Duration
	nodes    []*simNode
	names    []string
	cut      [][]bool // cut[a][b]: messages from a to b are lost
	msgs     []simMsg
	log      []simEntry
	state    map[string]Assignment // committed
	roles    []RoleConfig
	health   map[string]map[string]bool
	maxDelay time.Duration
	ordered  bool             // no loss, no stragglers: a TCP link's view
	elect    [2]time.Duration // election time range

	leader   int // -1: none
	term     int
	electAt  time.Duration
	assigner *Assigner
	pnext    time.Time
	dirty    bool
	props    []simProposal
	sessions uint64

	lastPromo  map[string]simPromo
	promotions int
	maxEpoch   uint64
	err        error
	trace      []string
}

// newSim builds a cluster of n nodes (all up, all healthy, no leader yet).
func newSim(seed uint64, n int, roles []RoleConfig, t Timing) *sim {
	s := &sim{
		t:         t,
		rng:       rand.New(rand.NewPCG(seed, seed^0x5eed)),
		state:     make(map[string]Assignment),
		roles:     roles,
		health:    make(map[string]map[string]bool),
		leader:    -1,
		lastPromo: make(map[string]simPromo),
		maxDelay:  t.Renew / 5,
		elect:     [2]time.Duration{4 * t.Lease / 5, 8 * t.Lease / 5},
	}
	s.electAt = s.between(s.elect[0], s.elect[1])
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		s.names = append(s.names, name)
		// Each clock starts at its own arbitrary origin: any comparison
		// across nodes would be off by hours.
		origin := time.Unix(1_700_000_000+int64(s.rng.IntN(1_000_000)), int64(s.rng.IntN(1e9)))
		s.nodes = append(s.nodes, &simNode{name: name, clock: origin, rate: 1})
		s.cut = append(s.cut, make([]bool, n))
	}
	for _, r := range roles {
		s.health[r.Name] = make(map[string]bool)
		for _, name := range s.names {
			s.health[r.Name][name] = true
		}
	}
	for i := range s.nodes {
		s.start(i)
	}
	return s
}

func (s *sim) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

func (s *sim) tracef(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%8v ", s.now)+fmt.Sprintf(format, args...))
	if len(s.trace) > 400 {
		s.trace = slices.Delete(s.trace, 0, 100)
	}
}

func (s *sim) failf(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("at %v: %s", s.now, fmt.Sprintf(format, args...))
	}
}

// start (re)starts node i's process: a new session, fresh Holder and
// Witness, and an empty state that Raft fills in again.
func (s *sim) start(i int) {
	nd := s.nodes[i]
	s.sessions++
	nd.up = true
	nd.session = s.sessions
	nd.holder = NewHolder(nd.name, nd.session, s.t)
	nd.witness = NewWitness(nd.name, s.t, nd.clock)
	nd.state = make(map[string]Assignment)
	nd.applied = 0
	nd.applyAt = -1
	nd.hnext = time.Time{}
	nd.promoted = make(map[string]uint64)
	s.tracef("%s starts, session %d", nd.name, nd.session)
}

func (s *sim) crash(i int) {
	nd := s.nodes[i]
	if !nd.up {
		return
	}
	nd.up = false
	nd.promoted = nil
	s.dirty = true // the leader sees it gone
	s.tracef("%s crashes", nd.name)
	if s.leader == i {
		s.depose()
	}
}

func (s *sim) depose() {
	s.tracef("leader %s deposed", s.nodes[s.leader].name)
	s.leader, s.assigner = -1, nil
	s.electAt = s.now + s.between(s.elect[0], s.elect[1])
}

func (s *sim) linked(a, b int) bool { return a == b || !s.cut[a][b] && !s.cut[b][a] }

// quorate reports whether node i reaches a majority both ways.
func (s *sim) quorate(i int) bool {
	n := 0
	for j, nd := range s.nodes {
		if nd.up && s.linked(i, j) {
			n++
		}
	}
	return 2*n > len(s.nodes)
}

func (s *sim) send(m simMsg) {
	if !s.nodes[m.from].up || m.from != m.to && s.cut[m.from][m.to] {
		return
	}
	switch r := s.rng.IntN(100); {
	case s.ordered:
		m.at = s.now + s.between(0, s.maxDelay)
	case r < 2:
		return // lost
	case r < 4:
		m.at = s.now + s.between(0, 3*time.Second) // stuck in a queue
	default:
		m.at = s.now + s.between(0, s.maxDelay)
	}
	s.msgs = append(s.msgs, m)
}

// advance moves true time on by k steps, and every clock at its rate.
func (s *sim) advance(k int64) {
	d := time.Duration(k) * simStep
	s.now += d
	for _, nd := range s.nodes {
		nd.clock = nd.clock.Add(time.Duration(float64(d) * nd.rate))
	}
}

// idle returns how many steps may pass before anything is due (at least 1).
// Skipping them changes nothing: a step with nothing due does nothing, and
// no belief can start in it, so it needs no check either.
func (s *sim) idle(limit time.Duration) int64 {
	next := limit
	soon := func(t time.Duration) {
		if t < next {
			next = t
		}
	}
	// local returns the true time at which node nd's clock reaches t.
	local := func(nd *simNode, t time.Time) time.Duration {
		return s.now + time.Duration(float64(t.Sub(nd.clock))/nd.rate)
	}
	for _, m := range s.msgs {
		soon(m.at)
	}
	for _, p := range s.props {
		soon(p.at)
	}
	if s.leader < 0 {
		soon(s.electAt)
	} else if s.dirty {
		soon(s.now)
	} else if !s.pnext.IsZero() {
		soon(local(s.nodes[s.leader], s.pnext))
	}
	for i, nd := range s.nodes {
		if !nd.up {
			continue
		}
		if !nd.hnext.IsZero() {
			soon(local(nd, nd.hnext))
		}
		if nd.applied < len(s.log) && s.leader >= 0 && s.linked(i, s.leader) {
			if nd.applyAt >= 0 {
				soon(nd.applyAt)
			} else {
				soon(s.now)
			}
		}
	}
	k := int64((next - s.now + simStep - 1) / simStep)
	return max(k, 1)
}

// step advances true time to the next step with something due and runs
// everything due then.
func (s *sim) step(limit time.Duration) {
	s.advance(s.idle(limit))
	s.deliver()
	s.raft()
	for i, nd := range s.nodes {
		if nd.up && !nd.hnext.IsZero() && !nd.clock.Before(nd.hnext) {
			s.output(i, nd.holder.Tick(nd.clock))
		}
	}
	if s.leader >= 0 {
		ld := s.nodes[s.leader]
		if s.dirty || !s.pnext.IsZero() && !ld.clock.Before(s.pnext) {
			s.dirty = false
			p := s.assigner.Plan(s.view(), ld.witness, ld.clock)
			s.pnext = p.Next
			for _, c := range p.Commands {
				s.tracef("leader %s proposes %v", ld.name, c)
				s.props = append(s.props, simProposal{at: s.now + s.between(simStep, 15*simStep), term: s.term, cmd: c})
			}
		}
	}
	s.check()
}

func (s *sim) deliver() {
	// Handling a message sends others; they join the queue afterwards.
	due := s.msgs
	s.msgs = nil
	var later []simMsg
	for _, m := range due {
		if m.at > s.now {
			later = append(later, m)
			continue
		}
		to := s.nodes[m.to]
		if !to.up {
			continue
		}
		switch {
		case m.renewal != nil:
			s.renewal(m.to, m.from, *m.renewal)
		case m.ack != nil:
			s.output(m.to, to.holder.Ack(*m.ack, s.names, to.clock))
		case m.release != nil:
			to.witness.Release(*m.release)
			if m.to == s.leader {
				s.dirty = true
			}
		}
	}
	s.msgs = append(later, s.msgs...)
}

// renewal lets witness w answer a renewal from node h.
func (s *sim) renewal(w, h int, r Renewal) {
	wn := s.nodes[w]
	ack, err := wn.witness.Renew(r, wn.state[r.Role], wn.clock)
	if err != nil {
		return
	}
	if w == h {
		s.output(h, wn.holder.Ack(ack, s.names, wn.clock))
		return
	}
	s.send(simMsg{from: w, to: h, ack: &ack})
}

// output carries out what node i's Holder asked for.
func (s *sim) output(i int, out Output) {
	nd := s.nodes[i]
	nd.hnext = out.Next
	for _, ev := range out.Events {
		s.tracef("%s: %v", nd.name, ev)
		switch ev.Kind {
		case EventPromote:
			if _, ok := nd.holder.Holds(ev.Role, nd.clock); !ok {
				s.failf("%s emitted %v but Holds says no", nd.name, ev)
			}
			for j, other := range s.nodes {
				if e, ok := other.promoted[ev.Role]; ok && j != i {
					s.failf("%s promoted to %s epoch %d while %s is still promoted at epoch %d", nd.name, ev.Role, ev.Epoch, other.name, e)
				}
			}
			if last, ok := s.lastPromo[ev.Role]; ok && (ev.Epoch < last.epoch || ev.Epoch == last.epoch && ev.Node != last.node) {
				s.failf("%s promoted to %s at epoch %d after %s was at epoch %d", nd.name, ev.Role, ev.Epoch, last.node, last.epoch)
			}
			s.lastPromo[ev.Role] = simPromo{ev.Epoch, ev.Node}
			nd.promoted[ev.Role] = ev.Epoch
			s.promotions++
			s.maxEpoch = max(s.maxEpoch, ev.Epoch)
		case EventDemote:
			if e, ok := nd.promoted[ev.Role]; !ok || e != ev.Epoch {
				s.failf("%s emitted %v while promoted at %d (%v)", nd.name, ev, e, ok)
			}
			delete(nd.promoted, ev.Role)
		}
	}
	for _, r := range out.Renewals {
		for j := range s.nodes {
			if j == i {
				s.renewal(i, i, r)
			} else {
				s.send(simMsg{from: i, to: j, renewal: &r})
			}
		}
	}
	for _, r := range out.Releases {
		// Sent once the demote hook ran: a little later.
		hook := s.between(0, 20*simStep)
		for j := range s.nodes {
			m := simMsg{from: i, to: j, release: &r}
			if j == i {
				m.at = s.now + hook
				s.msgs = append(s.msgs, m)
				continue
			}
			s.send(m)
			if n := len(s.msgs); n > 0 && s.msgs[n-1].release == &r {
				s.msgs[n-1].at += hook
			}
		}
	}
}

// raft models leadership, commits and applies.
func (s *sim) raft() {
	if s.leader >= 0 && (!s.nodes[s.leader].up || !s.quorate(s.leader)) {
		s.depose()
	}
	if s.leader < 0 && s.now >= s.electAt {
		var cands []int
		for i, nd := range s.nodes {
			if nd.up && s.quorate(i) {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			s.electAt = s.now + s.elect[0]
		} else {
			s.leader = cands[s.rng.IntN(len(cands))]
			s.term++
			s.assigner = NewAssigner(s.t)
			s.pnext, s.dirty = time.Time{}, true
			s.tracef("%s elected, term %d", s.nodes[s.leader].name, s.term)
			s.apply(s.leader, len(s.log)) // a Raft leader has every committed entry
		}
	}
	var later []simProposal
	for _, p := range s.props {
		if p.at > s.now {
			later = append(later, p)
			continue
		}
		if p.term != s.term || s.leader < 0 || !s.quorate(s.leader) {
			continue // lost with its leader
		}
		cur := s.state[p.cmd.Role]
		next, err := cur.Apply(p.cmd, time.Unix(0, int64(s.now)))
		if err != nil {
			s.tracef("commit %v refused: %v", p.cmd, err)
			continue
		}
		if next.Epoch <= cur.Epoch {
			s.failf("commit %v: epoch %d after %d", p.cmd, next.Epoch, cur.Epoch)
		}
		s.state[p.cmd.Role] = next
		s.log = append(s.log, simEntry{result: next})
		s.tracef("committed %v", p.cmd)
		s.apply(s.leader, len(s.log))
	}
	s.props = later
	for i, nd := range s.nodes {
		if !nd.up || i == s.leader || nd.applied >= len(s.log) {
			continue
		}
		if s.leader < 0 || !s.linked(i, s.leader) {
			nd.applyAt = -1
			continue
		}
		if nd.applyAt < 0 {
			nd.applyAt = s.now + s.between(0, 4*s.maxDelay+10*simStep)
		}
		if s.now >= nd.applyAt {
			s.apply(i, len(s.log))
			nd.applyAt = -1
		}
	}
}

// apply applies log entries up to n on node i, one at a time.
func (s *sim) apply(i, n int) {
	nd := s.nodes[i]
	for ; nd.applied < n; nd.applied++ {
		a := s.log[nd.applied].result
		if old := nd.state[a.Role]; a.Epoch <= old.Epoch {
			s.failf("%s applies %s epoch %d after epoch %d", nd.name, a.Role, a.Epoch, old.Epoch)
		}
		nd.state[a.Role] = a
		s.output(i, nd.holder.Assign(a, nd.clock))
		if i == s.leader {
			s.dirty = true
		}
	}
}

func (s *sim) view() View {
	ld := s.leader
	alive := make(map[string]bool)
	for i, nd := range s.nodes {
		if nd.up && s.linked(ld, i) {
			alive[nd.name] = true
		}
	}
	return View{Roles: s.roles, Members: s.names, Alive: alive, Healthy: s.health, Assignments: s.nodes[ld].state, Leader: s.names[ld]}
}

// check asserts that no two nodes hold a role at this instant.
func (s *sim) check() {
	for _, r := range s.roles {
		var holders []string
		for _, nd := range s.nodes {
			if !nd.up {
				continue
			}
			if e, ok := nd.holder.Holds(r.Name, nd.clock); ok {
				holders = append(holders, fmt.Sprintf("%s@%d", nd.name, e))
			}
		}
		if len(holders) > 1 {
			s.failf("role %s held by %v at once", r.Name, holders)
		}
	}
}

func (s *sim) holderOf(role string) int {
	for i, nd := range s.nodes {
		if nd.up {
			if _, ok := nd.holder.Holds(role, nd.clock); ok {
				return i
			}
		}
	}
	return -1
}

func (s *sim) run(d time.Duration) {
	for end := s.now + d; s.now < end && s.err == nil; {
		s.step(end)
	}
}
