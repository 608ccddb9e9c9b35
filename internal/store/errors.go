package store

import (
	"errors"

	"buoy/internal/kv"
)

// Errors an apply can return. They cross the wire when a follower forwards a
// write, so each has a stable code (see Code and FromCode).
var (
	ErrTokenUnknown  = errors.New("join token unknown")
	ErrTokenExpired  = errors.New("join token expired")
	ErrTokenRevoked  = errors.New("join token revoked")
	ErrTokenUsedUp   = errors.New("join token has no uses left")
	ErrTokenExists   = errors.New("join token id already exists")
	ErrNameTaken     = errors.New("node name is already a current member")
	ErrNoSuchMember  = errors.New("no such member")
	ErrAlreadyInit   = errors.New("cluster already initialised")
	ErrNotInit       = errors.New("cluster not initialised")
	ErrFirstMember   = errors.New("only the first member may join without a token")
	ErrLastVoter     = errors.New("refusing to remove the last voter")
	ErrMemberGone    = errors.New("member has left the cluster")
	ErrNotLeader     = errors.New("not the leader")
	ErrNoLeader      = errors.New("no leader")
	ErrNoQuorum      = errors.New("no quorum: this node cannot confirm it has the latest data")
	ErrInvalidName   = errors.New("invalid node name")
	ErrInvalidToken  = errors.New("invalid join token")
	ErrInvalidInput  = errors.New("invalid input")
	ErrSecretUnknown = errors.New("join token secret does not match")
	// ErrOutcomeUnknown: a write reached Raft (or the leader) but its
	// answer was lost: leadership moved or the link broke before the
	// write was known to be committed or dropped. It may still take
	// effect. Writes that must not apply twice (the key-value store's: a
	// retried compare-and-set would report the failed check its own
	// first application caused) return it instead of retrying; the
	// caller reads and decides.
	ErrOutcomeUnknown = errors.New("outcome unknown: the write may or may not have been applied")
)

var codes = map[error]string{
	kv.ErrCheckFailed:    "kv_check_failed",
	kv.ErrNotFound:       "kv_not_found",
	kv.ErrInvalidKey:     "kv_invalid_key",
	kv.ErrKeyTooLong:     "kv_key_too_long",
	kv.ErrValueTooLarge:  "kv_value_too_large",
	kv.ErrTooManyOps:     "kv_too_many_ops",
	kv.ErrUnknownOp:      "kv_unknown_op",
	kv.ErrInvalidCommand: "kv_invalid_command",
	ErrTokenUnknown:      "token_unknown",
	ErrTokenExpired:      "token_expired",
	ErrTokenRevoked:      "token_revoked",
	ErrTokenUsedUp:       "token_used_up",
	ErrTokenExists:       "token_exists",
	ErrNameTaken:         "name_taken",
	ErrNoSuchMember:      "no_such_member",
	ErrAlreadyInit:       "already_init",
	ErrNotInit:           "not_init",
	ErrFirstMember:       "first_member",
	ErrLastVoter:         "last_voter",
	ErrMemberGone:        "member_gone",
	ErrNotLeader:         "not_leader",
	ErrNoLeader:          "no_leader",
	ErrInvalidName:       "invalid_name",
	ErrInvalidToken:      "invalid_token",
	ErrInvalidInput:      "invalid_input",
	ErrSecretUnknown:     "secret_mismatch",
	ErrOutcomeUnknown:    "outcome_unknown",
	ErrBadCommand:        "bad_command",

	ErrZoneUnknown:    "zone_unknown",
	ErrZoneTooLarge:   "zone_too_large",
	ErrUpdateNotZone:  "update_notzone",
	ErrUpdateNXDomain: "update_nxdomain",
	ErrUpdateYXDomain: "update_yxdomain",
	ErrUpdateNXRRSet:  "update_nxrrset",
	ErrUpdateYXRRSet:  "update_yxrrset",
}

// Code returns the stable code of the first known sentinel err wraps, or "".
func Code(err error) string {
	for e, c := range codes {
		if errors.Is(err, e) {
			return c
		}
	}
	return ""
}

// FromCode rebuilds an error received from another node: it wraps the
// sentinel for code (if any) so errors.Is works across the wire, and keeps
// the remote message.
func FromCode(code, msg string) error {
	for e, c := range codes {
		if c == code {
			if msg == e.Error() {
				return e
			}
			return &remoteError{msg: msg, sentinel: e}
		}
	}
	return errors.New(msg)
}

type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }
