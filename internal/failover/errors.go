package failover

import "errors"

// Sentinel errors callers branch on. Functions wrap them with the operation
// and the names involved; test with errors.Is.
var (
	// ErrInvalidRole: a role configuration is malformed (name, priority, TTL).
	ErrInvalidRole = errors.New("invalid role")
	// ErrUnknownNode: a role names a node that is not a member of the cluster.
	ErrUnknownNode = errors.New("unknown node")
	// ErrUnknownRole: no role of that name is configured.
	ErrUnknownRole = errors.New("unknown role")
	// ErrUnsafeTiming: timing values that cannot keep two holders apart, or
	// cannot renew a lease before it ends.
	ErrUnsafeTiming = errors.New("unsafe timing")
	// ErrUnknownProfile: a timing profile name other than "default" or "lan".
	ErrUnknownProfile = errors.New("unknown timing profile")

	// ErrStaleEpoch: a command or renewal names an epoch other than the one
	// it must follow or match. The state moved on; the sender is behind.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrBadCommand: a command that no state can accept (unknown operation,
	// assign without a node, release naming one).
	ErrBadCommand = errors.New("bad command")

	// ErrNotCandidate: a planned move to a node that is not a candidate.
	ErrNotCandidate = errors.New("not a candidate")
	// ErrNotAlive: a planned move to a node the leader does not see alive.
	ErrNotAlive = errors.New("not alive")
	// ErrUnhealthy: a planned move to a node whose checks for the role fail.
	ErrUnhealthy = errors.New("unhealthy")
	// ErrPreempted: a planned move, on a role with preempt on, to a node that
	// a healthy candidate of higher priority would take the role back from.
	ErrPreempted = errors.New("would be preempted")

	// ErrBound: a witness still keeps its promise to an earlier holder of the
	// role and may not acknowledge a newer one yet.
	ErrBound = errors.New("bound to an earlier holder")
	// ErrReleased: the holder gave that epoch up; it may not be renewed.
	ErrReleased = errors.New("epoch released")
)
