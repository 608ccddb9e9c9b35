package peer

import (
	"net"
	"os"
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

	// closed is set by Close, before the read deadline is moved, so that
	// a Read or SetDeadline racing with Close sees one or the other.
	closed atomic.Bool
	// readBy and writeBy are the deadlines (Unix ns, 0 for none), which
	// Read and Write check before they reach yamux (see soon).
	readBy, writeBy atomic.Int64
}

// soon returns t, or for a deadline that has already passed one
// nanosecond from now: what yamux is given instead of a past deadline.
//
// A yamux Read or Write that has to wait makes a timer from its deadline
// and selects on its channel. With a deadline already past, that timer has
// expired when the select starts, and in a testing/synctest bubble under
// the race detector Go 1.26.8 then crashes (SIGSEGV in
// runtime.(*timer).maybeRunChan; it happened in CI, and the program in
// testdata/synctest-timer-crash, with no yamux in it, does the same in 3
// runs of 5). A deadline a
// nanosecond ahead is the same thing on a real clock, and in a bubble,
// whose clock stands still while goroutines run, the timer goes into the
// heap and fires normally. Read and Write fail at once, without yamux,
// once their deadline has passed (as net.Conn's do), so yamux does not
// compute a past deadline itself on a later call.
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

// passed reports whether the deadline by (see readBy) has passed.
func passed(by *atomic.Int64) bool {
	d := by.Load()
	return d != 0 && time.Now().UnixNano() >= d
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
	if passed(&s.readBy) {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := s.Conn.Read(p)
	if err != nil && s.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// Write writes to the stream. Past its deadline it fails with
// os.ErrDeadlineExceeded.
func (s *Stream) Write(p []byte) (int, error) {
	if passed(&s.writeBy) {
		return 0, os.ErrDeadlineExceeded
	}
	return s.Conn.Write(p)
}

// Close ends the stream in both directions (see Stream). It wakes a
// pending Read before it sends the FIN, which may wait for the session's
// send queue. Closing twice is harmless.
func (s *Stream) Close() error {
	s.closed.Store(true)
	s.wakeReader()
	return s.Conn.Close()
}

// SetDeadline sets the read and write deadlines; after Close a Read still
// fails at once.
func (s *Stream) SetDeadline(t time.Time) error {
	s.readBy.Store(unixNanos(t))
	s.writeBy.Store(unixNanos(t))
	err := s.Conn.SetDeadline(soon(t))
	s.keepClosed()
	return err
}

// SetReadDeadline sets the read deadline; after Close a Read still fails
// at once.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.readBy.Store(unixNanos(t))
	err := s.Conn.SetReadDeadline(soon(t))
	s.keepClosed()
	return err
}

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.writeBy.Store(unixNanos(t))
	return s.Conn.SetWriteDeadline(soon(t))
}

// wakeReader makes a Read pending in yamux return: yamux wakes it when
// its deadline changes, and the new one expires at once (see soon).
func (s *Stream) wakeReader() {
	_ = s.Conn.SetReadDeadline(soon(time.Now()))
}

// keepClosed wakes the reader again if Close ran: a deadline set
// concurrently with Close must not leave a Read waiting.
func (s *Stream) keepClosed() {
	if s.closed.Load() {
		s.wakeReader()
	}
}
