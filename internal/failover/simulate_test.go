package failover

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Scenarios for the simulator in sim_test.go: scripted faults, the
// property test and its fuzz target, and tests that the checks can fail.

// chaos applies one scripted fault.
func (s *sim) chaos(kind, arg byte) {
	n := len(s.nodes)
	node := int(arg) % n
	other := int(arg) / n % n
	role := s.roles[int(arg)%len(s.roles)].Name
	s.dirty = true
	switch kind % 14 {
	case 0:
		s.crash(node)
	case 1:
		if !s.nodes[node].up {
			s.start(node)
		}
	case 2:
		s.isolate(node)
	case 3:
		for j := range s.nodes {
			s.cut[node][j], s.cut[j][node] = false, false
		}
		s.tracef("%s healed", s.names[node])
	case 4:
		s.cut[node][other], s.cut[other][node] = true, true
		s.tracef("cut %s-%s", s.names[node], s.names[other])
	case 5:
		s.cut[node][other] = true
		s.tracef("cut %s->%s", s.names[node], s.names[other])
	case 6:
		s.healAll()
	case 7:
		nd := s.names[int(arg)/len(s.roles)%n]
		s.health[role][nd] = !s.health[role][nd]
		s.tracef("health %s on %s: %v", role, nd, s.health[role][nd])
	case 8:
		rho := s.t.MaxDrift
		s.nodes[node].rate = [3]float64{1 - rho, 1, 1 + rho}[other%3]
		s.tracef("%s clock rate %v", s.names[node], s.nodes[node].rate)
	case 9:
		if s.leader >= 0 {
			target := s.names[int(arg)/len(s.roles)%n]
			err := s.assigner.Move(role, target, s.view(), s.nodes[s.leader].clock)
			s.tracef("move %s to %s: %v", role, target, err)
		}
	case 10:
		if h := s.holderOf(role); h >= 0 {
			s.crash(h)
		}
	case 11:
		if h := s.holderOf(role); h >= 0 {
			s.isolate(h)
		}
	case 12:
		if s.leader >= 0 {
			s.crash(s.leader)
		}
	case 13:
		h := s.holderOf(role)
		if s.leader >= 0 {
			s.crash(s.leader)
		}
		if h >= 0 {
			s.crash(h)
		}
	}
}

func (s *sim) isolate(i int) {
	for j := range s.nodes {
		if j != i {
			s.cut[i][j], s.cut[j][i] = true, true
		}
	}
	s.tracef("%s isolated", s.names[i])
}

func (s *sim) healAll() {
	for i := range s.cut {
		clear(s.cut[i])
	}
	s.tracef("all links healed")
}

// settle ends all faults and checks that every role ends up held by
// exactly the node the state names, the best candidate if preempt is on.
func (s *sim) settle() {
	s.healAll()
	for i, nd := range s.nodes {
		if !nd.up {
			s.start(i)
		}
		nd.rate = 1
	}
	for _, r := range s.roles {
		for _, name := range s.names {
			s.health[r.Name][name] = true
		}
	}
	s.dirty = true
	// An election, the longest lease and promise, a restarted witness's
	// floor, a move or a preemption (release, then assign), and slack.
	s.run(s.elect[1] + 4*s.t.promise() + s.t.moveTimeout() + 2*time.Second)
	if s.err != nil {
		return
	}
	for _, r := range s.roles {
		want := s.state[r.Name].Holder
		h := s.holderOf(r.Name)
		switch {
		case want == "":
			s.failf("after settling, role %s has no holder committed", r.Name)
		case h < 0 || s.names[h] != want:
			s.failf("after settling, role %s is committed to %s but held by node %d", r.Name, want, h)
		case r.Preempt:
			top := 0
			for _, name := range candidates(r, s.names) {
				p, _ := r.candidate(name, s.names)
				top = max(top, p)
			}
			if p, _ := r.candidate(want, s.names); p != top {
				s.failf("after settling, preempting role %s is held by %s (priority %d), not by one of priority %d", r.Name, want, p, top)
			}
		default:
			if _, ok := r.candidate(want, s.names); !ok {
				s.failf("after settling, role %s is held by %s, not a candidate", r.Name, want)
			}
		}
	}
}

// simulate runs one randomized scenario from a seed and a fault script
// (three bytes per fault: the gap before it in tens of milliseconds, its
// kind and its argument).
func simulate(seed uint64, script []byte) *sim {
	rng := rand.New(rand.NewPCG(seed, 1))
	n := 3 + rng.IntN(3)
	t := DefaultTiming()
	if rng.IntN(2) == 0 {
		t = LANTiming()
	}
	var roles []RoleConfig
	for i := range 1 + rng.IntN(2) {
		r := RoleConfig{Name: fmt.Sprintf("r%d", i), Preempt: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			r.Candidates = map[string]int{}
			for j := range n {
				if rng.IntN(4) > 0 {
					r.Candidates[fmt.Sprintf("n%d", j+1)] = 50 * rng.IntN(3)
				}
			}
			if len(r.Candidates) == 0 {
				r.Candidates["n1"] = 0
			}
		}
		roles = append(roles, r)
	}
	s := newSim(seed, n, roles, t)
	s.run(3 * time.Second)
	const maxFaults = 24
	for i := 0; i+2 < len(script) && i < 3*maxFaults && s.err == nil; i += 3 {
		s.run(time.Duration(script[i]) * 10 * time.Millisecond)
		s.chaos(script[i+1], script[i+2])
	}
	s.run(time.Second)
	if s.err == nil {
		s.settle()
	}
	return s
}

func (s *sim) report(t *testing.T, what string) {
	t.Helper()
	if s.err != nil {
		t.Fatalf("%s: %v\nlast events:\n%s", what, s.err, strings.Join(s.trace, "\n"))
	}
}

// TestSimulate runs randomized scenarios (seeds logged on failure) and
// makes sure they exercised failover at all.
func TestSimulate(t *testing.T) {
	runs := 40
	if testing.Short() {
		runs = 8
	}
	promotions, failovers := 0, 0
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 2))
		script := make([]byte, 3*(8+rng.IntN(16)))
		for i := range script {
			script[i] = byte(rng.IntN(256))
		}
		s := simulate(seed, script)
		s.report(t, fmt.Sprintf("simulate(%d, %x)", seed, script))
		promotions += s.promotions
		if s.maxEpoch > 1 {
			failovers++
		}
	}
	if promotions < runs || failovers < runs/2 {
		t.Errorf("%d runs had %d promotions and %d had a failover; the scenarios exercise too little", runs, promotions, failovers)
	}
}

// FuzzSimulate: for any fault script, no two nodes ever hold a role at the
// same instant, epochs only grow, and once the faults end every role is
// held by the node the state names.
func FuzzSimulate(f *testing.F) {
	f.Add(uint64(1), []byte{100, 10, 0, 200, 1, 0})                          // holder crash, restart of n1
	f.Add(uint64(2), []byte{50, 11, 0, 250, 6, 0})                           // holder isolated, healed
	f.Add(uint64(3), []byte{80, 13, 0, 200, 1, 1, 0, 1, 2, 0, 1, 0})         // leader and holder crash together
	f.Add(uint64(4), []byte{30, 7, 0, 30, 7, 0, 30, 7, 0, 30, 7, 3})         // flapping health
	f.Add(uint64(5), []byte{20, 8, 0, 20, 8, 4, 60, 11, 0, 200, 6, 0})       // drifting clocks, holder cut off
	f.Add(uint64(6), []byte{40, 9, 1, 100, 9, 2, 100, 12, 0, 150, 1, 0})     // moves, leader crash
	f.Add(uint64(7), []byte{10, 5, 1, 10, 5, 5, 100, 4, 2, 150, 2, 1, 9, 6}) // one-way cuts, partitions
	f.Fuzz(func(t *testing.T, seed uint64, script []byte) {
		simulate(seed, script).report(t, fmt.Sprintf("simulate(%d, %x)", seed, script))
	})
}

// TestSimulationCatchesOverlap makes sure the checks can fail: with a
// margin so negative that witnesses keep no promise worth the name, a
// holder cut off from the others still believes it holds the role when
// the new holder is acknowledged.
func TestSimulationCatchesOverlap(t *testing.T) {
	tm := DefaultTiming()
	tm.Margin = -tm.Lease + 10*time.Millisecond
	roles := []RoleConfig{{Name: "web"}}
	s := newSim(1, 3, roles, tm)
	s.elect = [2]time.Duration{10 * time.Millisecond, 20 * time.Millisecond} // even if the holder leads
	s.run(3 * time.Second)
	h := s.holderOf("web")
	if h < 0 {
		t.Fatalf("no holder after 3s; trace:\n%s", strings.Join(s.trace, "\n"))
	}
	s.isolate(h)
	s.dirty = true
	s.run(3 * time.Second)
	if s.err == nil || !strings.Contains(s.err.Error(), "at once") && !strings.Contains(s.err.Error(), "still promoted") {
		t.Fatalf("simulation with margin %v: err = %v, want two holders detected; trace:\n%s", tm.Margin, s.err, strings.Join(s.trace, "\n"))
	}
}

// TestSimulationCatchesDrift: clocks drifting far beyond MaxDrift (the
// holder's slow, the witnesses' fast) let the old holder's belief outlive
// the promises, and the check sees it.
func TestSimulationCatchesDrift(t *testing.T) {
	tm := DefaultTiming()
	tm.Guard, tm.Margin = 0, 0
	s := newSim(2, 3, []RoleConfig{{Name: "web"}}, tm)
	s.elect = [2]time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	s.run(3 * time.Second)
	h := s.holderOf("web")
	if h < 0 {
		t.Fatalf("no holder after 3s; trace:\n%s", strings.Join(s.trace, "\n"))
	}
	for i, nd := range s.nodes {
		nd.rate = 1.3
		if i == h {
			nd.rate = 0.7
		}
	}
	s.isolate(h)
	s.dirty = true
	s.run(3 * time.Second)
	if s.err == nil {
		t.Fatalf("simulation with clocks 30%% apart and no guard or margin: no overlap detected; trace:\n%s", strings.Join(s.trace, "\n"))
	}
}
