package peer

import (
	"errors"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"buoy/internal/peer/peertest"
)

func TestSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		tests := []struct {
			name string
			in   time.Time
			want time.Time
		}{
			{"none", time.Time{}, time.Time{}},
			{"future", now.Add(time.Second), now.Add(time.Second)},
			{"now", now, now.Add(time.Nanosecond)},
			{"past", now.Add(-time.Hour), now.Add(time.Nanosecond)},
			{"long past", time.Unix(1, 0), now.Add(time.Nanosecond)},
		}
		for _, tt := range tests {
			if got := soon(tt.in); !got.Equal(tt.want) {
				t.Errorf("soon(%s) = %v, want %v", tt.name, got, tt.want)
			}
		}
	})
}

// TestStreamPastDeadline: once its deadline has passed, a stream's Read
// and Write fail at once with os.ErrDeadlineExceeded (a timeout, as
// net.Conn's do), without reaching yamux, which would wait on a timer that
// has already expired (see soon); a later deadline revives them.
func TestStreamPastDeadline(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		p := newStreamPair(t)
		opened, accepted := p.opened, p.accepted

		accepted.SetDeadline(time.Now().Add(-time.Second))
		var ne net.Error
		if _, err := accepted.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("Read past the deadline = %v, want a timeout (os.ErrDeadlineExceeded)", err)
		}
		if _, err := accepted.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Write past the deadline = %v, want os.ErrDeadlineExceeded", err)
		}

		// A pending Read whose deadline is moved to the past returns.
		accepted.SetDeadline(time.Time{})
		done := make(chan error, 1)
		go func() {
			_, err := accepted.Read(make([]byte, 1))
			done <- err
		}()
		synctest.Wait()
		accepted.SetReadDeadline(time.Now())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		select {
		case err := <-done:
			if err == nil {
				t.Error("Read woken by a past deadline succeeded")
			}
		default:
			t.Error("Read still blocked after its deadline was moved to the past")
		}

		accepted.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := opened.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		if n, err := accepted.Read(buf); err != nil || string(buf[:n]) != "y" {
			t.Errorf("Read after a new deadline = %q, %v; want \"y\"", buf[:n], err)
		}
	})
}

// TestStreamDeadlineTimer: a deadline in the future ends a pending Read
// when it comes, not before, with os.ErrDeadlineExceeded; moving it
// later, or clearing it, lets the Read go on waiting; data before it is
// read.
func TestStreamDeadlineTimer(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		p := newStreamPair(t)
		s := p.accepted
		start := time.Now()
		s.SetReadDeadline(start.Add(5 * time.Second))
		s.SetReadDeadline(start.Add(10 * time.Second)) // the first timer must not fire
		done := make(chan error, 1)
		go func() {
			_, err := s.Read(make([]byte, 1))
			done <- err
		}()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Read returned %v after 9 s, before its 10 s deadline", err)
		default:
		}
		time.Sleep(time.Second + time.Nanosecond)
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read at its deadline = %v, want os.ErrDeadlineExceeded", err)
			}
		default:
			t.Fatal("Read still blocked after its deadline")
		}

		s.SetReadDeadline(time.Now().Add(time.Second))
		s.SetReadDeadline(time.Time{})
		go func() {
			_, err := s.Read(make([]byte, 1))
			done <- err
		}()
		time.Sleep(time.Minute)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Read with the deadline cleared returned %v", err)
		default:
		}
		if _, err := p.opened.Write([]byte("z")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := <-done; err != nil {
			t.Errorf("Read of data with no deadline = %v", err)
		}
	})
}
