package kv

import (
	"errors"
	"fmt"
)

// Errors callers branch on. Every error this package returns wraps one of
// them, so errors.Is works through the operation context added around it.
var (
	// ErrInvalidKey: the key is empty, not valid UTF-8, or contains NUL.
	ErrInvalidKey = errors.New("invalid key")
	// ErrKeyTooLong: the key is longer than the configured limit.
	ErrKeyTooLong = errors.New("key too long")
	// ErrValueTooLarge: the value is larger than the configured limit.
	ErrValueTooLarge = errors.New("value too large")
	// ErrTooManyOps: a transaction has more checks or operations than allowed.
	ErrTooManyOps = errors.New("too many operations in transaction")
	// ErrUnknownOp: an operation or check kind this build does not know.
	ErrUnknownOp = errors.New("unknown operation")
	// ErrInvalidCommand: a command that is malformed in any other way.
	ErrInvalidCommand = errors.New("invalid command")
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCheckFailed: a check (or a compare-and-set) did not hold, so nothing
	// was applied. The error is a *CheckError with the details.
	ErrCheckFailed = errors.New("check failed")
	// ErrCompacted: the change log no longer holds every change after the
	// index a watcher asked from; the watcher must re-read and resume from
	// the map's LastChange.
	ErrCompacted = errors.New("changes compacted")
	// ErrIndexOrder: a command was applied at an index not above the last
	// change, which only a bug in the caller can cause.
	ErrIndexOrder = errors.New("raft index out of order")
	// ErrInvalidSnapshot: a snapshot stream is corrupt, truncated or of an
	// unknown version.
	ErrInvalidSnapshot = errors.New("invalid kv snapshot")
)

// CheckError reports which check of a command failed and what was found,
// so a client can retry a compare-and-set with the current index.
type CheckError struct {
	// Check is the position of the failed check in Command.Checks.
	Check int
	// Kind and Key are the failed check's.
	Kind CheckKind
	Key  string
	// Found tells whether the key existed; ModifyIndex is its modify index
	// then (0 otherwise).
	Found       bool
	ModifyIndex uint64
}

// Error says which check failed and what the key held.
func (e *CheckError) Error() string {
	state := "absent"
	if e.Found {
		state = fmt.Sprintf("modify_index %d", e.ModifyIndex)
	}
	return fmt.Sprintf("%v: check %d (%s %q): key is %s", ErrCheckFailed, e.Check, e.Kind, e.Key, state)
}

// Unwrap makes errors.Is(err, ErrCheckFailed) hold.
func (e *CheckError) Unwrap() error { return ErrCheckFailed }
