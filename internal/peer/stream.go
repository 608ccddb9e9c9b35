package peer

import (
	"net"
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

	// closed is set by Close, before the read deadline is moved to the
	// past, so that a Read or SetDeadline racing with Close sees one or
	// the other.
	closed atomic.Bool
}

// closedDeadline is the read deadline of a closed stream: long past, so
// yamux wakes a pending Read and fails every later one.
var closedDeadline = time.Unix(1, 0)

// PeerName returns Peer, for code that receives the stream as a net.Conn
// (an RPC server learns its caller's certified name through it).
func (s *Stream) PeerName() string { return s.Peer }

// Read reads from the stream. After Close it fails with net.ErrClosed.
func (s *Stream) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := s.Conn.Read(p)
	if err != nil && s.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// Close ends the stream in both directions (see Stream). It wakes a
// pending Read before it sends the FIN, which may wait for the session's
// send queue. Closing twice is harmless.
func (s *Stream) Close() error {
	s.closed.Store(true)
	_ = s.Conn.SetReadDeadline(closedDeadline)
	return s.Conn.Close()
}

// SetDeadline sets the read and write deadlines; after Close the read
// deadline stays in the past.
func (s *Stream) SetDeadline(t time.Time) error {
	err := s.Conn.SetDeadline(t)
	s.keepClosed()
	return err
}

// SetReadDeadline sets the read deadline; after Close it stays in the
// past.
func (s *Stream) SetReadDeadline(t time.Time) error {
	err := s.Conn.SetReadDeadline(t)
	s.keepClosed()
	return err
}

// keepClosed moves the read deadline back to the past if Close ran: a
// deadline set concurrently with Close must not revive a Read.
func (s *Stream) keepClosed() {
	if s.closed.Load() {
		_ = s.Conn.SetReadDeadline(closedDeadline)
	}
}
