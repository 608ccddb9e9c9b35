package failover

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// failoverTimes crashes the holder of a 3-node cluster trials times, in
// virtual time, and returns how long each took until another node's
// Promote, split by whether the crashed holder was also the Raft leader.
// Raft elections take elect[0] to elect[1], messages up to Renew/5 (no
// loss: peer links are TCP), applies up to 4·Renew/5+10ms.
func failoverTimes(t *testing.T, tm Timing, elect [2]time.Duration, trials int, leaderToo bool) (follower, leader []time.Duration) {
	t.Helper()
	s := newSim(42, 3, []RoleConfig{{Name: "web"}}, tm)
	s.elect = elect
	s.ordered = true
	s.run(5 * time.Second)
	for range trials {
		s.run(s.between(0, 2*tm.Renew)) // any phase of the renewal cycle
		h := s.holderOf("web")
		if h < 0 {
			t.Fatalf("no holder before a trial; trace:\n%s", strings.Join(s.trace, "\n"))
		}
		if leaderToo && h != s.leader {
			// Leadership moved to the holder (as a transfer would).
			s.leader, s.term, s.assigner, s.dirty = h, s.term+1, NewAssigner(tm), true
			s.run(s.between(0, 2*tm.Renew))
		}
		wasLeader := h == s.leader
		before := s.lastPromo["web"].epoch
		start := s.now
		s.crash(h)
		for s.lastPromo["web"].epoch == before && s.now-start < 10*time.Second && s.err == nil {
			s.step(start + 10*time.Second)
		}
		s.report(t, "failover trial")
		d := s.now - start
		if wasLeader {
			leader = append(leader, d)
		} else {
			follower = append(follower, d)
		}
		s.start(h)
		s.run(3 * time.Second)
	}
	return follower, leader
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

// TestFailoverTimes measures, in the simulator's virtual time, kill -9 of
// the holder until the new holder's promote, against the targets:
// default median ≤ 1.5s and max ≤ 3s, lan median ≤ 0.5s. The targets are
// asserted where the holder is not the Raft leader, which the assigner
// arranges when priorities tie; when it is, a Raft election (modelled at
// hashicorp/raft's default 1–2s, and 300–600ms for lan-tuned Raft) runs
// at the same time as the lease and may dominate, which the log shows.
func TestFailoverTimes(t *testing.T) {
	tests := []struct {
		name          string
		tm            Timing
		elect         [2]time.Duration
		median, worst time.Duration
	}{
		{"default", DefaultTiming(), [2]time.Duration{time.Second, 2 * time.Second}, 1500 * ms, 3 * time.Second},
		{"lan", LANTiming(), [2]time.Duration{300 * ms, 600 * ms}, 500 * ms, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			follower, _ := failoverTimes(t, tt.tm, tt.elect, 40, false)
			_, leader := failoverTimes(t, tt.tm, tt.elect, 20, true)
			if len(follower) < 5 {
				t.Fatalf("only %d of 40 trials crashed a holder that was not the leader", len(follower))
			}
			t.Logf("holder not leader: %d trials, median %v, max %v", len(follower), median(follower), slices.Max(follower))
			if len(leader) > 0 {
				t.Logf("holder also leader: %d trials, median %v, max %v", len(leader), median(leader), slices.Max(leader))
			}
			if m := median(follower); m > tt.median {
				t.Errorf("median failover %v, want ≤ %v", m, tt.median)
			}
			if m := slices.Max(follower); m > tt.worst {
				t.Errorf("worst failover %v, want ≤ %v", m, tt.worst)
			}
		})
	}
}
