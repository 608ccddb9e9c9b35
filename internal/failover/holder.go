package failover

import (
	"slices"
	"time"
)

// Output is what a Holder asks the node to do. The node runs the Events in
// order (one at a time per role), sends every Renewal to every voter (its
// own Witness included, whose answer comes back through Holder.Ack like any
// other), sends every Release to every node once the Demote event before it
// has finished (or timed out), and calls Holder.Tick again at Next.
type Output struct {
	Events   []Event
	Renewals []Renewal
	Releases []Release
	// Next is when to call Tick next; the zero time means only when an
	// input arrives.
	Next time.Time
}

// Holder is one node's side of its own leases: from the applied
// assignments, the acknowledgements of its renewals and the time, it
// decides when this node holds each role, and emits the hook events.
//
// A node holds a role at epoch E while the replicated state assigns the
// role to it at E and less than Lease-Guard has passed on its clock since
// it sent the newest renewal a majority of voters acknowledged. Holds
// answers that for any instant, exactly; the Promote and Demote events
// follow it at the calls the node makes, so the node must call Tick at
// Next for a Demote to run on time (Guard is the allowance for that and
// for the hook). Belief never outlives what the witnesses promised, so no
// two nodes hold a role at the same instant (see Timing.Validate).
//
// A Holder is not safe for concurrent use; the node serialises calls.
type Holder struct {
	self    string
	session uint64
	t       Timing
	claims  map[string]*claim
}

// claim is a Holder's state for one role.
type claim struct {
	seen  Assignment // newest applied assignment
	epoch uint64     // epoch assigned to this node, 0 if none
	// promoted: the last state event emitted for epoch was Promote.
	promoted bool
	// renewed is when the newest round a majority acknowledged was sent.
	renewed  time.Time
	seq      uint64
	rounds   []round // unanswered rounds still able to extend the lease, oldest first
	nextSend time.Time
}

// round is one renewal round and who acknowledged it.
type round struct {
	seq  uint64
	sent time.Time
	acks []string
}

// NewHolder returns the Holder of node self. session identifies this run
// of the process and must be larger than that of any earlier run of the
// node (the node's incarnation at start serves).
func NewHolder(self string, session uint64, t Timing) *Holder {
	return &Holder{self: self, session: session, t: t, claims: make(map[string]*claim)}
}

func (h *Holder) claim(role string) *claim {
	c := h.claims[role]
	if c == nil {
		c = &claim{seen: Assignment{Role: role}}
		h.claims[role] = c
	}
	return c
}

// Assign takes a role's assignment as this node applied it. The node calls
// it when it starts, for every role, and after every apply that changed a
// role. A newer epoch emits a Change; one that moves the role away from
// this node ends its claim (a Demote if it held the role, and a Release in
// any case); one that assigns the role to this node starts renewals.
func (h *Holder) Assign(a Assignment, now time.Time) Output {
	var out Output
	h.expire(now, &out)
	c := h.claim(a.Role)
	if a.Epoch > c.seen.Epoch {
		if c.epoch != 0 && (a.Holder != h.self || a.Epoch != c.epoch) {
			if c.promoted {
				out.Events = append(out.Events, Event{Kind: EventDemote, Role: a.Role, Epoch: c.epoch, Node: h.self,
					Holder: a.Holder, Previous: h.self, Cause: CauseMoved})
			}
			out.Releases = append(out.Releases, Release{Role: a.Role, Epoch: c.epoch, Node: h.self, Session: h.session})
			*c = claim{}
		}
		out.Events = append(out.Events, Event{Kind: EventChange, Role: a.Role, Epoch: a.Epoch, Node: h.self,
			Holder: a.Holder, Previous: a.Previous, Cause: CauseMoved})
		c.seen = a
		if a.Holder == h.self {
			c.epoch = a.Epoch
			c.nextSend = now // renew at once: the first majority is the promotion
		}
	}
	h.renew(now, &out)
	out.Next = h.next()
	return out
}

// Ack takes an acknowledgement of one of this node's renewals; voters are
// the current Raft voters, whose majority a round needs. Acks from others,
// for other epochs, or for rounds too old to extend the lease are ignored.
func (h *Holder) Ack(a Ack, voters []string, now time.Time) Output {
	var out Output
	h.expire(now, &out)
	c := h.claims[a.Role]
	if c != nil && c.epoch != 0 && a.Epoch == c.epoch && a.Session == h.session && slices.Contains(voters, a.From) {
		if i := slices.IndexFunc(c.rounds, func(r round) bool { return r.seq == a.Seq }); i >= 0 {
			r := &c.rounds[i]
			if !slices.Contains(r.acks, a.From) {
				r.acks = append(r.acks, a.From)
			}
			if majority(r.acks, voters) {
				if r.sent.After(c.renewed) {
					c.renewed = r.sent
				}
				// Older rounds can no longer extend the lease.
				c.rounds = slices.Delete(c.rounds, 0, i+1)
				if !c.promoted && now.Before(c.renewed.Add(h.t.belief())) {
					c.promoted = true
					out.Events = append(out.Events, Event{Kind: EventPromote, Role: a.Role, Epoch: c.epoch, Node: h.self,
						Holder: h.self, Previous: c.seen.Previous, Cause: CauseQuorum})
				}
			}
		}
	}
	out.Next = h.next()
	return out
}

// Tick emits the Demote of every lease that ran out and the renewals that
// are due. Call it at Output.Next (calling it more often is harmless).
func (h *Holder) Tick(now time.Time) Output {
	var out Output
	h.expire(now, &out)
	h.renew(now, &out)
	out.Next = h.next()
	return out
}

// Holds reports whether this node holds the role at now, and at which
// epoch. Check it right before acting as the holder: it is exact at any
// instant, between Ticks too.
func (h *Holder) Holds(role string, now time.Time) (epoch uint64, ok bool) {
	c := h.claims[role]
	if c == nil || !c.promoted || !now.Before(c.renewed.Add(h.t.belief())) {
		return 0, false
	}
	return c.epoch, true
}

// expire demotes every claim whose lease ran out. The claim stays: the
// node keeps renewing and is promoted again, at the same epoch, if a
// majority acknowledges it before the leader moves the role.
func (h *Holder) expire(now time.Time, out *Output) {
	for _, role := range sortedKeys(h.claims) {
		c := h.claims[role]
		if c.promoted && !now.Before(c.renewed.Add(h.t.belief())) {
			c.promoted = false
			out.Events = append(out.Events, Event{Kind: EventDemote, Role: role, Epoch: c.epoch, Node: h.self,
				Previous: h.self, Cause: CauseLeaseLost})
		}
	}
}

// renew starts the renewal rounds that are due.
func (h *Holder) renew(now time.Time, out *Output) {
	for _, role := range sortedKeys(h.claims) {
		c := h.claims[role]
		if c.epoch == 0 {
			continue
		}
		// A round sent Lease-Guard ago could not extend the lease even if
		// a majority acknowledged it now.
		c.rounds = slices.DeleteFunc(c.rounds, func(r round) bool { return !now.Before(r.sent.Add(h.t.belief())) })
		if now.Before(c.nextSend) {
			continue
		}
		c.seq++
		c.rounds = append(c.rounds, round{seq: c.seq, sent: now})
		out.Renewals = append(out.Renewals, Renewal{Role: role, Epoch: c.epoch, Node: h.self, Session: h.session, Seq: c.seq})
		every := h.t.Retry
		if c.promoted {
			every = h.t.Renew
		}
		c.nextSend = now.Add(every)
	}
}

// next returns the earliest instant Tick has something to do.
func (h *Holder) next() time.Time {
	var next time.Time
	for _, c := range h.claims {
		if c.epoch == 0 {
			continue
		}
		next = earliest(next, c.nextSend)
		if c.promoted {
			next = earliest(next, c.renewed.Add(h.t.belief()))
		}
	}
	return next
}

// majority reports whether acks holds more than half of voters (each
// counted once, however often the caller listed it).
func majority(acks, voters []string) bool {
	n, total := 0, 0
	for i, v := range voters {
		if slices.Contains(voters[:i], v) {
			continue
		}
		total++
		if slices.Contains(acks, v) {
			n++
		}
	}
	return 2*n > total
}

// earliest returns the earlier of a and b, treating the zero time as unset.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}
