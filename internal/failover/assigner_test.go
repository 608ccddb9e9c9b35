package failover

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	tm := DefaultTiming()
	promise := tm.Lease + tm.Margin // 1.3s
	web := RoleConfig{Name: "web"}
	prio := RoleConfig{Name: "web", Candidates: map[string]int{"a": 100, "b": 50, "c": 50}}
	prioPre := prio
	prioPre.Preempt = true
	held := func(h string, e uint64) Assignment { return Assignment{Role: "web", Holder: h, Epoch: e} }
	released := func(prev string, e uint64) Assignment { return Assignment{Role: "web", Epoch: e, Previous: prev} }
	assign := func(n string, e uint64, r Reason) Command {
		return Command{Op: OpAssign, Role: "web", Node: n, Epoch: e, Reason: r}
	}
	release := func(e uint64, r Reason) Command { return Command{Op: OpRelease, Role: "web", Epoch: e, Reason: r} }

	tests := []struct {
		name     string
		view     View
		lastAck  time.Duration // when the leader's witness last acknowledged the holder
		now      time.Duration
		want     []Command
		wantNext time.Duration // -1: none
	}{
		{"first assignment by name among equals", testView([]RoleConfig{web}), 0, 0,
			[]Command{assign("a", 1, ReasonVacant)}, promise},
		{"first assignment by priority", testView([]RoleConfig{prio}).sick("web", "a"), 0, 0,
			[]Command{assign("b", 1, ReasonVacant)}, promise},
		{"no eligible candidate", testView([]RoleConfig{web}).sick("web", "a", "b", "c"), 0, 0, nil, -1},
		{"healthy holder keeps the role", testView([]RoleConfig{web}, held("b", 3)), 0, 0, nil, -1},
		{"preempt off: higher priority does not take back", testView([]RoleConfig{prio}, held("b", 3)), 0, 0, nil, -1},
		{"preempt on: higher priority is back", testView([]RoleConfig{prioPre}, held("b", 3)), 0, 0,
			[]Command{release(4, ReasonPreempt)}, promise},
		{"preempt on: equal priority does not preempt", testView([]RoleConfig{prioPre}, held("b", 3)).dead("a"), 0, 0, nil, -1},
		{"dead holder: wait out the lease", testView([]RoleConfig{web}, held("b", 3)).dead("b"), 0, 1000 * ms,
			nil, promise},
		{"dead holder: one instant early", testView([]RoleConfig{web}, held("b", 3)).dead("b"), 0, promise - 1,
			nil, promise},
		{"dead holder: lease surely over", testView([]RoleConfig{web}, held("b", 3)).dead("b"), 0, promise,
			[]Command{assign("a", 4, ReasonHolderLost)}, 2 * promise},
		{"dead holder measured from the last acknowledgement", testView([]RoleConfig{web}, held("b", 3)).dead("b"), 500 * ms, promise,
			nil, 500*ms + promise},
		{"dead holder, nobody else: release", testView([]RoleConfig{web}, held("b", 3)).dead("b").sick("web", "a", "c"), 0, promise,
			[]Command{release(4, ReasonHolderLost)}, 2 * promise},
		{"dead holder, by priority", testView([]RoleConfig{prio}, held("a", 3)).dead("a"), 0, 2 * promise,
			[]Command{assign("b", 4, ReasonHolderLost)}, 3 * promise},
		{"unhealthy holder released at once", testView([]RoleConfig{web}, held("b", 3)).sick("web", "b"), 0, 0,
			[]Command{release(4, ReasonUnhealthy)}, promise},
		{"holder no longer a candidate", testView([]RoleConfig{{Name: "web", Candidates: map[string]int{"a": 1}}}, held("b", 3)), 0, 0,
			[]Command{release(4, ReasonNotCandidate)}, promise},
		{"role removed", testView(nil, held("b", 3)), 0, 0,
			[]Command{release(4, ReasonRemoved)}, promise},
		{"removed and vacant: nothing", testView(nil, released("b", 4)), 0, 0, nil, -1},
		{"vacant after release: wait for the old lease", testView([]RoleConfig{web}, released("b", 4)), 0, 200 * ms,
			nil, promise},
		{"vacant after release: ties go to the previous holder", testView([]RoleConfig{web}, released("b", 4)), 0, promise,
			[]Command{assign("b", 5, ReasonVacant)}, 2 * promise},
		{"vacant: unknown candidates are never alive", testView([]RoleConfig{{Name: "web", Candidates: map[string]int{"zz": 9, "c": 1}}}), 0, 0,
			[]Command{assign("c", 1, ReasonVacant)}, promise},
		{"dead holder does not count as alive candidate for ties", testView([]RoleConfig{web}, held("a", 3)).dead("a"), 0, promise,
			[]Command{assign("b", 4, ReasonHolderLost)}, 2 * promise},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := tt.view.Assignments["web"]
			if cur.Holder == "" && cur.Previous != "" {
				cur.Holder = cur.Previous // the lease to wait for is the previous holder's
				cur.Epoch--
			}
			w := ackedAt(tm, cur, at(tt.lastAck))
			a := NewAssigner(tm)
			p := a.Plan(tt.view, w, at(tt.now))
			if !slices.Equal(p.Commands, tt.want) {
				t.Errorf("Plan() commands = %v, want %v", p.Commands, tt.want)
			}
			if want := at(tt.wantNext); tt.wantNext < 0 && !p.Next.IsZero() || tt.wantNext >= 0 && !p.Next.Equal(want) {
				t.Errorf("Plan() next = %v, want %v", p.Next.Sub(t0), tt.wantNext)
			}
		})
	}
}

// TestPlanRestartedLeader: a leader whose process just started knows
// nothing of acknowledgements before it, so it waits a whole promise from
// its start, except for a role never assigned, which has no lease to wait for.
func TestPlanRestartedLeader(t *testing.T) {
	tm := DefaultTiming()
	promise := tm.Lease + tm.Margin
	v := testView([]RoleConfig{{Name: "web"}, {Name: "db"}}, Assignment{Role: "web", Holder: "b", Epoch: 3}).dead("b")
	w := NewWitness("a", tm, at(0))
	a := NewAssigner(tm)
	p := a.Plan(v, w, at(10*ms))
	want := []Command{{Op: OpAssign, Role: "db", Node: "a", Epoch: 1, Reason: ReasonVacant}}
	if !slices.Equal(p.Commands, want) || !p.Next.Equal(at(promise)) {
		t.Fatalf("Plan() = %v next %v, want %v next %v", p.Commands, p.Next.Sub(t0), want, promise)
	}
	p = a.Plan(v, w, at(promise))
	want = []Command{{Op: OpAssign, Role: "web", Node: "a", Epoch: 4, Reason: ReasonHolderLost}}
	if !slices.Equal(p.Commands, want) {
		t.Fatalf("Plan() at the end of the promise = %v, want %v", p.Commands, want)
	}
}

// TestPlanDoesNotRepeat: a proposal is not proposed again until it shows up
// committed or Lease+Margin passed; then the next step follows.
func TestPlanDoesNotRepeat(t *testing.T) {
	tm := DefaultTiming()
	promise := tm.Lease + tm.Margin
	v := testView([]RoleConfig{{Name: "web"}})
	w := NewWitness("a", tm, at(-time.Hour))
	a := NewAssigner(tm)
	first := a.Plan(v, w, at(0))
	if len(first.Commands) != 1 {
		t.Fatalf("Plan() = %v, want one command", first.Commands)
	}
	if p := a.Plan(v, w, at(promise-1)); len(p.Commands) != 0 || !p.Next.Equal(at(promise)) {
		t.Errorf("Plan() again before commit = %v next %v, want nothing until %v", p.Commands, p.Next.Sub(t0), promise)
	}
	if p := a.Plan(v, w, at(promise)); !slices.Equal(p.Commands, first.Commands) {
		t.Errorf("Plan() after Lease+Margin = %v, want the proposal again %v", p.Commands, first.Commands)
	}
	// Committed: the state moved, the pending proposal is forgotten.
	v.Assignments["web"] = Assignment{Role: "web", Holder: "a", Epoch: 1}
	if p := a.Plan(v, w, at(promise+ms)); len(p.Commands) != 0 {
		t.Errorf("Plan() once committed = %v, want nothing", p.Commands)
	}
}

func TestMove(t *testing.T) {
	tm := DefaultTiming()
	promise := tm.Lease + tm.Margin
	prio := RoleConfig{Name: "web", Candidates: map[string]int{"a": 100, "b": 50, "c": 50}}
	held := Assignment{Role: "web", Holder: "a", Epoch: 3}
	v := testView([]RoleConfig{prio}, held)
	w := ackedAt(tm, held, at(0))
	a := NewAssigner(tm)

	if err := a.Move("web", "b", v, at(0)); err != nil {
		t.Fatalf("Move(web, b) = %v, want nil", err)
	}
	p := a.Plan(v, w, at(0))
	want := []Command{{Op: OpRelease, Role: "web", Epoch: 4, Reason: ReasonMove}}
	if !slices.Equal(p.Commands, want) {
		t.Fatalf("Plan() after Move = %v, want %v", p.Commands, want)
	}
	// Committed; the holder releases its lease (its Release reached the
	// leader's witness), so the target is assigned at once, though a has a
	// higher priority.
	v.Assignments["web"] = Assignment{Role: "web", Epoch: 4, Previous: "a"}
	if p := a.Plan(v, w, at(100*ms)); len(p.Commands) != 0 || !p.Next.Equal(at(promise)) {
		t.Fatalf("Plan() before the holder let go = %v next %v, want nothing until %v", p.Commands, p.Next.Sub(t0), promise)
	}
	w.Release(Release{Role: "web", Epoch: 3, Node: "a", Session: 1})
	p = a.Plan(v, w, at(150*ms))
	want = []Command{{Op: OpAssign, Role: "web", Node: "b", Epoch: 5, Reason: ReasonMove}}
	if !slices.Equal(p.Commands, want) {
		t.Fatalf("Plan() once released = %v, want %v", p.Commands, want)
	}
	// Done, and preempt is off: b keeps the role.
	v.Assignments["web"] = Assignment{Role: "web", Holder: "b", Epoch: 5, Previous: "a"}
	if p := a.Plan(v, w, at(200*ms)); len(p.Commands) != 0 {
		t.Fatalf("Plan() after the move = %v, want nothing", p.Commands)
	}
}

func TestMoveExpires(t *testing.T) {
	tm := DefaultTiming()
	v := testView([]RoleConfig{{Name: "web"}}, Assignment{Role: "web", Epoch: 4, Previous: "a"})
	w := NewWitness("a", tm, at(-time.Hour))
	a := NewAssigner(tm)
	if err := a.Move("web", "c", v, at(0)); err != nil {
		t.Fatal(err)
	}
	// c stops being eligible: the move is dropped, the role goes by the rules.
	if p := a.Plan(v.sick("web", "c"), w, at(ms)); len(p.Commands) != 1 || p.Commands[0].Node != "a" {
		t.Fatalf("Plan() with the target unhealthy = %v, want assign a", p.Commands)
	}
	a = NewAssigner(tm)
	if err := a.Move("web", "c", v, at(0)); err != nil {
		t.Fatal(err)
	}
	if p := a.Plan(v, w, at(tm.moveTimeout())); len(p.Commands) != 1 || p.Commands[0].Node != "a" || p.Commands[0].Reason != ReasonVacant {
		t.Fatalf("Plan() after the move timed out = %v, want assign a (vacant)", p.Commands)
	}
}

func TestMoveRefused(t *testing.T) {
	tm := DefaultTiming()
	pre := RoleConfig{Name: "web", Preempt: true, Candidates: map[string]int{"a": 100, "b": 50}}
	v := testView([]RoleConfig{{Name: "web", Candidates: map[string]int{"a": 1, "b": 1}}, {Name: "db"}, {Name: "pre", Preempt: true, Candidates: pre.Candidates}},
		Assignment{Role: "db", Holder: "c", Epoch: 2})
	v.Healthy["pre"] = v.Healthy["web"]
	tests := []struct {
		role, node string
		view       View
		want       error
	}{
		{"nope", "a", v, ErrUnknownRole},
		{"web", "c", v, ErrNotCandidate},
		{"web", "b", v.dead("b"), ErrNotAlive},
		{"web", "b", v.sick("web", "b"), ErrUnhealthy},
		{"pre", "b", v, ErrPreempted},
		{"pre", "b", v.sick("pre", "a"), nil},
		{"db", "c", v, nil}, // already there
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s to %s", tt.role, tt.node), func(t *testing.T) {
			a := NewAssigner(tm)
			err := a.Move(tt.role, tt.node, tt.view, at(0))
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Move(%s, %s) = %v, want %v", tt.role, tt.node, err, tt.want)
			}
		})
	}
}

// TestPlanIsDeterministic: the same inputs give the same commands in role
// order, however maps iterate.
func TestPlanIsDeterministic(t *testing.T) {
	tm := DefaultTiming()
	var roles []RoleConfig
	for _, n := range []string{"e", "b", "d", "a", "c"} {
		roles = append(roles, RoleConfig{Name: n})
	}
	var first []Command
	for i := range 20 {
		p := NewAssigner(tm).Plan(testView(roles), NewWitness("a", tm, at(-time.Hour)), at(0))
		if i == 0 {
			first = p.Commands
			if !slices.IsSortedFunc(first, func(x, y Command) int { return strings.Compare(x.Role, y.Role) }) || len(first) != 5 {
				t.Fatalf("Plan() = %v, want 5 commands in role order", first)
			}
		} else if !slices.Equal(p.Commands, first) {
			t.Fatalf("Plan() = %v, then %v", first, p.Commands)
		}
	}
}

// TestPlanAvoidsLeader: among equal candidates a vacant role goes to a
// node other than the Raft leader, unless stability says otherwise.
func TestPlanAvoidsLeader(t *testing.T) {
	tm := DefaultTiming()
	w := NewWitness("a", tm, at(-time.Hour))
	tests := []struct {
		name   string
		leader string
		cur    Assignment
		roles  []RoleConfig
		want   string
	}{
		{"leader first by name", "a", Assignment{}, []RoleConfig{{Name: "web"}}, "b"},
		{"leader last by name", "c", Assignment{}, []RoleConfig{{Name: "web"}}, "a"},
		{"no leader given", "", Assignment{}, []RoleConfig{{Name: "web"}}, "a"},
		{"previous holder wins over it", "a", Assignment{Epoch: 2, Previous: "a"}, []RoleConfig{{Name: "web"}}, "a"},
		{"priority wins over it", "a", Assignment{}, []RoleConfig{{Name: "web", Candidates: map[string]int{"a": 2, "b": 1}}}, "a"},
		{"only the leader", "a", Assignment{}, []RoleConfig{{Name: "web", Candidates: map[string]int{"a": 0}}}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := tt.cur
			cur.Role = "web"
			v := testView(tt.roles, cur)
			v.Leader = tt.leader
			p := NewAssigner(tm).Plan(v, w, at(0))
			if len(p.Commands) != 1 || p.Commands[0].Node != tt.want {
				t.Fatalf("Plan() with leader %q = %v, want assign %s", tt.leader, p.Commands, tt.want)
			}
		})
	}
}
