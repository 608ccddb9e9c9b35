// Package crash reproduces a Go 1.26.8 runtime crash: under -race, inside
// a testing/synctest bubble, a select on a timer channel whose timer has
// already expired (a deadline in the past, as yamux makes for a stream
// whose read deadline has passed) now and then dies with SIGSEGV in
// runtime.(*timer).maybeRunChan. Run it on its own:
//
//	cd internal/peer/testdata/synctest-timer-crash && go test -race -count=3 .
//
// It crashed 3 runs in 5 here; without -race, or with the deadline one
// nanosecond ahead (what peer.Stream now gives yamux, see soon), 0 in 24.
package crash

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestExpiredTimerSelect(t *testing.T) {
	for range 300 {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			var deadline time.Time
			notify := make(chan struct{}, 1)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() { // a reader: a timer per wait, from the deadline
					for range 50 {
						mu.Lock()
						d := deadline
						mu.Unlock()
						var timeout <-chan time.Time
						var timer *time.Timer
						if !d.IsZero() {
							timer = time.NewTimer(time.Until(d))
							timeout = timer.C
						}
						select {
						case <-notify:
						case <-timeout:
						}
						if timer != nil && !timer.Stop() {
							select {
							case <-timeout:
							default:
							}
						}
					}
				})
			}
			for range 200 { // moves the deadline to now to wake the readers
				mu.Lock()
				deadline = time.Now()
				mu.Unlock()
				select {
				case notify <- struct{}{}:
				default:
				}
				time.Sleep(time.Microsecond)
			}
			wg.Wait()
		})
	}
}
