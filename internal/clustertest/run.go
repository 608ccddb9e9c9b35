package clustertest

import (
	"runtime"
	"testing"
	"testing/synctest"
)

// Run runs f in a testing/synctest bubble, so the scenario's timeouts pass
// in virtual time. Use it instead of calling synctest.Test directly: it
// also keeps consecutive bubbles in one test binary apart.
//
// hashicorp/yamux v0.1.2 keeps timers in a package-level sync.Pool
// (timerPool in util.go) and reuses them across sessions. A timer made in
// one bubble and taken from the pool in the next is a channel of another
// bubble, and the runtime stops the program with "select on synctest
// channel from outside bubble". A sync.Pool drops everything it holds
// after two garbage collections, so Run collects twice before and after
// the bubble, when no goroutine of any bubble can be using a pooled timer.
func Run(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	dropPools()
	defer dropPools()
	synctest.Test(t, f)
}

// dropPools empties every sync.Pool in the process: the first collection
// moves pooled items to the victim cache, the second frees them.
func dropPools() {
	runtime.GC()
	runtime.GC()
}
