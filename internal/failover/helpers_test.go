package failover

import (
	"slices"
	"time"
)

// t0 is an arbitrary origin for one node's clock in tests.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns t0+d.
func at(d time.Duration) time.Time { return t0.Add(d) }

const ms = time.Millisecond

// members of the test cluster.
var abc = []string{"a", "b", "c"}

// testView returns a view of cluster a, b, c with every node alive and
// healthy for every role, and the given assignments.
func testView(roles []RoleConfig, as ...Assignment) View {
	v := View{Roles: roles, Members: abc, Alive: map[string]bool{}, Healthy: map[string]map[string]bool{}, Assignments: map[string]Assignment{}}
	for _, n := range abc {
		v.Alive[n] = true
	}
	for _, r := range roles {
		v.Healthy[r.Name] = map[string]bool{}
		for _, n := range abc {
			v.Healthy[r.Name][n] = true
		}
	}
	for _, a := range as {
		v.Assignments[a.Role] = a
	}
	return v
}

// dead returns v with nodes not alive.
func (v View) dead(nodes ...string) View {
	alive := map[string]bool{}
	for n, ok := range v.Alive {
		alive[n] = ok && !slices.Contains(nodes, n)
	}
	v.Alive = alive
	return v
}

// sick returns v with node failing its checks for role.
func (v View) sick(role string, nodes ...string) View {
	h := map[string]map[string]bool{}
	for r, m := range v.Healthy {
		h[r] = map[string]bool{}
		for n, ok := range m {
			h[r][n] = ok && !(r == role && slices.Contains(nodes, n))
		}
	}
	v.Healthy = h
	return v
}

// ackedAt returns a witness (started long before) that last acknowledged
// the holder of a at time when.
func ackedAt(tm Timing, a Assignment, when time.Time) *Witness {
	w := NewWitness("a", tm, when.Add(-time.Hour))
	if a.Holder != "" {
		if _, err := w.Renew(Renewal{Role: a.Role, Epoch: a.Epoch, Node: a.Holder, Session: 1, Seq: 1}, a, when); err != nil {
			panic(err)
		}
	}
	return w
}
