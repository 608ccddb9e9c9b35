package kv

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits bound what a client may write. They are checked where a command
// is proposed (Command.Validate), not when it is applied: nodes configured
// with different limits must still compute the same map from the same log.
// Apply and the decoders check only what no configuration can change (key
// shape) and the ceilings in MaxLimits.
type Limits struct {
	// MaxKeyBytes is the longest key, in bytes.
	MaxKeyBytes int
	// MaxValueBytes is the largest value, in bytes.
	MaxValueBytes int
	// MaxTxnOps is the most checks, and separately the most operations, one
	// command may carry.
	MaxTxnOps int
}

// DefaultLimits are the limits of issue 5: 512-byte keys, 512 KiB values,
// 128 checks and 128 operations per transaction (etcd's default).
var DefaultLimits = Limits{MaxKeyBytes: 512, MaxValueBytes: 512 << 10, MaxTxnOps: 128}

// MaxLimits are the ceilings the decoders enforce whatever the
// configuration, so a corrupt or hostile entry cannot make a node allocate
// without bound. Configured limits above them are refused by Limits.Check.
var MaxLimits = Limits{MaxKeyBytes: 64 << 10, MaxValueBytes: 32 << 20, MaxTxnOps: 4096}

// Check reports whether l is usable: every limit positive and within
// MaxLimits.
func (l Limits) Check() error {
	if l.MaxKeyBytes <= 0 || l.MaxKeyBytes > MaxLimits.MaxKeyBytes ||
		l.MaxValueBytes <= 0 || l.MaxValueBytes > MaxLimits.MaxValueBytes ||
		l.MaxTxnOps <= 0 || l.MaxTxnOps > MaxLimits.MaxTxnOps {
		return fmt.Errorf("kv limits %+v: each must be positive and at most %+v", l, MaxLimits)
	}
	return nil
}

// CheckKey reports whether key is acceptable under l: non-empty, at most
// l.MaxKeyBytes, valid UTF-8 and free of NUL (which C clients and line
// protocols cannot carry).
func (l Limits) CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > l.MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLong, len(key), l.MaxKeyBytes)
	}
	return checkKeyShape(key)
}

// CheckPrefix is CheckKey for a prefix, which may be empty (all keys).
func (l Limits) CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return l.CheckKey(prefix)
}

// CheckValue reports whether a value of n bytes is acceptable under l.
func (l Limits) CheckValue(n int) error {
	if n > l.MaxValueBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, n, l.MaxValueBytes)
	}
	return nil
}

func checkKeyShape(key string) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	}
	if strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("%w: %q contains NUL", ErrInvalidKey, key)
	}
	return nil
}
