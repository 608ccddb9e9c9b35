package peer

import (
	"encoding/binary"
	"net"
	"sync"
)

// yamux's frame header (github.com/hashicorp/yamux v0.1.2, const.go):
// version, type, flags (2 bytes), stream ID (4), length (4).
const (
	yamuxHeaderSize  = 12
	yamuxVersion     = 0
	yamuxTypeData    = 0
	yamuxLengthField = 8
)

// maxCoalescedBody is the largest frame body sent in one Write with its
// header: header and body then fit in one TLS record (16 KiB of
// plaintext). A larger body fills several records anyway, and its lone
// header costs less than copying the body.
const maxCoalescedBody = 16<<10 - yamuxHeaderSize

// coalesceConn sits between a yamux session and its TLS connection and
// sends a data frame's header and body in one Write.
//
// yamux's sendLoop writes every frame as two conn.Write calls, the
// 12-byte header and then the body, and each Write on a tls.Conn is one
// TLS record and one write syscall. With small bodies (an rpc request, a
// Raft AppendEntries) that doubles the records, syscalls and the
// receiver's wakeups for every frame. coalesceConn keeps the header of a
// data frame whose body is at most maxCoalescedBody and sends it with the
// next Write, which sendLoop makes at once with exactly that body (it
// copies the body into its buffer in between, nothing else). Every other
// header (window update, ping, go away, a data frame without body: SYN,
// ACK, FIN or RST alone) is written at once, so nothing is ever held back
// waiting for a frame that will not come.
//
// The wrapper follows the byte stream frame by frame. If a Write ever
// does not match what it expects (a header split over two Writes, an
// unknown version, a body of another length) it writes what it holds and
// passes every later Write through unchanged: the bytes on the wire stay
// the same, only the coalescing stops.
type coalesceConn struct {
	net.Conn

	// mu guards the following fields. yamux writes from its one sendLoop
	// goroutine, so the lock is uncontended; it keeps the state whole if
	// another writer ever appears.
	mu sync.Mutex
	// buf holds the pending header (len(buf) == yamuxHeaderSize) or is
	// empty; its capacity is reused for header + body.
	buf []byte
	// want is the length of the pending header's body.
	want int
	// remaining counts body bytes of a frame whose header went out alone
	// (a body over maxCoalescedBody) that are still to pass through.
	remaining int
	// passthrough is set once the stream stopped matching yamux's framing.
	passthrough bool
}

// newCoalesceConn wraps c for a yamux session; see coalesceConn.
func newCoalesceConn(c net.Conn) *coalesceConn {
	return &coalesceConn{Conn: c}
}

// Write implements net.Conn for yamux's sendLoop.
func (c *coalesceConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.passthrough {
		return c.Conn.Write(p)
	}
	if len(c.buf) > 0 {
		if len(p) == c.want {
			return c.writeFrameLocked(p)
		}
		if err := c.stopLocked(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if c.remaining > 0 {
		if len(p) > c.remaining {
			// A Write past the body's end: yamux never does that.
			c.passthrough = true
		} else {
			c.remaining -= len(p)
		}
		return c.Conn.Write(p)
	}
	if len(p) != yamuxHeaderSize || p[0] != yamuxVersion {
		c.passthrough = true
		return c.Conn.Write(p)
	}
	body := int(binary.BigEndian.Uint32(p[yamuxLengthField:]))
	switch {
	case p[1] != yamuxTypeData || body == 0:
		// No body follows: window updates, pings and go-aways carry a
		// value in the length field, not a length.
		return c.Conn.Write(p)
	case body > maxCoalescedBody:
		c.remaining = body
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf[:0], p...)
	c.want = body
	return len(p), nil
}

// writeFrameLocked sends the pending header with its body p in one Write
// and reports the bytes of p written.
func (c *coalesceConn) writeFrameLocked(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	n, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	c.want = 0
	n -= yamuxHeaderSize
	if n < 0 {
		n = 0
	}
	return n, err
}

// stopLocked writes a pending header alone and turns coalescing off.
func (c *coalesceConn) stopLocked() error {
	c.passthrough = true
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = nil
	return err
}
