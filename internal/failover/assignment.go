package failover

import (
	"fmt"
	"time"
)

// Assignment is a role's committed state, as every node's replicated state
// holds it. It deliberately has no lease expiry: an instant written by the
// leader would have to be read against other nodes' clocks. Leases live in
// each node's memory as durations on its own clock (see Witness, Holder).
type Assignment struct {
	Role string
	// Holder is the node the role is assigned to, "" for none.
	Holder string
	// Epoch counts the role's assignments and releases. It only grows and
	// no two commands share one, so it fences a stale holder.
	Epoch uint64
	// Previous is the last node that held the role before Holder: the
	// holder the current one replaced, or the one a release removed.
	Previous string
	// Since is when the leader committed this epoch, by the leader's wall
	// clock. For people and logs only; no decision reads it.
	Since time.Time
}

// Op is what a command does to a role.
type Op uint8

// Operations.
const (
	// OpAssign gives the role to Command.Node.
	OpAssign Op = iota + 1
	// OpRelease leaves the role without a holder.
	OpRelease
)

// String returns "assign" or "release".
func (o Op) String() string {
	switch o {
	case OpAssign:
		return "assign"
	case OpRelease:
		return "release"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Reason says why the leader proposed a command, for the audit log.
type Reason string

// Reasons.
const (
	ReasonVacant       Reason = "vacant"        // the role had no holder
	ReasonHolderLost   Reason = "holder-lost"   // the holder is not alive and its lease ran out
	ReasonUnhealthy    Reason = "unhealthy"     // the holder's checks for the role fail
	ReasonNotCandidate Reason = "not-candidate" // the holder is no longer a candidate
	ReasonPreempt      Reason = "preempt"       // a candidate of higher priority is back
	ReasonMove         Reason = "move"          // a planned move
	ReasonRemoved      Reason = "removed"       // the role is no longer configured
)

// Command is a change to one role, committed through Raft. The replicated
// state applies it with Assignment.Apply.
type Command struct {
	Op   Op
	Role string
	// Node is the new holder for OpAssign, "" for OpRelease.
	Node string
	// Epoch is the epoch the command creates: the current epoch plus one.
	// A command proposed against an older state is refused, so two leaders
	// (an old one that has not noticed yet, and a new one) can never both
	// change the role, and a re-proposed command never applies twice.
	Epoch  uint64
	Reason Reason
}

// String describes the command for logs: "web: assign pi2 epoch 8 (move)".
func (c Command) String() string {
	if c.Op == OpAssign {
		return fmt.Sprintf("%s: assign %s epoch %d (%s)", c.Role, c.Node, c.Epoch, c.Reason)
	}
	return fmt.Sprintf("%s: %s epoch %d (%s)", c.Role, c.Op, c.Epoch, c.Reason)
}

// Apply returns the assignment after c, committed at the leader's wall
// clock time at. It refuses (ErrStaleEpoch) a command that does not create
// exactly the next epoch, and (ErrBadCommand) one that is malformed; the
// replicated state must apply the result only when there is no error, so
// that every node decides alike.
func (a Assignment) Apply(c Command, at time.Time) (Assignment, error) {
	if a.Role != "" && c.Role != a.Role {
		return a, fmt.Errorf("apply %v to role %s: %w: wrong role", c, a.Role, ErrBadCommand)
	}
	if err := ValidName(c.Role); err != nil {
		return a, fmt.Errorf("apply %v: %w", c, ErrBadCommand)
	}
	switch c.Op {
	case OpAssign:
		if err := validLabel(c.Node); err != nil {
			return a, fmt.Errorf("apply %v: node %q: %w", c, c.Node, ErrBadCommand)
		}
	case OpRelease:
		if c.Node != "" {
			return a, fmt.Errorf("apply %v: a release names no node: %w", c, ErrBadCommand)
		}
	default:
		return a, fmt.Errorf("apply %v: %w", c, ErrBadCommand)
	}
	if c.Epoch != a.Epoch+1 || c.Epoch == 0 {
		return a, fmt.Errorf("apply %v: role is at epoch %d: %w", c, a.Epoch, ErrStaleEpoch)
	}
	prev := a.Previous
	if a.Holder != "" {
		prev = a.Holder
	}
	return Assignment{Role: c.Role, Holder: c.Node, Epoch: c.Epoch, Previous: prev, Since: at}, nil
}
