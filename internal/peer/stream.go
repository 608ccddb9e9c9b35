package peer

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"buoy/internal/wire"
)

// Stream is one stream of a session. Its kind header has already been
// written (Open) or consumed (Listener.Accept).
//
// Close ends the stream as net.Conn's Close does: the other side reads EOF
// after what was written, and a Read blocked here returns at once, as do
// later Reads, whatever deadline is set afterwards. A bare yamux stream
// only half-closes: its pending Read goes on waiting for the peer, and a
// peer that keeps the stream idle (a pooled RPC stream), or that cannot be
// reached any more, never answers. Code that closes a stream to stop the
// goroutine reading it (on shutdown, say) would then wait for that
// goroutine until its read deadline, or for ever without one.
type Stream struct {
	net.Conn
	// Peer is the name of the node at the other end.
	Peer string
	// Kind is the stream's kind.
	Kind wire.Kind

	// closed is set by Close, before a pending Read is woken, so that a
	// Read or SetDeadline racing with Close sees one or the other.
	closed atomic.Bool
	// read and write are the deadlines, kept here and not in yamux (see
	// deadline).
	read, write deadline
}

// deadline is one direction's deadline. yamux is not given it: a yamux
// Read or Write that has to wait makes a timer from its deadline and
// selects on the timer's channel, and in a testing/synctest bubble under
// the race detector Go 1.26.8 now and then crashes (SIGSEGV in
// runtime.(*timer).maybeRunChan) when that timer has already expired as
// the select starts: a deadline in the past, or one reached at the same
// instant as something else that woke the call, which in a bubble, with
// many goroutines timing out together, happens. It happened in CI; the
// program in testdata/synctest-timer-crash, with no yamux in it, crashes
// 3 runs in 5. So the deadline runs on a timer of ours (a function timer,
// which is not affected), and only when it expires does yamux get one, a
// nanosecond ahead (see soon): that wakes the waiting call, which then
// times out on a timer that has not expired when its select starts. Read
// and Write fail at once, without yamux, once their deadline has passed,
// as net.Conn's do.
type deadline struct {
	by atomic.Int64 // Unix ns, 0 for none

	mu    sync.Mutex // guards timer and gen, and orders the yamux calls
	timer *time.Timer
	gen   uint64
}

// set sets the deadline to t; apply sets yamux's. On a closed stream
// (closed, if given, is set) yamux's deadline is kept expiring, so that no
// Read waits; closed is read under the lock, which Close's own call also
// takes after setting it.
func (d *deadline) set(t time.Time, apply func(time.Time) error, closed *atomic.Bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	wake := closed != nil && closed.Load()
	d.by.Store(unixNanos(t))
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if wake || !t.IsZero() && !t.After(time.Now()) {
		return apply(soon(time.Now()))
	}
	err := apply(time.Time{}) // an earlier deadline's, if any, goes
	if !t.IsZero() {
		gen := d.gen
		d.timer = time.AfterFunc(time.Until(t), func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.gen == gen {
				_ = apply(soon(time.Now()))
			}
		})
	}
	return err
}

// passed reports whether the deadline has passed.
func (d *deadline) passed() bool {
	by := d.by.Load()
	return by != 0 && time.Now().UnixNano() >= by
}

// stop stops the deadline's timer.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// soon returns t, or for a time that is not after now one nanosecond
// from now: a deadline that expires at once on a real clock, and in a
// bubble, whose clock stands still while goroutines run, on a timer that
// goes into the heap and fires normally (see deadline).
func soon(t time.Time) time.Time {
	if now := time.Now(); !t.IsZero() && !t.After(now) {
		return now.Add(time.Nanosecond)
	}
	return t
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// PeerName returns Peer, for code that receives the stream as a net.Conn
// (an RPC server learns its caller's certified name through it).
func (s *Stream) PeerName() string { return s.Peer }

// Read reads from the stream. After Close it fails with net.ErrClosed,
// past its deadline with os.ErrDeadlineExceeded.
func (s *Stream) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	if s.read.passed() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := s.Conn.Read(p)
	if err != nil && s.closed.Load() {
		err = net.ErrClosed
	} else if err != nil && s.read.passed() {
		err = os.ErrDeadlineExceeded
	}
	return n, err
}

// Write writes to the stream. Past its deadline it fails with
// os.ErrDeadlineExceeded.
func (s *Stream) Write(p []byte) (int, error) {
	if s.write.passed() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := s.Conn.Write(p)
	if err != nil && s.write.passed() {
		err = os.ErrDeadlineExceeded
	}
	return n, err
}

// Close ends the stream in both directions (see Stream). It wakes a
// pending Read before it sends the FIN, which may wait for the session's
// send queue. Closing twice is harmless.
func (s *Stream) Close() error {
	s.closed.Store(true)
	_ = s.read.set(time.Time{}, s.Conn.SetReadDeadline, &s.closed)
	s.read.stop()
	s.write.stop()
	return s.Conn.Close()
}

// SetDeadline sets the read and write deadlines; after Close a Read still
// fails at once.
func (s *Stream) SetDeadline(t time.Time) error {
	return errors.Join(s.SetReadDeadline(t), s.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline; after Close a Read still fails
// at once.
func (s *Stream) SetReadDeadline(t time.Time) error {
	return s.read.set(t, s.Conn.SetReadDeadline, &s.closed)
}

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	return s.write.set(t, s.Conn.SetWriteDeadline, nil)
}
