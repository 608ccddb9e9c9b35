// Package peertest helps tests run peer links inside testing/synctest
// bubbles.
//
// hashicorp/yamux v0.1.2 keeps *time.Timer values in a package-level
// sync.Pool. A timer made inside one bubble and reused outside it (or in
// another bubble) crashes the runtime ("select on synctest channel from
// outside bubble"), and a real-time timer reused inside a bubble is not
// advanced by the fake clock. SyncTest empties that pool around the bubble.
package peertest

import (
	"runtime"
	"testing"
	"testing/synctest"
)

// SyncTest runs f in a synctest bubble, as synctest.Test does, after and
// before emptying every sync.Pool (yamux's timer pool among them) by two
// garbage collections: the first moves pooled items to the victim cache,
// the second drops them.
//
// It is only sound if no yamux session outside the bubble is active at the
// same time: do not combine it with t.Parallel tests that use yamux, and
// Close every Network of earlier tests first (their Cleanup does).
func SyncTest(t *testing.T, f func(*testing.T)) {
	t.Helper()
	drainPools()
	defer drainPools()
	synctest.Test(t, f)
}

func drainPools() {
	runtime.GC()
	runtime.GC()
}
