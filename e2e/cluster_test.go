package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// view is what a node's member list should show.
type view struct {
	current []string // alive members
	left    []string // departed members
	voters  int
}

// check compares a member list with v and returns the leader's name.
func (v view) check(ms []member) (string, error) {
	var current, left []string
	var leaders []string
	voters := 0
	for _, m := range ms {
		if m.State == "left" {
			left = append(left, m.Name)
		} else {
			if m.State != "alive" {
				return "", fmt.Errorf("%s is %s, want alive", m.Name, m.State)
			}
			current = append(current, m.Name)
		}
		if m.Voter {
			voters++
		}
		if m.Leader {
			leaders = append(leaders, m.Name)
		}
	}
	slices.Sort(current)
	slices.Sort(left)
	if !slices.Equal(current, sorted(v.current)) || !slices.Equal(left, sorted(v.left)) {
		return "", fmt.Errorf("members %v, left %v; want %v, left %v", current, left, sorted(v.current), sorted(v.left))
	}
	if voters != v.voters {
		return "", fmt.Errorf("%d voters, want %d", voters, v.voters)
	}
	if len(leaders) != 1 {
		return "", fmt.Errorf("leaders %v, want exactly one", leaders)
	}
	return leaders[0], nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// names lists the nodes' names.
func names(nodes ...*node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.name)
	}
	return out
}

// waitView waits until every one of nodes shows v and all agree on the
// leader, and returns the leader.
func (c *cluster) waitView(v view, nodes ...*node) *node {
	c.t.Helper()
	var leader string
	eventually(c.t, fmt.Sprintf("member lists of %v", names(nodes...)), func() error {
		leader = ""
		for _, n := range nodes {
			ms, err := n.members()
			if err != nil {
				return err
			}
			l, err := v.check(ms)
			if err != nil {
				return fmt.Errorf("on %s: %w", n.name, err)
			}
			if leader != "" && l != leader {
				return fmt.Errorf("%s sees leader %s, another node sees %s", n.name, l, leader)
			}
			leader = l
		}
		return nil
	})
	return c.byName(leader)
}

// waitHealthy waits until every node shows all of them alive, `voters`
// voters and the same single leader, and returns the leader.
func (c *cluster) waitHealthy(voters int, nodes ...*node) *node {
	c.t.Helper()
	return c.waitView(view{current: names(nodes...), voters: voters}, nodes...)
}

func (c *cluster) byName(name string) *node {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node named %q in this test", name)
	return nil
}

// bootstrap starts the first node of a new cluster and waits until it
// leads and has recorded itself as a member.
func (c *cluster) bootstrap(name string) *node {
	c.t.Helper()
	n := c.start(name, "--bootstrap")
	c.waitHealthy(1, n)
	return n
}

// join starts a node that joins through via with token.
func (c *cluster) join(name string, via *node, token string) *node {
	c.t.Helper()
	return c.start(name, "--join", via.peerAddr, "--token", token)
}

// threeNodes starts a cluster of n1 (bootstrap), n2 and n3 (joined with a
// token from n1) and waits until it is healthy.
func threeNodes(t *testing.T) (*cluster, []*node) {
	t.Helper()
	c := newCluster(t)
	n1 := c.bootstrap("n1")
	tok := n1.createToken("--description", "e2e")
	n2 := c.join("n2", n1, tok.Token)
	n3 := c.join("n3", n1, tok.Token)
	nodes := []*node{n1, n2, n3}
	c.waitHealthy(3, nodes...)
	return c, nodes
}

// killLeader kills the leader with SIGKILL and polls the survivors' status
// about every 50 ms until one reports a leader other than the old one. It
// returns the new leader and the time from the kill to that report.
func (c *cluster) killLeader(leader *node, survivors []*node) (*node, time.Duration) {
	c.t.Helper()
	killed := time.Now()
	leader.kill()
	deadline := killed.Add(waitTimeout)
	for {
		// The survivors are polled concurrently so a slow CLI call on one
		// does not delay noticing the other.
		var mu sync.Mutex
		var found string
		var wg sync.WaitGroup
		for _, n := range survivors {
			wg.Go(func() {
				st, err := n.status()
				if err == nil && st.Leader != "" && st.Leader != leader.name {
					mu.Lock()
					found = st.Leader
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if found != "" {
			took := time.Since(killed)
			if !slices.Contains(names(survivors...), found) {
				c.t.Fatalf("after killing %s, new leader = %s, want one of %v", leader.name, found, names(survivors...))
			}
			return c.byName(found), took
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no survivor of %v reports a new leader %v after killing %s", names(survivors...), waitTimeout, leader.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// others returns nodes without n.
func others(nodes []*node, n *node) []*node {
	return slices.DeleteFunc(slices.Clone(nodes), func(x *node) bool { return x == n })
}

// write commits a write through n (today: creating a join token, which goes
// through Raft) and returns the token's ID. Right after an election the
// first attempts may fail; it retries until waitTimeout.
func (c *cluster) write(n *node) string {
	c.t.Helper()
	var id string
	eventually(c.t, "a write through "+n.name, func() error {
		var tok newToken
		if err := n.cliJSON(&tok, "token", "create", "--description", "write via "+n.name); err != nil {
			return err
		}
		id = tok.ID
		return nil
	})
	return id
}

// waitCaughtUp waits until n's commit index reaches target and it lists
// every token in ids.
func waitCaughtUp(t *testing.T, n *node, target uint64, ids ...string) {
	t.Helper()
	eventually(t, n.name+" catching up", func() error {
		st, err := n.status()
		if err != nil {
			return err
		}
		if st.CommitIndex < target {
			return fmt.Errorf("%s commit index %d, want at least %d", n.name, st.CommitIndex, target)
		}
		for _, id := range ids {
			if err := n.hasToken(id); err != nil {
				return err
			}
		}
		return nil
	})
}

// commitIndex returns n's commit index.
func commitIndex(t *testing.T, n *node) uint64 {
	t.Helper()
	st, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	return st.CommitIndex
}
