package failover

import (
	"fmt"
	"slices"
	"time"
)

// View is the cluster as the leader sees it when it plans: configuration,
// liveness, health and the committed assignments.
type View struct {
	Roles []RoleConfig
	// Members lists every member of the cluster: the candidates of a role
	// that names none.
	Members []string
	// Alive holds the nodes the leader sees alive to the quorum; absent
	// means not alive.
	Alive map[string]bool
	// Healthy maps role → node → whether the node's checks for the role
	// pass; absent means not passing. A role without checks passes on every
	// node (the node fills that in).
	Healthy map[string]map[string]bool
	// Assignments maps role names to their committed assignments, as the
	// leader applied them.
	Assignments map[string]Assignment
	// Leader is the Raft leader (the node planning). Among equal
	// candidates another node is preferred, so that one crash never costs
	// both a Raft election and a lease; "" means no preference.
	Leader string
}

func (v View) role(name string) (RoleConfig, bool) {
	i := slices.IndexFunc(v.Roles, func(r RoleConfig) bool { return r.Name == name })
	if i < 0 {
		return RoleConfig{}, false
	}
	return v.Roles[i], true
}

// eligible reports whether node may be given the role now: a candidate,
// alive, and passing its checks.
func (v View) eligible(cfg RoleConfig, node string) bool {
	_, ok := cfg.candidate(node, v.Members)
	return ok && v.Alive[node] && v.Healthy[cfg.Name][node]
}

// Plan is what the leader should do: propose Commands (in order, each
// through Raft) and plan again at Next, or sooner when the view changes.
type Plan struct {
	Commands []Command
	// Next is the zero time when nothing is waiting on the clock.
	Next time.Time
}

// Assigner is the Raft leader's side of failover: it decides which node
// should hold each role and proposes the commands that get it there. The
// leader makes a new Assigner each time it gains leadership, calls Plan
// whenever its view changes (an apply, a liveness or health change, a
// release reaching its Witness) and at Plan.Next, and proposes what Plan
// returns.
//
// The rules, per role: the holder is the best eligible candidate (alive,
// healthy), by priority, ties kept by the current holder, then the
// previous one, then going to a node other than the leader, then by name. An eligible holder keeps the role unless
// preempt is on and a candidate of higher priority is eligible, or a
// planned move names another eligible candidate; then the role is
// released first, so that the holder demotes and releases its lease. A
// holder that is alive but unhealthy or no longer a candidate is released
// at once. A holder that is not alive is replaced (or the role released)
// only once the leader's own Witness would acknowledge a new holder,
// which is when the old holder's lease has surely ended from the leader's
// point of view. A vacant role is assigned once the same holds.
//
// An Assigner is not safe for concurrent use; the node serialises calls.
type Assigner struct {
	t       Timing
	pending map[string]proposal
	moves   map[string]plannedMove
}

// proposal is a command proposed and not yet seen committed.
type proposal struct {
	epoch uint64
	at    time.Time
}

// plannedMove is a pending Move.
type plannedMove struct {
	node  string
	until time.Time
}

// NewAssigner returns the assigner of a leader that just took office.
func NewAssigner(t Timing) *Assigner {
	return &Assigner{t: t, pending: make(map[string]proposal), moves: make(map[string]plannedMove)}
}

// Move asks for a planned switchover of role to node. It is refused if the
// role is unknown, the node is not an eligible candidate, or (preempt on)
// a healthy candidate of higher priority would take the role straight
// back. Moving a role to its holder does nothing. The move is carried out
// by the next Plans: release, wait for the holder to let go, assign; it
// is dropped if the target stops being eligible or it has not happened
// within two leases and a second.
func (a *Assigner) Move(role, node string, v View, now time.Time) error {
	cfg, ok := v.role(role)
	if !ok {
		return fmt.Errorf("move %s to %s: %w", role, node, ErrUnknownRole)
	}
	prio, ok := cfg.candidate(node, v.Members)
	switch {
	case !ok:
		return fmt.Errorf("move %s to %s: %w for the role", role, node, ErrNotCandidate)
	case !v.Alive[node]:
		return fmt.Errorf("move %s to %s: %w", role, node, ErrNotAlive)
	case !v.Healthy[role][node]:
		return fmt.Errorf("move %s to %s: its checks for the role do not pass: %w", role, node, ErrUnhealthy)
	}
	if cfg.Preempt {
		for _, c := range candidates(cfg, v.Members) {
			if p, _ := cfg.candidate(c, v.Members); p > prio && v.eligible(cfg, c) {
				return fmt.Errorf("move %s to %s: preempt is on and %s has a higher priority (%d > %d): %w", role, node, c, p, prio, ErrPreempted)
			}
		}
	}
	if v.Assignments[role].Holder == node {
		delete(a.moves, role)
		return nil
	}
	a.moves[role] = plannedMove{node: node, until: now.Add(a.t.moveTimeout())}
	return nil
}

// Plan decides, for every configured role and every assigned one, what to
// propose now. w is the leader's own Witness. A proposed command is not
// proposed again until the state shows it committed or Lease+Margin
// passed (it may have been lost with a leadership change).
func (a *Assigner) Plan(v View, w *Witness, now time.Time) Plan {
	names := make([]string, 0, len(v.Roles)+len(v.Assignments))
	for _, r := range v.Roles {
		names = append(names, r.Name)
	}
	for name := range v.Assignments {
		names = append(names, name)
	}
	slices.Sort(names)
	names = slices.Compact(names)

	var p Plan
	for _, name := range names {
		cur := v.Assignments[name]
		cur.Role = name
		if pr, ok := a.pending[name]; ok {
			if retry := pr.at.Add(a.t.resend()); cur.Epoch < pr.epoch && now.Before(retry) {
				p.Next = earliest(p.Next, retry)
				continue
			}
			delete(a.pending, name)
		}
		cmd, wake := a.decide(cur, v, w, now)
		if cmd != nil {
			p.Commands = append(p.Commands, *cmd)
			a.pending[name] = proposal{epoch: cmd.Epoch, at: now}
			wake = now.Add(a.t.resend())
		}
		p.Next = earliest(p.Next, wake)
	}
	for name := range a.moves {
		if _, ok := v.role(name); !ok {
			delete(a.moves, name)
		}
	}
	return p
}

// decide returns the command to propose for one role, if any, and
// otherwise when the decision may change with time alone.
func (a *Assigner) decide(cur Assignment, v View, w *Witness, now time.Time) (*Command, time.Time) {
	role := cur.Role
	cmd := &Command{Role: role, Epoch: cur.Epoch + 1}
	release := func(r Reason) (*Command, time.Time) {
		cmd.Op, cmd.Reason = OpRelease, r
		return cmd, time.Time{}
	}
	cfg, ok := v.role(role)
	if !ok {
		if cur.Holder == "" {
			return nil, time.Time{}
		}
		return release(ReasonRemoved)
	}
	mv, moving := a.moves[role]
	if moving && (!now.Before(mv.until) || !v.eligible(cfg, mv.node) || mv.node == cur.Holder) {
		delete(a.moves, role)
		moving = false
	}
	target, reason := best(cfg, cur, v), ReasonVacant
	if moving {
		target, reason = mv.node, ReasonMove
	}
	if h := cur.Holder; h != "" {
		hprio, candidate := cfg.candidate(h, v.Members)
		switch {
		case v.eligible(cfg, h):
			if moving {
				return release(ReasonMove)
			}
			if p, _ := cfg.candidate(target, v.Members); cfg.Preempt && target != h && p > hprio {
				return release(ReasonPreempt)
			}
			return nil, time.Time{}
		case v.Alive[h] && !candidate:
			return release(ReasonNotCandidate)
		case v.Alive[h]:
			return release(ReasonUnhealthy)
		}
		// The holder is not alive: it cannot be told to let go, so wait
		// its lease out, then hand over directly.
		reason = ReasonHolderLost
		if target == "" {
			if free := w.FreeAt(role, cmd.Epoch); now.Before(free) {
				return nil, free
			}
			return release(reason)
		}
	}
	if target == "" {
		return nil, time.Time{}
	}
	if free := w.FreeAt(role, cmd.Epoch); now.Before(free) {
		return nil, free
	}
	cmd.Op, cmd.Node, cmd.Reason = OpAssign, target, reason
	return cmd, time.Time{}
}

// candidates lists the role's candidates in name order.
func candidates(cfg RoleConfig, members []string) []string {
	if len(cfg.Candidates) == 0 {
		return slices.Sorted(slices.Values(members))
	}
	return sortedKeys(cfg.Candidates)
}

// best returns the eligible candidate that should hold the role, "" if
// there is none: highest priority; among equals the current holder, then
// the previous one (so that ties never move the role), then any node but
// the Raft leader, then the first by name.
func best(cfg RoleConfig, cur Assignment, v View) string {
	rank := func(n string) int {
		switch n {
		case cur.Holder:
			return 0
		case cur.Previous:
			return 1
		case v.Leader:
			return 3
		}
		return 2
	}
	var top string
	var topPrio int
	for _, c := range candidates(cfg, v.Members) {
		if !v.eligible(cfg, c) {
			continue
		}
		p, _ := cfg.candidate(c, v.Members)
		if top == "" || p > topPrio || p == topPrio && rank(c) < rank(top) {
			top, topPrio = c, p
		}
	}
	return top
}
