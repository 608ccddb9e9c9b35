package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"buoy/internal/peer/peertest"
	"buoy/internal/wire"
)

// memNet is an in-memory network of net.Pipe connections: listeners by
// address, and a dialer that hands one end of a new pipe to the listener.
type memNet struct {
	mu        sync.Mutex
	next      int
	listeners map[string]*memListener
	valves    []*valve // one per dialed connection, in dial order
	// relays names listener addresses whose connections look relayed
	// (a RelayNetwork remote address on both ends); holes names
	// addresses whose dials hang until their context ends.
	relays, holes map[string]bool
	// hook, if set, runs at the start of every dial.
	hook func(addr string)
}

// relayedConn is a connection whose remote address says it is relayed.
type relayedConn struct {
	net.Conn
}

func (relayedConn) RemoteAddr() net.Addr { return relayAddr("relayed") }

type relayAddr string

func (a relayAddr) Network() string { return RelayNetwork }
func (a relayAddr) String() string  { return string(a) }

// valve can freeze both ends of one connection into a black hole: writes
// vanish and a Close no longer reaches the other end, as when a NAT drops
// its mapping. The connection is then half-open on both sides.
type valve struct {
	mu     sync.Mutex
	frozen bool
}

func (v *valve) freeze() {
	v.mu.Lock()
	v.frozen = true
	v.mu.Unlock()
}

func (v *valve) isFrozen() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.frozen
}

type valveConn struct {
	net.Conn
	v *valve
}

func (c valveConn) Write(p []byte) (int, error) {
	if c.v.isFrozen() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c valveConn) Close() error {
	if c.v.isFrozen() {
		// Unblock local readers without telling the other end.
		return c.Conn.SetDeadline(time.Unix(1, 0))
	}
	return c.Conn.Close()
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memListener struct {
	net  *memNet
	addr memAddr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (m *memNet) listen() net.Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	l := &memListener{net: m, addr: memAddr(fmt.Sprintf("mem-%d", m.next)), ch: make(chan net.Conn), done: make(chan struct{})}
	if m.listeners == nil {
		m.listeners = make(map[string]*memListener)
	}
	m.listeners[string(l.addr)] = l
	return l
}

func (m *memNet) dial(ctx context.Context, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.listeners[addr]
	hook, hole, relayed := m.hook, m.holes[addr], m.relays[addr]
	m.mu.Unlock()
	if hook != nil {
		hook(addr)
	}
	if hole {
		<-ctx.Done()
		return nil, fmt.Errorf("dial %s: %w", addr, ctx.Err())
	}
	if l == nil {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	client, server := net.Pipe()
	v := &valve{}
	m.mu.Lock()
	m.valves = append(m.valves, v)
	m.mu.Unlock()
	var cc, sc net.Conn = valveConn{client, v}, valveConn{server, v}
	if relayed {
		cc, sc = relayedConn{cc}, relayedConn{sc}
	}
	select {
	case l.ch <- sc:
		return cc, nil
	case <-l.done:
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.net.mu.Lock()
		delete(l.net.listeners, string(l.addr))
		l.net.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

// TestInMemorySynctest runs nodes over net.Pipe in a synctest bubble:
// links come up, carry streams, time out silent streams in virtual time,
// survive a restart, and Close ends every goroutine (or synctest.Test
// would report the leak as a deadlock).
func TestInMemorySynctest(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{}
		c := newCluster(t)
		c.dial = mem.dial
		c.listen = mem.listen
		a := c.start("a", nil)
		b := c.start("b", nil)
		d := c.start("d", nil)

		a.net.Keep([]string{"b", "d"})
		b.net.Keep([]string{"a", "d"})
		d.net.Keep([]string{"a", "b"})
		synctest.Wait()
		for _, pair := range [][2]*testNode{{a, b}, {a, d}, {b, d}} {
			if !agreed(pair[0], pair[1]) {
				t.Errorf("%s and %s do not agree: %v / %v", pair[0].name, pair[1].name, pair[0].net.Links(), pair[1].net.Links())
			}
		}
		for _, from := range []*testNode{a, b, d} {
			for _, to := range []string{"a", "b", "d"} {
				if to != from.name {
					roundTrip(t, from, to, wire.KindRaft)
				}
			}
		}

		// A stream that never sends its kind is closed after 5 s of
		// virtual time; the session stays.
		l := a.net.current("b")
		st, err := l.sess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		st.Write(nil) // sends the SYN only
		start := time.Now()
		if n, err := st.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read on silent stream = %d, %v; want EOF", n, err)
		}
		if waited := time.Since(start); waited < kindTimeout {
			t.Errorf("silent stream closed after %v, want at least %v", waited, kindTimeout)
		}
		st.Close()
		if len(b.logs.lines("peer stream refused", "deadline")) != 1 {
			t.Errorf("b did not log the silent stream:\n%s", b.logs)
		}
		if a.net.current("b") != l {
			t.Errorf("session replaced after a silent stream")
		}

		// Keepalives run for a while without disturbing anything.
		time.Sleep(time.Minute)
		if a.net.current("b") != l {
			t.Errorf("session replaced while idle")
		}

		// b restarts on a new address; a and d find it again.
		b.stop()
		synctest.Wait()
		if _, ok := linkTo(a.net, "b"); ok {
			t.Errorf("a still linked to b after b closed")
		}
		b2 := c.start("b", nil)
		a.net.Kick("b")
		time.Sleep(DefaultMaxBackoff + time.Second) // d has no kick: its backoff runs out
		synctest.Wait()
		if !agreed(a, b2) || !agreed(d, b2) {
			t.Errorf("b not back: a %v, d %v, b %v", a.net.Links(), d.net.Links(), b2.net.Links())
		}
		roundTrip(t, b2, "a", wire.KindControl)
		roundTrip(t, d, "b", wire.KindControl)

		var aEvents []string
		for _, e := range c.eventLog() {
			if e[:2] == "a:" {
				aEvents = append(aEvents, e)
			}
		}
		if got := countOf(aEvents, "a: down b"); got != 1 {
			t.Errorf("a reported b down %d times, want 1: %q", got, aEvents)
		}

		// Close of a node ends everything it started, also mid-dial: d's
		// dial to an address nobody accepts on is stuck until Close.
		ghost := mem.listen() // never accepts
		defer ghost.Close()
		c.setAddr("ghost", ghost.Addr().String())
		d.net.Keep([]string{"a", "b", "ghost"})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := d.net.Open(ctx, "ghost", wire.KindRPC); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Open(ghost) = %v, want DeadlineExceeded", err)
		}
		for _, n := range []*testNode{a, b2, d} {
			n.stop()
		}
		if _, err := a.net.Open(ctx, "b", wire.KindRPC); !errors.Is(err, ErrClosed) {
			t.Errorf("Open after Close = %v, want ErrClosed", err)
		}
	})
}

func countOf(list []string, s string) int {
	n := 0
	for _, e := range list {
		if e == s {
			n++
		}
	}
	return n
}

// TestDuplicateResolution covers a session arriving while another one to
// the same peer is up: a healthy existing session dialed by the smaller
// name is kept (the newcomer is closed on both sides), a half-open one is
// detected by ping and replaced.
func TestDuplicateResolution(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{}
		c := newCluster(t)
		c.dial = mem.dial
		c.listen = mem.listen
		a := c.start("a", nil)
		b := c.start("b", nil)
		roundTrip(t, a, "b", wire.KindRPC)
		sa := a.net.current("b")
		if sa == nil || sa.dialer != "a" {
			t.Fatalf("a's link to b: %+v, want one dialed by a", sa)
		}

		// b dials a second session although S_A is up: S_A answers pings,
		// so both sides keep it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		extra, err := b.net.dialAddr(ctx, "a", c.resolve("a")[0])
		if err != nil {
			t.Fatalf("dialAddr(a) = %v", err)
		}
		kept, err := b.net.adopt(extra)
		if err != nil || kept == extra || kept.dialer != "a" {
			t.Errorf("b adopt(extra) = %+v, %v; want the session dialed by a", kept, err)
		}
		synctest.Wait()
		if !extra.sess.IsClosed() {
			t.Errorf("duplicate session still open")
		}
		if a.net.current("b") != sa || !agreed(a, b) {
			t.Errorf("links changed: a %v, b %v", a.net.Links(), b.net.Links())
		}
		roundTrip(t, b, "a", wire.KindRPC)

		// S_A goes half-open and b drops it; b's next Open dials S_B. a
		// still holds S_A, pings it, gets no answer, and takes S_B.
		mem.valves[0].freeze()
		b.net.Disconnect("a")
		start := time.Now()
		roundTrip(t, b, "a", wire.KindRPC)
		if waited := time.Since(start); waited < pingTimeout {
			t.Errorf("Open took %v, want at least the ping timeout %v", waited, pingTimeout)
		}
		if l, ok := linkTo(a.net, "b"); !ok || l.Dialer != "b" {
			t.Errorf("a's link to b = %+v, want one dialed by b", l)
		}
		if !agreed(a, b) {
			t.Errorf("a and b disagree: %v / %v", a.net.Links(), b.net.Links())
		}
		if len(a.logs.lines("failed ping, replacing")) != 1 {
			t.Errorf("a did not log the failed ping:\n%s", a.logs)
		}
		synctest.Wait()
		if !sa.sess.IsClosed() {
			t.Errorf("half-open session still open on a")
		}
	})
}
