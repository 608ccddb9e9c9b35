package store

import (
	"errors"
	"io"
	"testing"
	"time"

	"buoy/internal/failover"
	"buoy/internal/health"
)

func webRole() Role {
	return Role{
		Name:       "web",
		Candidates: map[string]int{"pi1": 100, "pi2": 50},
		TTL:        5 * time.Second,
		Checks:     []health.Spec{{Type: health.TypeTCP, Addr: "127.0.0.1:8080", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2}},
		Hooks:      RoleHooks{Promote: "/etc/buoy/web-promote", Demote: "/etc/buoy/web-demote", Timeout: 10 * time.Second},
	}
}

func assign(role, node string, epoch uint64) Command {
	return NewRoleChange(failover.Command{Op: failover.OpAssign, Role: role, Node: node, Epoch: epoch, Reason: failover.ReasonVacant})
}

func release(role string, epoch uint64) Command {
	return NewRoleChange(failover.Command{Op: failover.OpRelease, Role: role, Epoch: epoch, Reason: failover.ReasonMove})
}

func TestRoleCommands(t *testing.T) {
	tests := []struct {
		name string
		cmds []Command
		want []error // per command; nil = success
		// then the state of role web
		holder string
		epoch  uint64
	}{
		{"define and assign", []Command{NewRolePut(webRole()), assign("web", "pi1", 1)}, []error{nil, nil}, "pi1", 1},
		{"assign undefined role", []Command{assign("web", "pi1", 1)}, []error{ErrRoleUnknown}, "", 0},
		{"assign to a non-member", []Command{NewRolePut(webRole()), assign("web", "pi9", 1)}, []error{nil, ErrNoSuchMember}, "", 0},
		{"stale epoch", []Command{NewRolePut(webRole()), assign("web", "pi1", 1), assign("web", "pi1", 1)},
			[]error{nil, nil, failover.ErrStaleEpoch}, "pi1", 1},
		{"skipped epoch", []Command{NewRolePut(webRole()), assign("web", "pi1", 2)}, []error{nil, failover.ErrStaleEpoch}, "", 0},
		{"release then reassign", []Command{NewRolePut(webRole()), assign("web", "pi1", 1), release("web", 2), assign("web", "pi1", 3)},
			[]error{nil, nil, nil, nil}, "pi1", 3},
		{"delete keeps the epoch", []Command{NewRolePut(webRole()), assign("web", "pi1", 1), NewRoleDelete("web"), release("web", 2), NewRolePut(webRole())},
			[]error{nil, nil, nil, nil, nil}, "", 2},
		{"delete unknown", []Command{NewRoleDelete("web")}, []error{ErrRoleUnknown}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := bootstrapped(t)
			for i := range tt.cmds {
				tt.cmds[i].At = t0
			}
			res := applyAll(t, f, tt.cmds...)
			for i, r := range res {
				err, _ := r.(error)
				if tt.want[i] == nil && err != nil || tt.want[i] != nil && !errors.Is(err, tt.want[i]) {
					t.Errorf("command %d (%s) = %v, want %v", i, tt.cmds[i].Op, err, tt.want[i])
				}
			}
			a := f.View().Assignment("web")
			if a.Holder != tt.holder || a.Epoch != tt.epoch {
				t.Errorf("Assignment(web) = %+v, want holder %q epoch %d", a, tt.holder, tt.epoch)
			}
		})
	}
}

func TestRoleDecodeRefuses(t *testing.T) {
	bad := func(mut func(*Role)) Command {
		r := webRole()
		mut(&r)
		return Command{Op: OpRolePut, Role: &r}
	}
	tests := []struct {
		name string
		cmd  Command
	}{
		{"no role", Command{Op: OpRolePut}},
		{"bad name", bad(func(r *Role) { r.Name = "Web" })},
		{"implicit leader", bad(func(r *Role) { r.Name = "leader" })},
		{"reserved nodes", bad(func(r *Role) { r.Name = "nodes" })},
		{"negative priority", bad(func(r *Role) { r.Candidates = map[string]int{"pi1": -1} })},
		{"bad candidate", bad(func(r *Role) { r.Candidates = map[string]int{"pi_1": 1} })},
		{"relative hook", bad(func(r *Role) { r.Hooks.Demote = "web-demote" })},
		{"hook timeout", bad(func(r *Role) { r.Hooks.Timeout = -time.Second })},
		{"bad check", bad(func(r *Role) { r.Checks = []health.Spec{{Type: "ping"}} })},
		{"ttl", bad(func(r *Role) { r.TTL = -time.Second })},
		{"delete bad name", Command{Op: OpRoleDelete, Name: "a b"}},
		{"change without body", Command{Op: OpRoleChange}},
		{"change unknown op", Command{Op: OpRoleChange, RoleChange: &RoleChange{Op: "steal", Role: "web", Epoch: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cmd.V = CommandVersion
			b, err := tt.cmd.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeCommand(b); !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand(%s) = %v, want ErrBadCommand", b, err)
			}
		})
	}
}

func TestRoleViewsAreImmutable(t *testing.T) {
	f := bootstrapped(t)
	applyAll(t, f, NewRolePut(webRole()), assign("web", "pi1", 1))
	before := f.View()
	applyAll(t, f, release("web", 2), NewRoleDelete("web"))
	if a := before.Assignment("web"); a.Holder != "pi1" || a.Epoch != 1 {
		t.Errorf("old view's assignment changed: %+v", a)
	}
	if _, ok := before.Role("web"); !ok {
		t.Error("old view lost the role")
	}
	if _, ok := f.View().Role("web"); ok {
		t.Error("new view still has the deleted role")
	}
}

func TestRoleSnapshotRoundTrip(t *testing.T) {
	f := bootstrapped(t)
	for i, r := range applyAll(t, f, NewRolePut(webRole()), NewRolePut(Role{Name: "db", Preempt: true}), assign("web", "pi1", 1), release("web", 2)) {
		if r != nil {
			t.Fatalf("command %d: %v", i, r)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	got, want := g.View(), f.View()
	if len(got.RoleList()) != 2 {
		t.Fatalf("restored roles = %+v, want web and db", got.RoleList())
	}
	for _, r := range want.RoleList() {
		if g, _ := got.Role(r.Name); !g.Equal(r) {
			t.Errorf("restored role %s = %+v, want %+v", r.Name, g, r)
		}
	}
	if a, b := got.Assignment("web"), want.Assignment("web"); a != b || a.Epoch != 2 || a.Previous != "pi1" {
		t.Errorf("restored assignment = %+v, want %+v", a, b)
	}
	// The next epoch still applies after a restore.
	if r := applyAll(t, g, assign("web", "pi1", 3)); r[0] != nil {
		t.Errorf("assign after restore: %v", r[0])
	}
}

// FuzzDecodeRoleCommand feeds role commands to a state that has a member
// and a role, so that assignments get past the membership checks: no
// input may panic, and the epoch of a role never goes down.
func FuzzDecodeRoleCommand(f *testing.F) {
	for _, c := range []Command{
		NewRolePut(webRole()),
		NewRolePut(Role{Name: "db", Preempt: true, Candidates: map[string]int{"pi1": 3}}),
		NewRoleDelete("web"),
		assign("web", "pi1", 2),
		release("web", 2),
	} {
		c.At = t0
		b, _ := c.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		s := emptyState()
		s.Members["pi1"] = Member{Name: "pi1"}
		s.Roles["web"] = webRole()
		s.Assignments["web"] = failover.Assignment{Role: "web", Holder: "pi1", Epoch: 1}
		before := s.Assignments["web"].Epoch
		_ = s.apply(2, c)
		if after := s.Assignment("web").Epoch; after < before {
			t.Fatalf("epoch of web went from %d to %d", before, after)
		}
		if _, err := c.Encode(); err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
	})
}
