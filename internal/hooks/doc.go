// Package hooks runs the user's hook executables when a node's roles change,
// and keeps the audit log of role transitions and hook runs.
//
// A hook is a plain executable (no shell is involved) run for an event —
// promote, demote, change — with the transition described in its
// environment: BUOY_ROLE, BUOY_EVENT, BUOY_EPOCH, BUOY_NODE, BUOY_HOLDER,
// BUOY_HOLDER_ADDR and BUOY_PREVIOUS. Hooks of one role run one at a time,
// in the order they were queued, so a promote never overlaps the demote
// before it; hooks of different roles run in parallel. Each run has a
// timeout (30 s unless set), after which the hook and every process it
// started in its process group are killed. Output is captured, bounded,
// into the log and the result; the result goes back to the caller, which
// decides what a failure means (a failed promote counts as a failed health
// check for the role).
//
// A hook that starts a long-running background process should redirect
// that process's output (for example "> /dev/null 2>&1 &"): the runner
// stops reading the hook's output shortly after the hook itself exits.
//
// The audit log (AuditLog) is an append-only file of JSON lines, synced to
// disk on every entry and rotated at a size bound; ReadAudit reads it back
// for "buoy roles history".
package hooks
