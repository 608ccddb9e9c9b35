package consensus

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ChangeKind is one kind of Raft configuration change.
type ChangeKind int

// Configuration changes Plan can ask for.
const (
	AddNonvoter ChangeKind = iota + 1
	Promote
	Remove
)

func (k ChangeKind) String() string {
	switch k {
	case AddNonvoter:
		return "add-nonvoter"
	case Promote:
		return "promote"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("change(%d)", int(k))
}

// Change is one step toward the wanted configuration.
type Change struct {
	Kind ChangeKind
	Name string
}

// Plan compares Raft's configuration with the member list (current members
// in admission order) and returns the changes that reconcile them: members
// Raft does not know are added as non-voters; non-voters are promoted, the
// earliest admitted first, while there are fewer than maxVoters voters and
// the candidate is alive (a voter that cannot answer only weakens the
// quorum); servers that are no longer members are removed, but never the
// last voter. Plan is pure so its rules are tested without a cluster.
func Plan(servers []raft.Server, members []string, maxVoters int, alive func(string) bool) []Change {
	isMember := make(map[string]bool, len(members))
	for _, m := range members {
		isMember[m] = true
	}
	inRaft := make(map[string]raft.ServerSuffrage, len(servers))
	voters := 0
	for _, s := range servers {
		inRaft[string(s.ID)] = s.Suffrage
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	var out []Change
	for _, s := range servers {
		name := string(s.ID)
		if isMember[name] {
			continue
		}
		if s.Suffrage == raft.Voter {
			if voters <= 1 {
				continue
			}
			voters--
		}
		out = append(out, Change{Remove, name})
	}
	for _, m := range members {
		if _, ok := inRaft[m]; !ok {
			out = append(out, Change{AddNonvoter, m})
			inRaft[m] = raft.Nonvoter
		}
	}
	for _, m := range members {
		if voters >= maxVoters {
			break
		}
		if inRaft[m] != raft.Voter && alive(m) {
			out = append(out, Change{Promote, m})
			voters++
		}
	}
	return out
}

// Reconcile applies Plan on the leader; on a follower it does nothing.
func (n *Node) Reconcile(members []string, maxVoters int, alive func(string) bool) error {
	if !n.IsLeader() {
		return nil
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	const timeout = 10 * time.Second
	for _, c := range Plan(servers, members, maxVoters, alive) {
		id, addr := raft.ServerID(c.Name), raft.ServerAddress(c.Name)
		var f raft.IndexFuture
		switch c.Kind {
		case AddNonvoter:
			f = n.raft.AddNonvoter(id, addr, 0, timeout)
		case Promote:
			f = n.raft.AddVoter(id, addr, 0, timeout)
		case Remove:
			f = n.raft.RemoveServer(id, 0, timeout)
		}
		if err := f.Error(); err != nil {
			return fmt.Errorf("reconcile %s %s: %w", c.Kind, c.Name, err)
		}
		n.log.Info("raft configuration changed", "change", c.Kind.String(), "node", c.Name)
	}
	return nil
}

// TransferLeadership asks Raft to hand leadership to another voter and
// waits for the handover.
func (n *Node) TransferLeadership() error {
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("leadership transfer: %w", err)
	}
	return nil
}

// VoterCount returns how many voters Raft's configuration holds.
func VoterCount(servers []raft.Server) int {
	v := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}
