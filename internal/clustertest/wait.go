package clustertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"buoy"
)

// pollInterval paces the Wait helpers. Inside a synctest bubble it is
// virtual time, so a short interval costs little.
const pollInterval = 50 * time.Millisecond

// View is the cluster as one node sees it through its public API
// (Node.Members): names sorted, departed members apart.
type View struct {
	Leader  string
	Members []string // current members
	Voters  []string // current Raft voters
	Left    []string // departed members (left or removed)
}

func (v View) String() string {
	return fmt.Sprintf("leader=%q members=%v voters=%v left=%v", v.Leader, v.Members, v.Voters, v.Left)
}

// Equal reports whether two views agree on everything.
func (v View) Equal(w View) bool {
	return v.Leader == w.Leader && slices.Equal(v.Members, w.Members) &&
		slices.Equal(v.Voters, w.Voters) && slices.Equal(v.Left, w.Left)
}

// ViewOf asks n for its view of the cluster.
func ViewOf(ctx context.Context, n *Node) (View, error) {
	if n.Node == nil {
		return View{}, fmt.Errorf("%s is not running", n.Name)
	}
	ms, err := n.Node.Members(ctx)
	if err != nil {
		return View{}, fmt.Errorf("members on %s: %w", n.Name, err)
	}
	var v View
	for _, m := range ms {
		if m.State == "left" {
			v.Left = append(v.Left, m.Name)
			continue
		}
		v.Members = append(v.Members, m.Name)
		if m.Voter {
			v.Voters = append(v.Voters, m.Name)
		}
		if m.Leader {
			v.Leader = m.Name
		}
	}
	slices.Sort(v.Members)
	slices.Sort(v.Voters)
	slices.Sort(v.Left)
	return v, nil
}

// Converged checks that every live node reports the same members, voters
// and leader, and that the leader is one of the live nodes. It returns
// that common view, or an error naming the first disagreement.
func (c *Cluster) Converged() (View, error) {
	return c.ConvergedAmong(c.Live()...)
}

// ConvergedAmong is Converged for the given nodes only: a test that keeps
// an outcast running (a removed member restarted on its old certificate)
// checks that the others still agree.
func (c *Cluster) ConvergedAmong(live ...*Node) (View, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if len(live) == 0 {
		return View{}, fmt.Errorf("no live node")
	}
	var first View
	for i, n := range live {
		v, err := ViewOf(ctx, n)
		if err != nil {
			return View{}, err
		}
		if i == 0 {
			first = v
			continue
		}
		if !v.Equal(first) {
			return View{}, fmt.Errorf("%s sees %v, but %s sees %v", live[0].Name, first, n.Name, v)
		}
	}
	if first.Leader == "" {
		return View{}, fmt.Errorf("no leader: %v", first)
	}
	if l := c.Get(first.Leader); l == nil || !l.Live() {
		return View{}, fmt.Errorf("every live node follows %s, which is not running", first.Leader)
	}
	return first, nil
}

// Wait polls cond until it returns nil or timeout passes, and returns
// cond's last error in that case.
func (c *Cluster) Wait(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// WaitConverged waits until Converged holds and returns the common view;
// it fails the test after timeout.
func (c *Cluster) WaitConverged(timeout time.Duration) View {
	c.t.Helper()
	var v View
	err := c.Wait(timeout, func() error {
		var err error
		v, err = c.Converged()
		return err
	})
	if err != nil {
		c.t.Fatalf("cluster did not converge: %v", err)
	}
	return v
}

// WaitLeader waits until every live node follows the same live leader and
// returns it; it fails the test after timeout.
func (c *Cluster) WaitLeader(timeout time.Duration) *Node {
	c.t.Helper()
	var leader *Node
	err := c.Wait(timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		name := ""
		for _, n := range c.Live() {
			st, err := n.Node.Status(ctx)
			if err != nil {
				return fmt.Errorf("status on %s: %w", n.Name, err)
			}
			switch {
			case st.Leader == "":
				return fmt.Errorf("%s knows no leader", n.Name)
			case name == "":
				name = st.Leader
			case st.Leader != name:
				return fmt.Errorf("%s follows %s, others %s", n.Name, st.Leader, name)
			}
		}
		leader = c.Get(name)
		if leader == nil || !leader.Live() {
			return fmt.Errorf("every live node follows %q, which is not running", name)
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("no leader: %v", err)
	}
	return leader
}

// WaitView waits until the cluster has converged (see Converged) on a
// view that check accepts, and returns that view; it fails the test after
// timeout with check's last complaint.
func (c *Cluster) WaitView(timeout time.Duration, check func(View) error) View {
	c.t.Helper()
	var v View
	err := c.Wait(timeout, func() error {
		var err error
		if v, err = c.Converged(); err != nil {
			return err
		}
		return check(v)
	})
	if err != nil {
		c.t.Fatalf("cluster did not reach the wanted view: %v", err)
	}
	return v
}

// WaitMembers waits until the cluster has converged on exactly the given
// current members, with as many voters as MaxVoters allows, and returns
// the common view; it fails the test after timeout.
func (c *Cluster) WaitMembers(timeout time.Duration, names ...string) View {
	c.t.Helper()
	want := slices.Sorted(slices.Values(names))
	maxVoters := c.opts.MaxVoters
	if maxVoters == 0 {
		maxVoters = buoy.DefaultMaxVoters
	}
	wantVoters := min(len(want), maxVoters)
	return c.WaitView(timeout, func(v View) error {
		if !slices.Equal(v.Members, want) {
			return fmt.Errorf("members %s, want %s", strings.Join(v.Members, ","), strings.Join(want, ","))
		}
		if len(v.Voters) != wantVoters {
			return fmt.Errorf("voters %s, want %d of them", strings.Join(v.Voters, ","), wantVoters)
		}
		return nil
	})
}

// Followers returns the live nodes other than leader, in creation order.
func (c *Cluster) Followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Live() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}
