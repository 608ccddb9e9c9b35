package kv

import (
	"fmt"
	"time"
)

// Command is one change to the map as it travels through the Raft log: a
// transaction of checks and operations. Plain puts, deletes and
// compare-and-sets are commands with one operation (see Put, Delete, CAS).
// When every check holds, all operations apply in order at one index;
// otherwise none does.
type Command struct {
	// At is the proposing leader's clock. Only OpExpire reads it, so that
	// every node decides an expiry the same way.
	At time.Time
	// Checks are evaluated against the map before any operation.
	Checks []Check
	// Ops are applied in order; a later operation sees the earlier ones.
	Ops []Op
}

// CheckKind says what a Check compares.
type CheckKind uint8

// Check kinds. Their numbers are stored in the Raft log: never change the
// meaning of one; add new ones.
const (
	CheckExists      CheckKind = 1 // the key exists
	CheckNotExists   CheckKind = 2 // the key does not exist
	CheckModifyIndex CheckKind = 3 // the key exists with ModifyIndex == Index
	CheckValue       CheckKind = 4 // the key exists with value == Value
)

var checkNames = map[CheckKind]string{
	CheckExists:      "exists",
	CheckNotExists:   "not_exists",
	CheckModifyIndex: "modify_index",
	CheckValue:       "value",
}

// String returns the kind as APIs spell it (see ParseCheckKind).
func (k CheckKind) String() string {
	if s, ok := checkNames[k]; ok {
		return s
	}
	return fmt.Sprintf("check(%d)", uint8(k))
}

// ParseCheckKind returns the kind named s (as printed by String), for APIs
// that spell kinds as text.
func ParseCheckKind(s string) (CheckKind, error) {
	for k, n := range checkNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: check %q (want exists, not_exists, modify_index or value)", ErrUnknownOp, s)
}

// Check is one condition of a transaction.
type Check struct {
	Kind  CheckKind
	Key   string
	Index uint64 // CheckModifyIndex
	Value []byte // CheckValue
}

// CAS returns the check of a compare-and-set on key: index 0 means "only if
// absent", any other index "only if its modify index is still index".
func CAS(key string, index uint64) Check {
	if index == 0 {
		return Check{Kind: CheckNotExists, Key: key}
	}
	return Check{Kind: CheckModifyIndex, Key: key, Index: index}
}

// OpKind says what an Op does.
type OpKind uint8

// Operation kinds. Their numbers are stored in the Raft log: never change
// the meaning of one; add new ones.
const (
	OpPut          OpKind = 1 // set Key to Value, with a TTL if Expires is set
	OpDelete       OpKind = 2 // delete Key if present
	OpDeletePrefix OpKind = 3 // delete every key starting with Key ("" = all)
	OpGet          OpKind = 4 // read Key (in a transaction, after earlier ops)
	OpExpire       OpKind = 5 // delete Key if its modify index is Index and its TTL passed by Command.At
)

var opNames = map[OpKind]string{
	OpPut:          "put",
	OpDelete:       "delete",
	OpDeletePrefix: "delete_prefix",
	OpGet:          "get",
	OpExpire:       "expire",
}

// String returns the kind as APIs spell it (see ParseOpKind).
func (k OpKind) String() string {
	if s, ok := opNames[k]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// ParseOpKind returns the kind named s (as printed by String).
func ParseOpKind(s string) (OpKind, error) {
	for k, n := range opNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: operation %q (want put, delete, delete_prefix, get or expire)", ErrUnknownOp, s)
}

// Op is one operation of a transaction.
type Op struct {
	Kind OpKind
	// Key is the key, or the prefix for OpDeletePrefix.
	Key string
	// Value is OpPut's value.
	Value []byte
	// Expires is OpPut's absolute expiry (the leader computes it from the
	// TTL and its clock); zero means the key does not expire. A put without
	// Expires removes any TTL the key had.
	Expires time.Time
	// Index is OpExpire's modify index: a key written again since the leader
	// saw it expire is left alone.
	Index uint64
}

// Put returns the command that sets key to value (no TTL when expires is
// zero).
func Put(key string, value []byte, expires time.Time) Command {
	return Command{Ops: []Op{{Kind: OpPut, Key: key, Value: value, Expires: expires}}}
}

// Delete returns the command that deletes key.
func Delete(key string) Command {
	return Command{Ops: []Op{{Kind: OpDelete, Key: key}}}
}

// DeletePrefix returns the command that deletes every key under prefix.
func DeletePrefix(prefix string) Command {
	return Command{Ops: []Op{{Kind: OpDeletePrefix, Key: prefix}}}
}

// Expire returns the command, stamped with the leader's clock now, that
// deletes the expired keys Map.Expired listed.
func Expire(now time.Time, keys []Expiry) Command {
	c := Command{At: now, Ops: make([]Op, len(keys))}
	for i, k := range keys {
		c.Ops[i] = Op{Kind: OpExpire, Key: k.Key, Index: k.ModifyIndex}
	}
	return c
}

// Validate checks c against the configured limits. The proposer calls it
// before the command enters the log; see Limits for why apply does not.
func (c *Command) Validate(l Limits) error {
	if len(c.Checks) > l.MaxTxnOps || len(c.Ops) > l.MaxTxnOps {
		return fmt.Errorf("%w: %d checks and %d operations, the limit is %d of each", ErrTooManyOps, len(c.Checks), len(c.Ops), l.MaxTxnOps)
	}
	return c.check(l)
}

// check validates c's shape under l. With MaxLimits it is the check every
// decoded or applied command gets.
func (c *Command) check(l Limits) error {
	if len(c.Ops) == 0 {
		return fmt.Errorf("%w: no operations", ErrInvalidCommand)
	}
	if _, ok := unixNanos(c.At); !ok {
		return fmt.Errorf("%w: time %v outside 1970 to 2262", ErrInvalidCommand, c.At)
	}
	if len(c.Checks) > MaxLimits.MaxTxnOps || len(c.Ops) > MaxLimits.MaxTxnOps {
		return fmt.Errorf("%w: %d checks and %d operations, the ceiling is %d of each", ErrTooManyOps, len(c.Checks), len(c.Ops), MaxLimits.MaxTxnOps)
	}
	for i, ck := range c.Checks {
		if err := ck.check(l); err != nil {
			return fmt.Errorf("check %d: %w", i, err)
		}
	}
	for i, op := range c.Ops {
		if err := op.check(l, c.At); err != nil {
			return fmt.Errorf("operation %d: %w", i, err)
		}
	}
	return nil
}

func (ck *Check) check(l Limits) error {
	if err := l.CheckKey(ck.Key); err != nil {
		return err
	}
	switch ck.Kind {
	case CheckExists, CheckNotExists:
		if ck.Index != 0 || ck.Value != nil {
			return fmt.Errorf("%w: %s check with an index or value", ErrInvalidCommand, ck.Kind)
		}
	case CheckModifyIndex:
		if ck.Index == 0 || ck.Value != nil {
			return fmt.Errorf("%w: modify_index check needs an index above 0 (use not_exists for 0) and no value", ErrInvalidCommand)
		}
	case CheckValue:
		if ck.Index != 0 {
			return fmt.Errorf("%w: value check with an index", ErrInvalidCommand)
		}
		return l.CheckValue(len(ck.Value))
	default:
		return fmt.Errorf("%w: check kind %d", ErrUnknownOp, ck.Kind)
	}
	return nil
}

func (op *Op) check(l Limits, at time.Time) error {
	keyErr := l.CheckKey(op.Key)
	simple := func() error {
		if op.Value != nil || !op.Expires.IsZero() || op.Index != 0 {
			return fmt.Errorf("%w: %s with a value, expiry or index", ErrInvalidCommand, op.Kind)
		}
		return nil
	}
	switch op.Kind {
	case OpPut:
		if keyErr != nil {
			return keyErr
		}
		if op.Index != 0 {
			return fmt.Errorf("%w: put with an index (use a check for compare-and-set)", ErrInvalidCommand)
		}
		if _, ok := unixNanos(op.Expires); !ok {
			return fmt.Errorf("%w: put expiring at %v, outside 1970 to 2262", ErrInvalidCommand, op.Expires)
		}
		return l.CheckValue(len(op.Value))
	case OpDelete, OpGet:
		if keyErr != nil {
			return keyErr
		}
		return simple()
	case OpDeletePrefix:
		if err := l.CheckPrefix(op.Key); err != nil {
			return err
		}
		return simple()
	case OpExpire:
		if keyErr != nil {
			return keyErr
		}
		if op.Index == 0 || op.Value != nil || !op.Expires.IsZero() {
			return fmt.Errorf("%w: expire needs the key's modify index and nothing else", ErrInvalidCommand)
		}
		if at.IsZero() {
			return fmt.Errorf("%w: expire without the leader's time", ErrInvalidCommand)
		}
		return nil
	default:
		return fmt.Errorf("%w: operation kind %d", ErrUnknownOp, op.Kind)
	}
}

// unixNanos returns t as nanoseconds since 1970, 0 for the zero time. ok is
// false for times the encoding cannot carry: before 1970 (or exactly at it,
// which would read back as zero) and after 2262.
func unixNanos(t time.Time) (n int64, ok bool) {
	if t.IsZero() {
		return 0, true
	}
	n = t.UnixNano()
	return n, n > 0 && time.Unix(0, n).Equal(t)
}

// fromNanos is unixNanos' inverse.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
