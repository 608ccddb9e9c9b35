//go:build !linux

package netlab

import (
	"errors"
	"fmt"
)

// errNotLinux is returned where the lab needs Linux; New has skipped or
// failed the test before any of these can be reached.
var errNotLinux = errors.New("netlab needs Linux")

func flushConntrack(ns string) error {
	return fmt.Errorf("flush conntrack in %s: %w", ns, errNotLinux)
}

func countConntrack(ns string) (int, error) {
	return 0, fmt.Errorf("count conntrack in %s: %w", ns, errNotLinux)
}
