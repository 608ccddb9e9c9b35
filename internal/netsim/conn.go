package netsim

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// link is one connection: two ends and a pipe in each direction.
//
// Every blocking operation waits on cond, and everything that may unblock
// one (data, room, close, reset, a deadline or delivery timer, heal)
// broadcasts on it. sync.Cond.Wait is durably blocking for synctest, so an
// idle connection lets fake time advance.
type link struct {
	net       *Network
	hosts     [2]*Host // [0] dialed, [1] accepted
	dialPort  uint16   // ephemeral port held on hosts[0] until the link is removed
	boundPort uint16   // or the port bound by Dialer, likewise
	hops      []natHop // NAT mappings kept alive while the link lives

	// mu guards the following fields and the mutable fields of both ends.
	mu      sync.Mutex
	cond    sync.Cond
	ends    [2]*conn
	pipes   [2]pipe // pipes[i] carries what ends[i] writes
	stalled bool    // the path is cut: nothing new arrives
	// orphaned: an end's address is gone (MoveSilently); the link stays
	// stalled for good.
	orphaned bool
	latency  time.Duration
	broken   bool // reset by an IP change, Down or a listener's Close

	// wake broadcasts when the earliest in-flight segment arrives.
	wake    *time.Timer
	wakeAt  time.Time
	wakeGen uint64 // tells a stale wake timer from the current one
}

// pipe is one direction of a link: segments in write order. A segment has
// arrived (is readable) once it is not pending and its arrival time passed.
type pipe struct {
	segs     []segment
	buffered int // bytes in segs, arrived or not, counted against BufferSize
}

// segment is one write, or the end of the stream (fin).
type segment struct {
	data    []byte
	fin     bool
	pending bool      // held back by a cut; gets an arrival time on heal
	at      time.Time // arrival time; zero means at once
}

func (s *segment) arrivedBy(now time.Time) bool {
	return !s.pending && !s.at.After(now)
}

// readLocked copies arrived data into b. eof reports that the stream's end
// has arrived and no data precedes it.
func (p *pipe) readLocked(b []byte, now time.Time) (n int, eof bool) {
	for len(p.segs) > 0 && n < len(b) {
		s := &p.segs[0]
		if !s.arrivedBy(now) {
			break
		}
		if s.fin {
			// The fin stays queued so that every later Read sees EOF too.
			return n, n == 0
		}
		k := copy(b[n:], s.data)
		n += k
		p.buffered -= k
		s.data = s.data[k:]
		if len(s.data) == 0 {
			p.segs[0] = segment{}
			p.segs = p.segs[1:]
		}
	}
	return n, false
}

// finArrivedLocked reports whether the writer's close has reached the reader.
func (p *pipe) finArrivedLocked(now time.Time) bool {
	if len(p.segs) == 0 {
		return false
	}
	s := &p.segs[len(p.segs)-1]
	return s.fin && s.arrivedBy(now)
}

// appendLocked queues data (or the fin) written by ends[side].
func (l *link) appendLocked(side int, data []byte, fin bool, now time.Time) {
	p := &l.pipes[side]
	s := segment{fin: fin}
	switch {
	case l.stalled:
		s.pending = true
	case l.latency > 0:
		s.at = now.Add(l.latency)
	}
	if len(p.segs) > 0 {
		last := &p.segs[len(p.segs)-1]
		if !s.pending && last.at.After(s.at) {
			// A stream arrives in order, even when the latency dropped.
			s.at = last.at
		}
		if !fin && !last.fin && last.pending == s.pending && last.at.Equal(s.at) {
			last.data = append(last.data, data...)
			p.buffered += len(data)
			return
		}
	}
	s.data = append([]byte(nil), data...)
	p.segs = append(p.segs, s)
	p.buffered += len(data)
	if s.at.After(now) {
		l.scheduleWakeLocked(s.at, now)
	}
}

// scheduleWakeLocked makes sure waiters are woken no later than at.
func (l *link) scheduleWakeLocked(at, now time.Time) {
	if l.wake != nil && !l.wakeAt.After(at) {
		return
	}
	l.stopWakeLocked()
	gen := l.wakeGen
	l.wakeAt = at
	l.wake = time.AfterFunc(at.Sub(now), func() { l.onWake(gen) })
}

func (l *link) stopWakeLocked() {
	if l.wake != nil {
		l.wake.Stop()
		l.wake = nil
	}
	l.wakeGen++
}

// onWake runs when an in-flight segment arrives: it wakes the waiters and
// arms the timer for the next segment still in flight.
func (l *link) onWake(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.wakeGen {
		return
	}
	l.wake = nil
	l.cond.Broadcast()
	now := time.Now()
	for i := range l.pipes {
		for j := range l.pipes[i].segs {
			if s := &l.pipes[i].segs[j]; !s.pending && s.at.After(now) {
				l.scheduleWakeLocked(s.at, now)
				break
			}
		}
	}
}

// setStalled cuts or restores the path. On a cut, what has not arrived yet
// is held back, as packets in flight are lost and later retransmitted; on
// restore, held-back data arrives one latency later.
func (l *link) setStalled(stalled bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setStalledLocked(stalled, now)
}

// orphan stalls the link for good: one end's address is gone.
func (l *link) orphan(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setStalledLocked(true, now)
	l.orphaned = true
}

func (l *link) setStalledLocked(stalled bool, now time.Time) {
	if l.stalled == stalled || l.broken || l.orphaned {
		return
	}
	l.stalled = stalled
	for i := range l.pipes {
		for j := range l.pipes[i].segs {
			s := &l.pipes[i].segs[j]
			switch {
			case stalled && !s.arrivedBy(now):
				s.pending, s.at = true, time.Time{}
			case !stalled && s.pending:
				s.pending = false
				if l.latency > 0 {
					s.at = now.Add(l.latency)
				}
			}
		}
	}
	if !stalled && l.latency > 0 {
		l.scheduleWakeLocked(now.Add(l.latency), now)
	}
	l.cond.Broadcast()
}

func (l *link) setLatency(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latency = d
}

// breakLocked resets the link: both ends fail every later Read and Write.
func (l *link) breakLocked() {
	if l.broken {
		return
	}
	l.broken = true
	l.pipes = [2]pipe{}
	l.stopWakeLocked()
	l.cond.Broadcast()
}

// conn is one end of a link; it implements net.Conn.
type conn struct {
	link          *link
	side          int // index in link.ends and of the pipe it writes
	local, remote netip.AddrPort

	// The following fields are guarded by link.mu.
	closed bool
	rd, wd deadline
}

// deadline is a read or write deadline backed by a timer, so that expiry
// wakes blocked calls without anyone polling the clock.
type deadline struct {
	timer   *time.Timer
	gen     uint64 // tells a stale timer from the current one
	expired bool
}

func (d *deadline) stop() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
}

// setDeadlineLocked arms d for t (zero: no deadline).
func (c *conn) setDeadlineLocked(d *deadline, t time.Time) {
	l := c.link
	d.stop()
	d.expired = false
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.expired = true
		l.cond.Broadcast()
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(wait, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if d.gen == gen {
			d.expired = true
			d.timer = nil
			l.cond.Broadcast()
		}
	})
}

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read reads arrived data. It returns io.EOF once the peer's close has
// arrived and all data before it is read; an error wrapping
// syscall.ECONNRESET after a reset, os.ErrDeadlineExceeded after the read
// deadline, net.ErrClosed after Close.
func (c *conn) Read(b []byte) (int, error) {
	l := c.link
	l.mu.Lock()
	defer l.mu.Unlock()
	in := &l.pipes[1-c.side]
	for {
		switch {
		case c.closed:
			return 0, c.opError("read", net.ErrClosed)
		case l.broken:
			return 0, c.opError("read", os.NewSyscallError("read", syscall.ECONNRESET))
		case c.rd.expired:
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case len(b) == 0:
			return 0, nil
		}
		n, eof := in.readLocked(b, time.Now())
		if n > 0 {
			l.cond.Broadcast() // room for the writer
			return n, nil
		}
		if eof {
			return 0, io.EOF
		}
		l.cond.Wait()
	}
}

// Write writes all of b, blocking while the direction holds BufferSize
// bytes. It fails with an error wrapping syscall.EPIPE once the peer's close
// has arrived, syscall.ECONNRESET after a reset, os.ErrDeadlineExceeded
// after the write deadline, net.ErrClosed after Close; n counts the bytes
// queued before the failure.
func (c *conn) Write(b []byte) (int, error) {
	l := c.link
	l.mu.Lock()
	defer l.mu.Unlock()
	written := 0
	for {
		now := time.Now()
		switch {
		case c.closed:
			return written, c.opError("write", net.ErrClosed)
		case l.broken:
			return written, c.opError("write", os.NewSyscallError("write", syscall.ECONNRESET))
		case c.wd.expired:
			return written, c.opError("write", os.ErrDeadlineExceeded)
		case l.pipes[1-c.side].finArrivedLocked(now):
			return written, c.opError("write", os.NewSyscallError("write", syscall.EPIPE))
		case written == len(b):
			return written, nil
		}
		room := BufferSize - l.pipes[c.side].buffered
		if room <= 0 {
			l.cond.Wait()
			continue
		}
		chunk := b[written:min(len(b), written+room)]
		l.appendLocked(c.side, chunk, false, now)
		written += len(chunk)
		l.cond.Broadcast() // data for the reader
	}
}

// Close closes this end. Data already written still reaches the peer,
// followed by EOF. A second Close returns an error wrapping net.ErrClosed.
func (c *conn) Close() error {
	l := c.link
	l.mu.Lock()
	if c.closed {
		l.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	c.rd.stop()
	c.wd.stop()
	bothClosed := false
	if !l.broken {
		l.appendLocked(c.side, nil, true, time.Now())
		bothClosed = l.ends[1-c.side].closed
		if bothClosed {
			l.stopWakeLocked()
		}
	}
	l.cond.Broadcast()
	l.mu.Unlock()
	// A broken link was forgotten when it broke; a half-closed one stays
	// registered so that an IP change or Down can still reset the open end.
	if bothClosed {
		l.net.mu.Lock()
		l.net.removeLinkLocked(l)
		l.net.mu.Unlock()
	}
	return nil
}

// LocalAddr returns this end's address as a *net.TCPAddr.
func (c *conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.local) }

// RemoteAddr returns the peer's address as this end sees it, a
// *net.TCPAddr: for an accepted connection, the dialer's source address
// after routing.
func (c *conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

// SetDeadline sets both the read and the write deadline.
func (c *conn) SetDeadline(t time.Time) error {
	return c.setDeadlines(t, true, true)
}

// SetReadDeadline sets the time after which Read fails with an error
// wrapping os.ErrDeadlineExceeded; zero means never. It affects blocked
// Reads too.
func (c *conn) SetReadDeadline(t time.Time) error {
	return c.setDeadlines(t, true, false)
}

// SetWriteDeadline sets the time after which Write fails with an error
// wrapping os.ErrDeadlineExceeded; zero means never. It affects blocked
// Writes too.
func (c *conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadlines(t, false, true)
}

func (c *conn) setDeadlines(t time.Time, read, write bool) error {
	l := c.link
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return c.opError("set", net.ErrClosed)
	}
	if read {
		c.setDeadlineLocked(&c.rd, t)
	}
	if write {
		c.setDeadlineLocked(&c.wd, t)
	}
	return nil
}
