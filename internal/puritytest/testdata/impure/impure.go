// Package impure breaks every rule a pure package keeps, so that the
// tests of puritytest can see Check fail.
package impure

import (
	"os"
	"time"

	"buoy/internal/wire"
)

// Wire depends on a module package the rules do not allow.
var Wire wire.ControlType

// Env imports a denied standard package.
func Env() string { return os.Getenv("HOME") }

// Late reads the clock and starts a goroutine.
func Late() time.Time {
	go Env()
	return time.Now()
}
