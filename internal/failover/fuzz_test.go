package failover

import (
	"fmt"
	"testing"
	"time"
)

// byteSource hands out the fuzzer's bytes as small numbers, zeros once
// they run out.
type byteSource struct{ b []byte }

func (s *byteSource) n(max int) int {
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0]) % max
	s.b = s.b[1:]
	return v
}

// FuzzPlan: for any view, leader witness and time, every command Plan
// returns creates exactly the next epoch of a role, at most one per role;
// an assignment goes only to an eligible candidate and only once the
// leader's witness would acknowledge it; a healthy, alive holder is moved
// only by preemption or a planned move; and the commands apply.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{3, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{5, 3, 1, 1, 1, 1, 0, 0, 0, 200, 100, 50, 7, 7, 7, 7, 7, 7, 7, 7, 7, 9, 9, 9})
	f.Add([]byte{4, 2, 2, 0, 255, 0, 255, 0, 255, 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		src := &byteSource{b: data}
		tm := DefaultTiming()
		nodes := []string{"a", "b", "c", "d", "e"}[:1+src.n(5)]
		v := View{Members: nodes, Alive: map[string]bool{}, Healthy: map[string]map[string]bool{}, Assignments: map[string]Assignment{}}
		for _, n := range nodes {
			v.Alive[n] = src.n(4) > 0
		}
		w := NewWitness("a", tm, at(-time.Duration(src.n(3))*time.Second))
		a := NewAssigner(tm)
		nroles := 1 + src.n(3)
		for i := range nroles {
			name := fmt.Sprintf("r%d", i)
			r := RoleConfig{Name: name, Preempt: src.n(2) == 0}
			if src.n(2) == 0 {
				r.Candidates = map[string]int{}
				for _, n := range []string{"a", "b", "c", "d", "e", "zz"} {
					if src.n(3) > 0 {
						r.Candidates[n] = 10 * src.n(4)
					}
				}
			}
			if i < 2 || src.n(4) > 0 { // some assignments belong to removed roles
				v.Roles = append(v.Roles, r)
			}
			v.Healthy[name] = map[string]bool{}
			for _, n := range nodes {
				v.Healthy[name][n] = src.n(4) > 0
			}
			if e := uint64(src.n(5)); e > 0 {
				cur := Assignment{Role: name, Epoch: e}
				if src.n(3) > 0 {
					cur.Holder = nodes[src.n(len(nodes))]
				}
				v.Assignments[name] = cur
				if cur.Holder != "" && src.n(2) == 0 {
					_, _ = w.Renew(Renewal{Role: name, Epoch: e, Node: cur.Holder, Session: 1}, cur, at(time.Duration(src.n(30))*100*ms))
				}
			}
			if src.n(4) == 0 {
				_ = a.Move(name, nodes[src.n(len(nodes))], v, at(0))
			}
		}
		now := at(time.Duration(src.n(40)) * 100 * ms)
		p := a.Plan(v, w, now)
		seen := map[string]bool{}
		for _, c := range p.Commands {
			cur := v.Assignments[c.Role]
			cur.Role = c.Role
			if seen[c.Role] {
				t.Fatalf("Plan() = %v: two commands for %s", p.Commands, c.Role)
			}
			seen[c.Role] = true
			if _, err := cur.Apply(c, now); err != nil {
				t.Fatalf("Plan() proposed %v, which %+v refuses: %v", c, cur, err)
			}
			cfg, configured := v.role(c.Role)
			if c.Op == OpAssign {
				if !configured || !v.eligible(cfg, c.Node) {
					t.Fatalf("Plan() proposed %v: %s is not an eligible candidate", c, c.Node)
				}
				if free := w.FreeAt(c.Role, c.Epoch); now.Before(free) {
					t.Fatalf("Plan() proposed %v at %v, before the witness is free at %v", c, now.Sub(t0), free.Sub(t0))
				}
			}
			if h := cur.Holder; h != "" && configured && v.eligible(cfg, h) && c.Reason != ReasonPreempt && c.Reason != ReasonMove {
				t.Fatalf("Plan() proposed %v against eligible holder %s", c, h)
			}
			if c.Reason == ReasonPreempt && !cfg.Preempt {
				t.Fatalf("Plan() proposed %v, but %s has preempt off", c, c.Role)
			}
		}
		if !p.Next.IsZero() && !p.Next.After(now) {
			t.Fatalf("Plan() next = %v, not after now %v", p.Next.Sub(t0), now.Sub(t0))
		}
	})
}
