package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"buoy"
	"buoy/internal/store"
)

// Bounds on virtual time. They are generous multiples of Raft's 1 s
// heartbeat and election timeouts; virtual time is deterministic, so a
// bound that holds once holds on every machine.
const (
	electBound    = 10 * time.Second // a new leader after a failure
	convergeBound = 30 * time.Second // every node agrees after a change
)

// names returns n node names: n1, n2, ...
func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

// grow bootstraps names[0] and joins the others one by one.
func grow(t *testing.T, c *Cluster, names ...string) {
	t.Helper()
	c.Bootstrap(names[0])
	c.WaitLeader(electBound)
	for _, name := range names[1:] {
		c.Join(name)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestJoin: one bootstrapped node and four joiners make five voters; a
// sixth joiner stays a non-voter; all six agree.
func TestJoin(t *testing.T) {
	Run(t, func(t *testing.T) {
		c := New(t, Options{})
		all := names(6)
		grow(t, c, all[:5]...)
		v := c.WaitMembers(convergeBound, all[:5]...)
		if !slices.Equal(v.Voters, all[:5]) {
			t.Fatalf("voters = %v, want %v", v.Voters, all[:5])
		}
		t.Logf("5 voters converged after %v (virtual)", c.Since())

		c.Join(all[5])
		v = c.WaitMembers(convergeBound, all...)
		if !slices.Equal(v.Voters, all[:5]) {
			t.Errorf("voters with a sixth member = %v, want %v", v.Voters, all[:5])
		}
		for _, n := range c.Live() {
			st, err := n.Node.Status(t.Context())
			if err != nil {
				t.Fatalf("Status on %s: %v", n.Name, err)
			}
			if st.Members != 6 || st.Voters != 5 || st.Leader != v.Leader {
				t.Errorf("Status on %s = %d members, %d voters, leader %q; want 6, 5, %q", n.Name, st.Members, st.Voters, st.Leader, v.Leader)
			}
		}
		t.Logf("6 members converged after %v (virtual)", c.Since())
	})
}

// waitToken waits until every live node lists token id.
func waitToken(t *testing.T, c *Cluster, id string) {
	t.Helper()
	err := c.Wait(convergeBound, func() error {
		for _, n := range c.Live() {
			if !hasToken(t, n, id) {
				return fmt.Errorf("%s does not list token %s", n.Name, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func hasToken(t *testing.T, n *Node, id string) bool {
	t.Helper()
	toks, err := n.Node.Tokens(t.Context())
	if err != nil {
		t.Fatalf("Tokens on %s: %v", n.Name, err)
	}
	return slices.ContainsFunc(toks, func(ti buoy.TokenInfo) bool { return ti.ID == id })
}

func tokenIDs(t *testing.T, n *Node) []string {
	t.Helper()
	toks, err := n.Node.Tokens(t.Context())
	if err != nil {
		t.Fatalf("Tokens on %s: %v", n.Name, err)
	}
	var ids []string
	for _, ti := range toks {
		ids = append(ids, ti.ID)
	}
	slices.Sort(ids)
	return ids
}

func status(t *testing.T, n *Node) buoy.Status {
	t.Helper()
	st, err := n.Node.Status(t.Context())
	if err != nil {
		t.Fatalf("Status on %s: %v", n.Name, err)
	}
	return st
}

// waitDone waits for n to stop on its own and returns why.
func waitDone(t *testing.T, n *Node, timeout time.Duration) error {
	t.Helper()
	select {
	case <-n.Node.Done():
		return n.Node.Err()
	case <-time.After(timeout):
		t.Fatalf("%s: Done not closed after %v", n.Name, timeout)
		return nil
	}
}

// TestLeaderFailure: killing the leader of five voters elects another
// within electBound; a write through a follower commits; the old leader,
// restarted, catches up and sees that write.
func TestLeaderFailure(t *testing.T) {
	Run(t, func(t *testing.T) {
		c := New(t, Options{})
		all := names(5)
		grow(t, c, all...)
		v := c.WaitMembers(convergeBound, all...)
		old := c.MustGet(v.Leader)

		c.Kill(old.Name)
		killed := time.Now()
		leader := c.WaitLeader(electBound)
		t.Logf("killed leader %s; %s leads after %v (virtual)", old.Name, leader.Name, time.Since(killed))

		via := c.Followers(leader)[0]
		tok, err := via.Node.CreateToken(ctxT(t, 30*time.Second), buoy.TokenRequest{Description: "after failover"})
		if err != nil {
			t.Fatalf("CreateToken on follower %s: %v", via.Name, err)
		}
		waitToken(t, c, tok.ID)
		t.Logf("write via %s committed and seen by all %v (virtual) after the kill", via.Name, time.Since(killed))

		c.Restart(old.Name)
		restarted := time.Now()
		target := status(t, leader).CommitIndex
		err = c.Wait(convergeBound, func() error {
			st := status(t, old)
			if st.AppliedIdx < target {
				return fmt.Errorf("%s applied %d, leader committed %d", old.Name, st.AppliedIdx, target)
			}
			if !hasToken(t, old, tok.ID) {
				return fmt.Errorf("%s does not list token %s", old.Name, tok.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("restarted %s did not catch up: %v", old.Name, err)
		}
		v = c.WaitMembers(convergeBound, all...)
		t.Logf("restarted %s caught up (index %d) after %v (virtual); leader %s", old.Name, target, time.Since(restarted), v.Leader)
	})
}

// TestLeave: a voter that leaves stops (Done), shows as left everywhere,
// and the non-voter takes its seat; when no non-voter is left, a leave
// lowers the voter count. The second leaver is the leader, which hands
// over leadership first.
func TestLeave(t *testing.T) {
	Run(t, func(t *testing.T) {
		c := New(t, Options{MaxVoters: 5})
		all := names(6)
		grow(t, c, all...)
		v := c.WaitMembers(convergeBound, all...)
		spare := ""
		for _, name := range all {
			if !slices.Contains(v.Voters, name) {
				spare = name
			}
		}
		if spare == "" {
			t.Fatalf("no non-voter among 6 members with 5 voters: %v", v)
		}

		var leaver *Node
		for _, name := range v.Voters {
			if name != v.Leader {
				leaver = c.MustGet(name)
				break
			}
		}
		if err := leaver.Node.Leave(ctxT(t, 30*time.Second)); err != nil {
			t.Fatalf("Leave on %s: %v", leaver.Name, err)
		}
		if err := waitDone(t, leaver, time.Second); !errors.Is(err, buoy.ErrLeft) {
			t.Errorf("%s Err() = %v, want %v", leaver.Name, err, buoy.ErrLeft)
		}
		left := time.Now()
		c.Kill(leaver.Name) // what the agent does once Done closes
		rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == leaver.Name })
		v = c.WaitMembers(convergeBound, rest...)
		if !slices.Equal(v.Left, []string{leaver.Name}) || !slices.Contains(v.Voters, spare) {
			t.Errorf("after %s left: %v, want %s left and %s promoted", leaver.Name, v, leaver.Name, spare)
		}
		t.Logf("%s left, %s promoted after %v (virtual)", leaver.Name, spare, time.Since(left))

		// Five members, five voters: the leader leaves and nobody replaces it.
		leader := c.MustGet(v.Leader)
		if err := leader.Node.Leave(ctxT(t, 30*time.Second)); err != nil {
			t.Fatalf("Leave on leader %s: %v", leader.Name, err)
		}
		if err := waitDone(t, leader, time.Second); !errors.Is(err, buoy.ErrLeft) {
			t.Errorf("%s Err() = %v, want %v", leader.Name, err, buoy.ErrLeft)
		}
		left = time.Now()
		c.Kill(leader.Name)
		rest = slices.DeleteFunc(rest, func(s string) bool { return s == leader.Name })
		v = c.WaitMembers(convergeBound, rest...)
		if len(v.Voters) != 4 || v.Leader == leader.Name || !slices.Contains(v.Left, leader.Name) {
			t.Errorf("after leader %s left: %v, want 4 voters, another leader, %s left", leader.Name, v, leader.Name)
		}
		for _, n := range c.Live() {
			if st := status(t, n); st.Voters != 4 || st.Members != 4 {
				t.Errorf("Status on %s: %d voters, %d members; want 4, 4", n.Name, st.Voters, st.Members)
			}
		}
		t.Logf("leader %s left; %s leads, 4 voters, after %v (virtual)", leader.Name, v.Leader, time.Since(left))
	})
}

// TestRemove: a member removed through a follower stops with ErrRemoved,
// cannot restart on its data dir, and even with the marker gone its
// certificate gets it nowhere. The last voter cannot be removed.
func TestRemove(t *testing.T) {
	t.Run("member", func(t *testing.T) {
		Run(t, func(t *testing.T) {
			c := New(t, Options{})
			all := names(5)
			grow(t, c, all...)
			v := c.WaitMembers(convergeBound, all...)
			followers := c.Followers(c.MustGet(v.Leader))
			caller, target := followers[0], followers[1]

			if err := caller.Node.RemoveMember(ctxT(t, 30*time.Second), target.Name); err != nil {
				t.Fatalf("RemoveMember(%q) on %s: %v", target.Name, caller.Name, err)
			}
			removed := time.Now()
			if err := waitDone(t, target, convergeBound); !errors.Is(err, buoy.ErrRemoved) {
				t.Errorf("%s Err() = %v, want %v", target.Name, err, buoy.ErrRemoved)
			}
			t.Logf("%s saw its removal after %v (virtual)", target.Name, time.Since(removed))
			c.Kill(target.Name)
			rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == target.Name })
			v = c.WaitMembers(convergeBound, rest...)
			if !slices.Equal(v.Left, []string{target.Name}) || len(v.Voters) != 4 {
				t.Errorf("after removing %s: %v, want it left and 4 voters", target.Name, v)
			}
			if err := caller.Node.RemoveMember(ctxT(t, 30*time.Second), target.Name); !errors.Is(err, store.ErrMemberGone) {
				t.Errorf("RemoveMember(%q) again = %v, want %v", target.Name, err, store.ErrMemberGone)
			}

			if err := c.TryRestart(target.Name); !errors.Is(err, buoy.ErrLeft) {
				t.Fatalf("restart removed %s = %v, want %v", target.Name, err, buoy.ErrLeft)
			}
			// Without the marker the node starts on its old certificate,
			// but every member refuses it at the handshake: it never
			// learns a leader and disturbs nobody's term.
			if err := target.RemoveLeftMarker(); err != nil {
				t.Fatal(err)
			}
			c.Restart(target.Name)
			term := status(t, c.MustGet(v.Leader)).Term
			for range 20 {
				time.Sleep(time.Second)
				if st := status(t, target); st.Leader != "" {
					t.Fatalf("removed %s follows leader %s", target.Name, st.Leader)
				}
			}
			others := slices.DeleteFunc(c.Live(), func(n *Node) bool { return n == target })
			if got, err := c.ConvergedAmong(others...); err != nil || !got.Equal(v) {
				t.Errorf("with removed %s running: %v (%v), want %v", target.Name, got, err, v)
			}
			if got := status(t, c.MustGet(v.Leader)).Term; got != term {
				t.Errorf("leader term = %d after removed %s restarted, want %d", got, target.Name, term)
			}
		})
	})
	t.Run("last voter", func(t *testing.T) {
		Run(t, func(t *testing.T) {
			c := New(t, Options{})
			n1 := c.Bootstrap("n1")
			c.WaitMembers(electBound, "n1")
			if err := n1.Node.RemoveMember(ctxT(t, 10*time.Second), "n1"); !errors.Is(err, store.ErrLastVoter) {
				t.Errorf("RemoveMember(%q) = %v, want %v", "n1", err, store.ErrLastVoter)
			}
			if err := n1.Node.Leave(ctxT(t, 10*time.Second)); !errors.Is(err, store.ErrLastVoter) {
				t.Errorf("Leave() = %v, want %v", err, store.ErrLastVoter)
			}
			if !n1.Live() {
				t.Errorf("n1 stopped after refused removals: %v", n1.Node.Err())
			}
			c.WaitMembers(electBound, "n1")
		})
	})
}

// TestForward: a write on a follower reaches the leader and every node;
// with a minority cut off, the majority still commits writes and the
// minority's write fails at its deadline.
func TestForward(t *testing.T) {
	Run(t, func(t *testing.T) {
		c := New(t, Options{})
		all := names(5)
		grow(t, c, all...)
		v := c.WaitMembers(convergeBound, all...)
		for _, f := range c.Followers(c.MustGet(v.Leader)) {
			tok, err := f.Node.CreateToken(ctxT(t, 10*time.Second), buoy.TokenRequest{Description: "via " + f.Name})
			if err != nil {
				t.Fatalf("CreateToken on follower %s: %v", f.Name, err)
			}
			waitToken(t, c, tok.ID)
		}
	})
	tests := []struct {
		name string
		// minority picks the two nodes to cut off, given the leader and
		// the followers.
		minority func(leader *Node, followers []*Node) []*Node
	}{
		{"followers cut off", func(_ *Node, f []*Node) []*Node { return f[:2] }},
		{"leader cut off", func(l *Node, f []*Node) []*Node { return []*Node{l, f[0]} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Run(t, func(t *testing.T) {
				c := New(t, Options{})
				all := names(5)
				grow(t, c, all...)
				v := c.WaitMembers(convergeBound, all...)
				leader := c.MustGet(v.Leader)
				minority := tt.minority(leader, c.Followers(leader))
				var cut []string
				for _, n := range minority {
					cut = append(cut, n.Name)
				}
				var majority []*Node
				for _, n := range c.Live() {
					if !slices.Contains(minority, n) {
						majority = append(majority, n)
					}
				}

				c.Partition(cut...)
				cutAt := time.Now()
				// Both sides write at once, right after the cut: the
				// majority's follower may still take the old leader for
				// the leader, and the minority must not hang past its
				// deadline nor panic.
				const minorityTimeout = 5 * time.Second
				var minorityErr error
				var minorityTook time.Duration
				var wg sync.WaitGroup
				wg.Go(func() {
					_, minorityErr = minority[1].Node.CreateToken(ctxT(t, minorityTimeout), buoy.TokenRequest{Description: "minority"})
					minorityTook = time.Since(cutAt)
				})
				via := majority[len(majority)-1]
				tok, err := via.Node.CreateToken(ctxT(t, electBound), buoy.TokenRequest{Description: "majority"})
				majorityTook := time.Since(cutAt)
				wg.Wait()
				if err != nil {
					t.Fatalf("CreateToken on %s in the majority: %v", via.Name, err)
				}
				t.Logf("majority write via %s committed after %v (virtual)", via.Name, majorityTook)
				// The cut-off write either waits out its deadline, or gives up
				// early saying honestly that it may have been applied (its
				// leader lost leadership mid-commit): never a false success.
				switch {
				case errors.Is(minorityErr, store.ErrOutcomeUnknown):
					t.Logf("minority write failed after %v (virtual), outcome unknown: %v", minorityTook, minorityErr)
				case errors.Is(minorityErr, context.DeadlineExceeded):
					t.Logf("minority write failed after %v (virtual): %v", minorityTook, minorityErr)
					if minorityTook < minorityTimeout {
						t.Errorf("minority write returned after %v, before its %v deadline", minorityTook, minorityTimeout)
					}
				default:
					t.Errorf("CreateToken on cut-off %s = %v, want an error wrapping %v or %v", minority[1].Name, minorityErr, context.DeadlineExceeded, store.ErrOutcomeUnknown)
				}
				err = c.Wait(convergeBound, func() error {
					for _, n := range majority {
						if !hasToken(t, n, tok.ID) {
							return fmt.Errorf("%s in the majority does not list token %s", n.Name, tok.ID)
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}

				c.Heal()
				healed := time.Now()
				c.WaitMembers(convergeBound, all...)
				waitToken(t, c, tok.ID)
				t.Logf("converged %v (virtual) after healing", time.Since(healed))
			})
		})
	}
}

// TestFullRestart: every node stops, then all restart on their data dirs
// with nothing lost: members, voters, tokens; a leader is elected and a
// write commits.
func TestFullRestart(t *testing.T) {
	Run(t, func(t *testing.T) {
		c := New(t, Options{})
		all := names(6)
		grow(t, c, all...)
		before := c.WaitMembers(convergeBound, all...)
		kept, err := c.MustGet("n3").Node.CreateToken(ctxT(t, 10*time.Second), buoy.TokenRequest{TTL: "24h", Description: "kept"})
		if err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		waitToken(t, c, kept.ID)
		tokens := tokenIDs(t, c.MustGet(before.Leader))
		if len(tokens) != 6 { // five join tokens and one more
			t.Fatalf("leader lists %d tokens %v, want 6", len(tokens), tokens)
		}
		for _, n := range c.Live() {
			if got := tokenIDs(t, n); !slices.Equal(got, tokens) {
				t.Fatalf("tokens on %s = %v, want %v", n.Name, got, tokens)
			}
		}

		for _, name := range all {
			c.Kill(name)
		}
		for _, name := range all {
			c.Restart(name)
		}
		restarted := time.Now()
		after := c.WaitMembers(convergeBound, all...)
		t.Logf("all restarted; %s leads after %v (virtual)", after.Leader, time.Since(restarted))
		if !slices.Equal(after.Voters, before.Voters) || len(after.Left) != 0 {
			t.Errorf("after restart: %v, want voters %v and nobody left", after, before.Voters)
		}
		for _, n := range c.Live() {
			if got := tokenIDs(t, n); !slices.Equal(got, tokens) {
				t.Errorf("tokens on %s after restart = %v, want %v", n.Name, got, tokens)
			}
		}
		tok, err := c.MustGet("n6").Node.CreateToken(ctxT(t, 30*time.Second), buoy.TokenRequest{Description: "after restart"})
		if err != nil {
			t.Fatalf("CreateToken after restart: %v", err)
		}
		waitToken(t, c, tok.ID)
	})
}
