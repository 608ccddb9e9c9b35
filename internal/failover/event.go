package failover

import "fmt"

// EventKind is the hook an event runs.
type EventKind uint8

// Event kinds.
const (
	// EventPromote: this node now holds the role (a majority acknowledged
	// its renewal for the epoch). Runs the promote hook.
	EventPromote EventKind = iota + 1
	// EventDemote: this node no longer holds the role. Runs the demote hook.
	EventDemote
	// EventChange: the role moved (a new epoch was committed). Runs the
	// change hook, on every node.
	EventChange
)

// String returns "promote", "demote" or "change".
func (k EventKind) String() string {
	switch k {
	case EventPromote:
		return "promote"
	case EventDemote:
		return "demote"
	case EventChange:
		return "change"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Cause says what led to an event, for the audit log.
type Cause string

// Causes.
const (
	CauseQuorum    Cause = "quorum"     // a majority acknowledged a renewal
	CauseLeaseLost Cause = "lease-lost" // no acknowledged renewal for Lease-Guard
	CauseMoved     Cause = "moved"      // a newer epoch was committed
	CauseRerun     Cause = "rerun"      // Rerun: the last hook run does not match the state
)

// Event is a hook to run, with what the hook's environment reports.
type Event struct {
	Kind EventKind
	Role string
	// Epoch is the epoch the event is about: the one promoted to, demoted
	// from, or committed.
	Epoch uint64
	// Node is the node the event happens on (BUOY_NODE).
	Node string
	// Holder is the role's holder after the event as this node knows it,
	// "" for none or unknown (BUOY_HOLDER).
	Holder string
	// Previous is the holder before it (BUOY_PREVIOUS).
	Previous string
	Cause    Cause
}

// String describes the event for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s %s epoch %d on %s (holder %q, previous %q, %s)", e.Role, e.Kind, e.Epoch, e.Node, e.Holder, e.Previous, e.Cause)
}

// Run is what a node persists, per role, about the last promote or demote
// hook it ran, so that Rerun can tell after a restart whether the scripts'
// view of the role matches the node's.
type Run struct {
	// State is EventPromote or EventDemote, 0 if neither ever ran.
	State EventKind
	Epoch uint64
	// Done is set once the hook ended (or was killed at its timeout);
	// false means the node stopped while it ran.
	Done bool
}

// Rerun returns the promote or demote hook to run so that the last one run
// matches whether this node holds the role now. The node calls it when it
// starts (holding is then false: a restarted node holds nothing until a
// majority acknowledges it again) and whenever it suspects its hooks and
// its state parted, as after a healed partition; it returns false when the
// hooks are already in step.
//
// A node that last ran promote and does not hold the role runs demote, so
// that a service promoted before a crash or a partition stops acting as the
// holder; an interrupted demote runs again. A holder whose last finished
// hook is not promote for the current epoch runs promote.
//
// Change hooks need no rerun rule: the Holder emits a Change for every
// epoch it sees, the first one after a start included, and the hook runner
// skips a Change whose epoch is not above the last change it ran.
func Rerun(self string, last Run, cur Assignment, holding bool) (Event, bool) {
	if holding {
		if last.State == EventPromote && last.Epoch == cur.Epoch && last.Done {
			return Event{}, false
		}
		return Event{Kind: EventPromote, Role: cur.Role, Epoch: cur.Epoch, Node: self, Holder: self, Previous: cur.Previous, Cause: CauseRerun}, true
	}
	if last.State == EventPromote || last.State == EventDemote && !last.Done {
		holder := cur.Holder
		if holder == self {
			holder = "" // committed to us, but not held: no holder to report
		}
		return Event{Kind: EventDemote, Role: cur.Role, Epoch: last.Epoch, Node: self, Holder: holder, Previous: self, Cause: CauseRerun}, true
	}
	return Event{}, false
}
