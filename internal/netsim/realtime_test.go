package netsim

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The package must also work with the real clock, outside synctest. These
// tests assert only outcomes, never how long anything took.
func TestRealClock(t *testing.T) {
	n, a, b, ln := twoHosts(t)
	n.SetLatency(a, b, time.Millisecond)
	c, s := connect(t, a, ln, "198.51.100.1:7300")
	mustRoundTrip(t, c, s, "ping")
	mustRoundTrip(t, s, c, "pong")

	s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := s.Read(make([]byte, 1)); !isTimeout(err) {
		t.Errorf("Read with a deadline and no data = %v, want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})

	n.Partition(a, b)
	if conn, err := dialTimeout(a, "198.51.100.1:7300", 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial across a cut = %v, %v; want a timeout", conn, err)
	}
	c.Write([]byte("queued"))
	n.HealAll()
	mustRoundTripRead(t, s, "queued")
}
