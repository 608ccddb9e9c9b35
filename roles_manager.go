package buoy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"buoy/internal/failover"
	"buoy/internal/health"
	"buoy/internal/hooks"
	"buoy/internal/store"
	"buoy/internal/wire"
)

// Files of the roles machinery, under <data-dir>/roles.
const (
	rolesDir    = "roles"
	sessionFile = "session"
	runsFile    = "runs.json"
	appliedFile = "applied.json"
)

const (
	// promoteHoldDown is how long a failed promote hook makes the role
	// count as failing its checks on this node, so that the leader gives
	// it to another candidate rather than straight back.
	promoteHoldDown = 30 * time.Second
	// releaseTimeout bounds sending one Release.
	releaseTimeout = time.Second
	// closeHookWait is how long Close waits for the demote hooks of the
	// roles this node held before it kills them.
	closeHookWait = 15 * time.Second
	// eventQueue bounds the role events waiting for OnRoleChange callbacks.
	eventQueue = 1024
	// votersEvery is how often the loop re-reads Raft's voters.
	votersEvery = 200 * time.Millisecond
	// transferEvery spaces out leadership transfers away from holders.
	transferEvery = 10 * time.Second
)

// roleManager runs this node's part in failover: its Witness and Holder,
// the health checks and hooks of every role, the pings that tell the
// leader it is alive and healthy, and on the leader the Assigner. The pure
// state (package failover) is used under mu; every effect (an RPC, a hook,
// a Raft proposal) is carried out by a goroutine the manager owns.
//
// Goroutines: loop and pinger and dispatch (in the node's WaitGroup) end
// with the node's context; the short-lived ones (RPCs, hook waiters,
// proposals, checks being stopped) are in wg and bounded by timeouts;
// close waits for them.
type roleManager struct {
	n        *Node
	self     string
	t        failover.Timing
	dir      string
	session  uint64
	aliveFor time.Duration // how recently the leader must have heard from a node
	hooks    *hooks.Runner
	audit    *hooks.AuditLog
	obs      *raft.Observer
	obsCh    chan raft.Observation
	kick     chan struct{}
	pingNow  chan struct{}
	healthCh chan health.Transition
	events   chan RoleEvent
	dropped  atomic.Uint64
	wg       sync.WaitGroup

	// mu guards the following fields.
	mu         sync.Mutex
	closing    bool
	witness    *failover.Witness
	holder     *failover.Holder
	holderNext time.Time
	seen       map[string]uint64 // epoch of the newest assignment given to holder
	rolesIndex uint64            // store.State.RolesIndex last synced
	synced     bool
	voters     []string
	votersAt   time.Time
	defs       map[string]store.Role // roles whose checks run here
	defAt      map[string]time.Time  // when each of defs first appeared here
	assignedAt map[string]time.Time  // when each role's newest epoch was applied here
	checks     map[string]*health.Runner
	checkErr   map[string]error // checks that could not start
	penalty    map[string]time.Time
	runs       map[string]runRecord
	busy       map[string]int // hooks queued or running, per role
	view       wire.RoleView  // the leader's view, from the last ping
	viewAt     time.Time
	lastLeader string
	// Leader only.
	assigner *failover.Assigner
	term     uint64
	office   time.Time
	heard    map[string]time.Time
	reports  map[string]report
	planNext time.Time
	lastPlan time.Time
	// holdUntil is when the newest role held back by unheardLocked is
	// planned anyway.
	holdUntil time.Time
	// lastTransfer is when this node last handed leadership away, or
	// accepted a planned move (which leadership must not leave).
	lastTransfer time.Time
}

// report is what the leader last heard from a node's ping.
type report struct {
	at      time.Time
	healthy []string
}

// newRoleManager prepares the roles machinery: the files under the data
// dir, the witness and holder of this run, the hook runner and audit log.
// Nothing runs until start.
func newRoleManager(n *Node) (*roleManager, error) {
	t, err := failover.Profile(n.cfg.FailoverProfile)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(n.cfg.DataDir, rolesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("roles dir: %w", err)
	}
	session, err := nextSession(dir)
	if err != nil {
		return nil, err
	}
	runs, err := loadRuns(dir)
	if err != nil {
		return nil, err
	}
	audit, err := hooks.OpenAudit(dir, hooks.AuditOptions{})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	r := &roleManager{
		n:          n,
		self:       n.cfg.Name,
		t:          t,
		dir:        dir,
		session:    session,
		aliveFor:   t.Lease,
		audit:      audit,
		hooks:      hooks.New(hooks.Options{Logger: n.log.With("component", "hooks"), Audit: audit}),
		obsCh:      make(chan raft.Observation, 16),
		kick:       make(chan struct{}, 1),
		pingNow:    make(chan struct{}, 1),
		healthCh:   make(chan health.Transition, 64),
		events:     make(chan RoleEvent, eventQueue),
		witness:    failover.NewWitness(n.cfg.Name, t, now),
		holder:     failover.NewHolder(n.cfg.Name, session, t),
		seen:       map[string]uint64{},
		defs:       map[string]store.Role{},
		defAt:      map[string]time.Time{},
		assignedAt: map[string]time.Time{},
		checks:     map[string]*health.Runner{},
		checkErr:   map[string]error{},
		penalty:    map[string]time.Time{},
		runs:       runs,
		busy:       map[string]int{},
		heard:      map[string]time.Time{},
		reports:    map[string]report{},
	}
	return r, nil
}

// start runs the manager: the loop, the pinger, the event dispatcher, and
// the writer of the configured roles. Registered RPC handlers must be in
// place (registerRoleRPC).
func (r *roleManager) start() {
	r.obs = raft.NewObserver(r.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.n.raft.Raft().RegisterObserver(r.obs)
	r.mu.Lock()
	r.rerunAllLocked(time.Now())
	r.mu.Unlock()
	r.n.wg.Go(r.loop)
	r.n.wg.Go(r.pinger)
	r.n.wg.Go(r.dispatch)
	r.n.wg.Go(r.putConfigured)
}

// poke wakes the loop.
func (r *roleManager) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// loop follows the replicated state, the holder's and the assigner's
// timers, health transitions and leader changes, until the node closes.
func (r *roleManager) loop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	forced := true
	for {
		s := r.n.fsm.View()
		now := time.Now()
		r.refreshVoters(now)
		closers := r.step(s, now, forced)
		r.mu.Lock()
		for _, c := range closers {
			if r.closing {
				c.Close() // close is waiting for wg: add nothing to it now
				continue
			}
			r.wg.Go(func() { c.Close() })
		}
		r.mu.Unlock()
		timer.Reset(r.wait(now))
		forced = true
		select {
		case <-s.Next():
			forced = false
		case <-timer.C:
		case <-r.kick:
		case <-r.obsCh:
		case tr := <-r.healthCh:
			r.onHealth(tr)
		case <-r.n.ctx.Done():
			return
		}
	}
}

// wait is how long the loop may sleep: until the holder's or the
// assigner's next deadline, a second at most, a millisecond at least (a
// deadline that stayed in the past must not make the loop spin).
func (r *roleManager) wait(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := now.Add(time.Second)
	for _, t := range []time.Time{r.holderNext, r.planNext} {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	return max(next.Sub(now), time.Millisecond)
}

// refreshVoters re-reads Raft's voters, at most every votersEvery. It
// takes no lock while it waits for Raft.
func (r *roleManager) refreshVoters(now time.Time) {
	r.mu.Lock()
	due := now.Sub(r.votersAt) >= votersEvery
	r.mu.Unlock()
	if !due {
		return
	}
	servers, err := r.n.raft.Servers()
	if err != nil {
		return
	}
	var voters []string
	for _, sv := range servers {
		if sv.Suffrage == raft.Voter {
			voters = append(voters, string(sv.ID))
		}
	}
	slices.Sort(voters)
	r.mu.Lock()
	r.voters, r.votersAt = voters, now
	r.mu.Unlock()
}

// step brings everything in line with state s at now; forced makes the
// leader plan even if only the key-value store changed. It returns the
// health runners to stop, which the caller closes without the lock (a
// probe in flight may take its timeout to end).
func (r *roleManager) step(s *store.State, now time.Time, forced bool) []*health.Runner {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return nil
	}
	var closers []*health.Runner
	changed := !r.synced || s.RolesIndex != r.rolesIndex
	if changed {
		closers = r.syncDefsLocked(s)
		for _, name := range slices.Sorted(maps.Keys(s.Assignments)) {
			a := s.Assignments[name]
			if a.Epoch > r.seen[name] {
				r.seen[name] = a.Epoch
				r.assignedAt[name] = now
				r.carryOutLocked(r.holder.Assign(a, now), now)
			}
		}
		r.rolesIndex, r.synced = s.RolesIndex, true
	}
	r.carryOutLocked(r.holder.Tick(now), now)
	r.rerunAllLocked(now)
	r.leaderEventLocked(now)
	// A leader under a storm of key-value writes wakes for each apply;
	// it plans at most every Retry unless something it plans by changed.
	if forced || changed || !r.planNext.IsZero() && !now.Before(r.planNext) || now.Sub(r.lastPlan) >= r.t.Retry {
		r.lastPlan = now
		r.leadLocked(s, now)
	}
	return closers
}

// syncDefsLocked starts, restarts and stops health runners so that they
// run the checks of every role defined in s. A role whose checks did not
// change keeps its runner (and so its status).
func (r *roleManager) syncDefsLocked(s *store.State) []*health.Runner {
	var closers []*health.Runner
	for name, old := range r.defs {
		def, ok := s.Role(name)
		if ok && slices.EqualFunc(def.Checks, old.Checks, sameCheck) {
			if def.Hooks != old.Hooks {
				r.checkHookFiles(def)
			}
			r.defs[name] = def
			continue
		}
		if c := r.checks[name]; c != nil {
			closers = append(closers, c)
		}
		delete(r.checks, name)
		delete(r.checkErr, name)
		delete(r.defs, name)
		delete(r.defAt, name)
	}
	for _, def := range s.RoleList() {
		if _, ok := r.defs[def.Name]; ok {
			continue
		}
		// Tell the leader at once which new roles pass here.
		r.pokePing()
		r.defs[def.Name] = def
		r.defAt[def.Name] = time.Now()
		r.checkHookFiles(def)
		if len(def.Checks) == 0 {
			continue
		}
		run, err := health.Start(def.Checks, health.Options{Name: def.Name, Notify: r.healthCh})
		if err != nil {
			r.checkErr[def.Name] = err
			r.n.log.Error("role checks cannot run; this node counts as failing them", "role", def.Name, "err", err)
			continue
		}
		r.checks[def.Name] = run
	}
	return closers
}

// checkHookFiles warns about hooks that cannot run on this node, when a
// role is defined or its hooks change, rather than only when the role
// moves. (A promote hook that fails to run counts as a failed check.)
func (r *roleManager) checkHookFiles(def store.Role) {
	for _, h := range []struct{ event, path string }{
		{"promote", def.Hooks.Promote}, {"demote", def.Hooks.Demote}, {"change", def.Hooks.Change},
	} {
		if h.path == "" {
			continue
		}
		st, err := os.Stat(h.path)
		switch {
		case err != nil:
			r.n.log.Warn("role hook cannot run on this node", "role", def.Name, "event", h.event, "path", h.path, "err", err)
		case !st.Mode().IsRegular():
			r.n.log.Warn("role hook is not a regular file", "role", def.Name, "event", h.event, "path", h.path)
		case st.Mode().Perm()&0o111 == 0:
			r.n.log.Warn("role hook is not executable (chmod +x it)", "role", def.Name, "event", h.event, "path", h.path)
		}
	}
}

func sameCheck(a, b health.Spec) bool {
	x, err1 := a.MarshalJSON()
	y, err2 := b.MarshalJSON()
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// onHealth logs a check's transition and tells the leader at once.
func (r *roleManager) onHealth(tr health.Transition) {
	if tr.Healthy {
		r.n.log.Info("role check passing", "role", tr.Runner, "check", tr.Name, "all_passing", tr.AllHealthy)
	} else {
		r.n.log.Warn("role check failing", "role", tr.Runner, "check", tr.Name, "err", tr.Err)
	}
	r.pokePing()
	r.poke()
}

func (r *roleManager) pokePing() {
	select {
	case r.pingNow <- struct{}{}:
	default:
	}
}

// localHealthLocked says whether this node passes role's checks now, and
// if not, why.
func (r *roleManager) localHealthLocked(role string, now time.Time) (bool, string) {
	if until, ok := r.penalty[role]; ok && now.Before(until) {
		return false, fmt.Sprintf("the promote hook failed; counts as failing until %s", until.Format(time.TimeOnly))
	}
	if err := r.n.roleShared.external(role); err != nil {
		return false, "reported by the program: " + err.Error()
	}
	if err := r.checkErr[role]; err != nil {
		return false, err.Error()
	}
	if c := r.checks[role]; c != nil {
		st := c.Status()
		if !st.Healthy {
			for _, ch := range st.Checks {
				if ch.Healthy {
					continue
				}
				if ch.LastErr != nil {
					return false, fmt.Sprintf("check %s: %v", ch.Name, ch.LastErr)
				}
				return false, fmt.Sprintf("check %s: not passing yet (%d of its rise passes)", ch.Name, ch.Passes)
			}
			return false, "checks failing"
		}
	}
	return true, "passing"
}

// healthyLocked lists the defined roles whose checks pass here.
func (r *roleManager) healthyLocked(now time.Time) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(r.defs)) {
		if ok, _ := r.localHealthLocked(name, now); ok {
			out = append(out, name)
		}
	}
	return out
}

// roleShared is the part of the roles machinery that exists before Start:
// OnRoleChange callbacks and SetRoleHealth reports. Its zero value is
// ready to use.
type roleShared struct {
	// mu guards the following fields. It is never held while taking
	// roleManager.mu.
	mu        sync.Mutex
	callbacks []func(RoleEvent)
	reported  map[string]error
}

// setExternal records SetRoleHealth and reports whether the role's health
// changed.
func (rs *roleShared) setExternal(role string, err error) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.reported == nil {
		rs.reported = map[string]error{}
	}
	old, had := rs.reported[role]
	rs.reported[role] = err
	return !had || (old == nil) != (err == nil)
}

// external returns the program's last report for role (nil: passing or
// never reported).
func (rs *roleShared) external(role string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.reported[role]
}

func (rs *roleShared) onChange(f func(RoleEvent)) {
	rs.mu.Lock()
	rs.callbacks = append(rs.callbacks, f)
	rs.mu.Unlock()
}

func (rs *roleShared) listeners() []func(RoleEvent) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.callbacks)
}

// leaderEventLocked emits a change event of the implicit role "leader"
// when the Raft leader changes.
func (r *roleManager) leaderEventLocked(now time.Time) {
	leader := r.n.raft.Leader()
	if leader == r.lastLeader || leader == "" {
		return
	}
	prev := r.lastLeader
	r.lastLeader = leader
	term := r.n.raft.Raft().CurrentTerm()
	r.emitLocked(RoleEvent{Kind: "change", Role: LeaderRole, Epoch: term, Node: r.self, Holder: leader, Previous: prev, Cause: "leader", At: now})
	r.auditLocked(hooks.Entry{Kind: hooks.KindTransition, Role: LeaderRole, Event: hooks.Change, Epoch: term, Node: r.self,
		Holder: leader, HolderAddr: r.addrOf(leader), Previous: prev, Reason: "leader"})
}

// leadLocked runs the leader's side: on gaining leadership a fresh
// Assigner, then a plan at every change and at Plan.Next.
func (r *roleManager) leadLocked(s *store.State, now time.Time) {
	if !r.n.raft.IsLeader() {
		r.assigner, r.planNext = nil, time.Time{}
		return
	}
	term := r.n.raft.Raft().CurrentTerm()
	if r.assigner == nil || term != r.term {
		r.assigner, r.term, r.office = failover.NewAssigner(r.t), term, now
		r.n.log.Info("assigning roles as the new leader", "term", term)
	}
	if !r.readyLocked(s, now) {
		r.planNext = r.office.Add(r.aliveFor)
		return
	}
	r.holdUntil = time.Time{}
	v := r.viewLocked(s, now)
	p := r.assigner.Plan(v, r.witness, now)
	r.planNext = earliestTime(p.Next, r.holdUntil)
	// Wake when a node's last word gets too old: that is when it stops
	// counting as alive.
	for node, at := range r.heard {
		if until := at.Add(r.aliveFor); v.Alive[node] && node != r.self && until.After(now) {
			r.planNext = earliestTime(r.planNext, until)
		}
	}
	for _, at := range r.assignedAt {
		if until := at.Add(2 * r.aliveFor); until.After(now) {
			r.planNext = earliestTime(r.planNext, until)
		}
	}
	for _, c := range p.Commands {
		r.proposeLocked(c)
	}
	r.shedLeadershipLocked(s, v, now)
}

// shedLeadershipLocked hands Raft leadership to a voter that holds no
// role when this leader holds one: a crash of a node that both leads and
// holds costs an election on top of the lease (about 1-2 s more with
// hashicorp/raft's default timeouts). Moving leadership runs no hook and
// moves no role. It is tried at most every transferEvery, and only when
// such a voter is alive and has reported.
func (r *roleManager) shedLeadershipLocked(s *store.State, v failover.View, now time.Time) {
	if now.Sub(r.lastTransfer) < transferEvery || now.Sub(r.office) < r.aliveFor {
		return
	}
	holds := map[string]bool{}
	for _, def := range s.RoleList() {
		if h := s.Assignment(def.Name).Holder; h != "" {
			holds[h] = true
		}
	}
	if !holds[r.self] {
		return
	}
	for _, voter := range r.voters {
		if voter == r.self || holds[voter] || !v.Alive[voter] {
			continue
		}
		r.lastTransfer = now
		r.n.log.Info("handing Raft leadership to a node that holds no role", "to", voter)
		r.wg.Go(func() {
			f := r.n.raft.Raft().LeadershipTransferToServer(raft.ServerID(voter), raft.ServerAddress(voter))
			if err := f.Error(); err != nil {
				// A voter still catching up refuses; try again in a second
				// rather than after the full spacing.
				r.n.log.Debug("leadership transfer", "to", voter, "err", err)
				r.mu.Lock()
				r.lastTransfer = time.Now().Add(time.Second - transferEvery)
				r.mu.Unlock()
			}
		})
		return
	}
}

// readyLocked reports whether a new leader has heard from every linked
// member, or waited long enough for them: before that it does not know
// who is healthy, and would move roles away from healthy holders.
func (r *roleManager) readyLocked(s *store.State, now time.Time) bool {
	if !now.Before(r.office.Add(r.aliveFor)) {
		return true
	}
	for _, m := range s.Current() {
		if m.Name == r.self || !r.n.alive(m.Name) {
			continue
		}
		if rep, ok := r.reports[m.Name]; !ok || rep.at.Before(r.office) {
			return false
		}
	}
	return true
}

// viewLocked is the leader's view of the cluster for the Assigner.
func (r *roleManager) viewLocked(s *store.State, now time.Time) failover.View {
	v := failover.View{
		Members:     memberNames(s),
		Alive:       map[string]bool{r.self: true},
		Healthy:     map[string]map[string]bool{},
		Assignments: s.Assignments,
		Leader:      r.self,
	}
	for _, name := range v.Members {
		if name != r.self && r.n.alive(name) && now.Sub(r.heard[name]) < r.aliveFor {
			v.Alive[name] = true
		}
	}
	// A node just assigned a role is alive while its link is: its first
	// renewal and ping may lag the commit on a busy machine, and dropping
	// it for that would move the role twice.
	for role, at := range r.assignedAt {
		if h := s.Assignment(role).Holder; h != "" && h != r.self && now.Sub(at) < 2*r.aliveFor && r.n.alive(h) {
			v.Alive[h] = true
		}
	}
	for _, def := range s.RoleList() {
		if r.unheardLocked(s, def.Name, v.Alive, now) {
			continue
		}
		v.Roles = append(v.Roles, def.Config())
		v.Healthy[def.Name] = map[string]bool{}
	}
	for _, name := range r.healthyLocked(now) {
		if h := v.Healthy[name]; h != nil {
			h[r.self] = true
		}
	}
	for node, rep := range r.reports {
		if node == r.self {
			continue
		}
		for _, role := range rep.healthy {
			if h := v.Healthy[role]; h != nil {
				h[node] = true
			}
		}
	}
	return v
}

// unheardLocked reports whether role is new and vacant and some alive
// node has not pinged since the leader learned of it: the leader then
// leaves it out of its plans for up to aliveFor, so that it does not give
// a new role to the first node that reported (itself, usually) and so to
// the leader, whose crash would cost an election on top of the lease.
func (r *roleManager) unheardLocked(s *store.State, role string, alive map[string]bool, now time.Time) bool {
	at, ok := r.defAt[role]
	if !ok || s.Assignment(role).Holder != "" || !now.Before(at.Add(r.aliveFor)) {
		return false
	}
	for node := range alive {
		if node != r.self && !r.reports[node].at.After(at) {
			r.holdUntil = earliestTime(r.holdUntil, at.Add(r.aliveFor))
			return true
		}
	}
	return false
}

// leaderViewLocked is what the leader tells pinging nodes.
func (r *roleManager) leaderViewLocked(s *store.State, now time.Time) wire.RoleView {
	v := r.viewLocked(s, now)
	out := wire.RoleView{Leader: r.self, Healthy: map[string][]string{}}
	for _, n := range slices.Sorted(maps.Keys(v.Alive)) {
		if v.Alive[n] {
			out.Alive = append(out.Alive, n)
		}
	}
	for role, nodes := range v.Healthy {
		out.Healthy[role] = slices.Sorted(maps.Keys(nodes))
	}
	return out
}

// proposeLocked commits c through Raft from a goroutine. Only the leader
// proposes, and only locally: a command the Assigner made as leader is not
// forwarded to whoever leads next. A command that lost a race with another
// is refused by the state machine (its epoch is taken) and harmless.
func (r *roleManager) proposeLocked(c failover.Command) {
	r.n.log.Info("role change", "cmd", c.String())
	r.wg.Go(func() {
		ctx, cancel := context.WithTimeout(r.n.ctx, r.t.Lease+r.t.Margin+time.Second)
		defer cancel()
		cmd := store.NewRoleChange(c)
		cmd.At = r.n.raft.Now()
		b, err := cmd.Encode()
		if err == nil {
			var out any
			if out, err = r.n.raft.ApplyRaw(ctx, b); err == nil {
				err, _ = out.(error)
			}
		}
		if err != nil && r.n.ctx.Err() == nil {
			r.n.log.Warn("role change not committed", "cmd", c.String(), "err", err)
		}
		r.poke()
	})
}

// move runs a planned move on the leader.
func (r *roleManager) move(ctx context.Context, m wire.RoleMove, now time.Time) error {
	if err := r.awaitTarget(ctx, m.Node, now); err != nil {
		return err
	}
	now = time.Now()
	if !r.n.raft.IsLeader() {
		return store.ErrNotLeader
	}
	s := r.n.fsm.View()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.assigner == nil {
		r.assigner, r.term, r.office = failover.NewAssigner(r.t), r.n.raft.Raft().CurrentTerm(), now
	}
	err := r.assigner.Move(m.Role, m.Node, r.viewLocked(s, now), now)
	if err != nil {
		return fmt.Errorf("%w: %w: %w", ErrMoveRefused, store.ErrInvalidInput, err)
	}
	r.n.log.Info("planned move", "role", m.Role, "to", m.Node)
	// Keep Raft leadership until the move is done: a transfer in between
	// would make its commands fail and leave the move to the caller's
	// retry with the next leader.
	r.lastTransfer = now
	r.poke()
	return nil
}

// awaitTarget gives a leader that took office less than aliveFor ago
// time to hear from node, the target of a move, before the Assigner judges
// whether it is alive and healthy: a new leader has heard nobody yet, and
// a move asked right after a change of leader (a leader holding a role
// hands leadership on, so this is common) would be refused with "not
// alive" or "unhealthy". It waits until node's first ping since the leader
// took office (a ping carries its health), until aliveFor after it, or
// until ctx ends.
func (r *roleManager) awaitTarget(ctx context.Context, node string, now time.Time) error {
	for {
		r.mu.Lock()
		if r.assigner == nil && r.n.raft.IsLeader() {
			r.assigner, r.term, r.office = failover.NewAssigner(r.t), r.n.raft.Raft().CurrentTerm(), now
		}
		until := r.office.Add(r.aliveFor)
		rep, reported := r.reports[node]
		waiting := node != r.self && r.n.raft.IsLeader() && now.Before(until) && (!reported || rep.at.Before(r.office))
		r.mu.Unlock()
		if !waiting {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.n.ctx.Done():
			return ErrClosed
		case <-time.After(min(20*time.Millisecond, until.Sub(now))):
		}
		now = time.Now()
	}
}

// holds answers HoldsRole.
func (r *roleManager) holds(role string, now time.Time) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holder.Holds(role, now)
}

// emitLocked queues a role event for the callbacks; it never blocks.
func (r *roleManager) emitLocked(ev RoleEvent) {
	if len(r.n.roleShared.listeners()) == 0 {
		return
	}
	select {
	case r.events <- ev:
	default:
		if r.dropped.Add(1) == 1 {
			r.n.log.Warn("OnRoleChange callbacks are too slow; dropping role events")
		}
	}
}

// dispatch calls the callbacks for each event, in order, until the node
// closes.
func (r *roleManager) dispatch() {
	for {
		select {
		case ev := <-r.events:
			for _, f := range r.n.roleShared.listeners() {
				f(ev)
			}
		case <-r.n.ctx.Done():
			return
		}
	}
}

// addrOf is the address a node's DNS name answers, "" if unknown.
func (r *roleManager) addrOf(node string) string {
	if node == "" {
		return ""
	}
	if ip := r.n.nodeIP(node); ip.IsValid() {
		return ip.String()
	}
	return ""
}

// close ends the roles machinery: a role this node holds is given up (its
// demote hook runs, up to closeHookWait, and the release goes out), then
// checks, hooks and the audit log stop. The node's context is already
// cancelled, so the loop and pinger are ending.
func (r *roleManager) close() error {
	now := time.Now()
	r.mu.Lock()
	r.closing = true
	for _, role := range slices.Sorted(maps.Keys(r.seen)) {
		epoch, ok := r.holder.Holds(role, now)
		if !ok {
			continue
		}
		ev := failover.Event{Kind: failover.EventDemote, Role: role, Epoch: epoch, Node: r.self, Previous: r.self, Cause: "shutdown"}
		rel := failover.Release{Role: role, Epoch: epoch, Node: r.self, Session: r.session}
		r.runEventLocked(ev, []failover.Release{rel}, now)
	}
	checks := slices.Collect(maps.Values(r.checks))
	r.checks = map[string]*health.Runner{}
	r.mu.Unlock()
	if r.obs != nil {
		r.n.raft.Raft().DeregisterObserver(r.obs)
	}
	var errs []error
	for _, c := range checks {
		errs = append(errs, c.Close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeHookWait)
	if err := r.hooks.Shutdown(ctx); err != nil {
		r.n.log.Warn("hooks still running at shutdown were killed", "err", err)
	}
	cancel()
	r.wg.Wait()
	errs = append(errs, r.audit.Close())
	return errors.Join(errs...)
}

func earliestTime(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}
