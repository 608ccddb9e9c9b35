package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"buoy/internal/peer/peertest"
	"buoy/internal/wire"
)

// These tests cover shutdown: whatever the peer does (keeps a stream idle,
// stops reading, vanishes), closing a stream ends the goroutine reading
// it, and Close of the Network returns and ends every stream, on retired
// sessions too.

// takeListener closes tn's echo server for kind and returns a fresh
// listener of that kind for the test to serve by hand.
func takeListener(tn *testNode, kind wire.Kind) *Listener {
	tn.net.Listen(kind).Close()
	return tn.net.Listen(kind)
}

// idleStream opens an rpc stream from a to b and returns both ends: b's
// as accepted by a listener that does nothing with it, as a peer holding
// a pooled stream between calls does.
func idleStream(t *testing.T, a, b *testNode) (opened, accepted *Stream) {
	t.Helper()
	l := takeListener(b, wire.KindRPC)
	got := make(chan *Stream, 1)
	go func() {
		s, err := l.AcceptStream()
		if err != nil {
			t.Errorf("AcceptStream on %s = %v", b.name, err)
		}
		got <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opened, err := a.net.Open(ctx, b.name, wire.KindRPC)
	if err != nil {
		t.Fatalf("Open(%s, rpc) = %v", b.name, err)
	}
	accepted = <-got
	if accepted == nil {
		t.FailNow()
	}
	return opened, accepted
}

// streamPair is two nodes a and b on an in-memory network, linked, with
// an idle rpc stream a opened to b.
type streamPair struct {
	mem              *memNet
	c                *cluster
	a, b             *testNode
	opened, accepted *Stream
}

func newStreamPair(t *testing.T) streamPair {
	t.Helper()
	p := streamPair{mem: &memNet{}, c: newCluster(t)}
	p.c.dial, p.c.listen = p.mem.dial, p.mem.listen
	p.a = p.c.start("a", nil)
	p.b = p.c.start("b", nil)
	p.opened, p.accepted = idleStream(t, p.a, p.b)
	return p
}

// pendingRead starts a Read on s, with a read deadline of 30 s as an rpc
// server sets between requests (zero: none), and returns the channel its
// error arrives on.
func pendingRead(s *Stream, deadline time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		if deadline > 0 {
			s.SetReadDeadline(time.Now().Add(deadline))
		}
		_, err := s.Read(make([]byte, 64))
		done <- err
	}()
	return done
}

// TestStreamCloseEndsPendingRead: closing a stream ends a Read blocked on
// it at once, on either end, while the peer keeps its end idle and open
// or the link has gone silent; this is what an rpc server does to stop
// the goroutine serving a pooled stream on shutdown. yamux's own Close
// only half-closes, and such a Read went on waiting for the peer, up to
// its read deadline.
func TestStreamCloseEndsPendingRead(t *testing.T) {
	tests := []struct {
		name     string
		reader   string        // "opened" or "accepted": the end that reads and closes
		deadline time.Duration // read deadline set before the Read; 0: none
		freeze   bool          // black-hole the link first
	}{
		{"accepting end, rpc deadline", "accepted", 30 * time.Second, false},
		{"accepting end, no deadline", "accepted", 0, false},
		{"opening end, no deadline", "opened", 0, false},
		{"black-holed link", "accepted", 30 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peertest.SyncTest(t, func(t *testing.T) {
				p := newStreamPair(t)
				mem, opened, accepted := p.mem, p.opened, p.accepted
				s := accepted
				if tt.reader == "opened" {
					s = opened
				}
				if tt.freeze {
					mem.valves[0].freeze()
				}
				done := pendingRead(s, tt.deadline)
				synctest.Wait()
				select {
				case err := <-done:
					t.Fatalf("Read returned %v before Close", err)
				default:
				}

				s.Close()
				// Close gives yamux a read deadline one nanosecond ahead
				// (see soon): one nanosecond passes, nothing more.
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				select {
				case err := <-done:
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("Read after Close = %v, want net.ErrClosed", err)
					}
				default:
					t.Errorf("Read still blocked after Close of the %s stream", tt.reader)
				}
				if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
					t.Errorf("later Read = %v, want net.ErrClosed", err)
				}
			})
		})
	}
}

// TestStreamDeadlineAfterClose: a deadline set after Close, or racing
// with it (an rpc server sets one before every request), does not revive
// the stream's reads.
func TestStreamDeadlineAfterClose(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		s := newStreamPair(t).accepted
		s.Close()
		for _, set := range []struct {
			name string
			f    func(time.Time) error
		}{{"SetDeadline", s.SetDeadline}, {"SetReadDeadline", s.SetReadDeadline}} {
			set.f(time.Time{})
			// Read through the yamux stream itself: Stream.Read would
			// refuse before looking at the deadline.
			done := make(chan error, 1)
			go func() {
				_, err := s.Conn.Read(make([]byte, 1))
				done <- err
			}()
			time.Sleep(time.Nanosecond) // the woken Read's deadline (see soon)
			synctest.Wait()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("%s(zero) after Close: Read succeeded", set.name)
				}
			default:
				t.Errorf("%s(zero) after Close: Read blocks again", set.name)
				s.Conn.SetReadDeadline(time.Now().Add(time.Nanosecond))
				<-done
			}
		}
	})
}

// TestStreamPeerName: streams tell their peer's name to code that gets
// them as a net.Conn.
func TestStreamPeerName(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		p := newStreamPair(t)
		opened, accepted := p.opened, p.accepted
		for _, tc := range []struct {
			conn net.Conn
			want string
		}{{opened, "b"}, {accepted, "a"}} {
			p, ok := tc.conn.(interface{ PeerName() string })
			if !ok {
				t.Fatalf("%T has no PeerName", tc.conn)
			}
			if got := p.PeerName(); got != tc.want {
				t.Errorf("PeerName() = %q, want %q", got, tc.want)
			}
		}
		opened.Close()
		accepted.Close()
	})
}

// endedWithError fails the test unless what, whose outcome ch carries,
// has failed by the time everything Close woke has run.
func endedWithError(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	time.Sleep(time.Nanosecond) // a woken Read's deadline (see soon)
	synctest.Wait()
	select {
	case err := <-ch:
		if err == nil {
			t.Errorf("%s succeeded after Close", what)
		}
	default:
		t.Errorf("%s still blocked after Close", what)
	}
}

// returnsWithin runs f and fails the test, with every goroutine's stack,
// if it has not returned after d of virtual time.
func returnsWithin(t *testing.T, what string, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s has not returned after %v; goroutines:\n%s", what, d, buf)
	}
}

// closeBound bounds a Network's Close in these tests, in virtual time: a
// TLS close_notify to a peer that reads nothing waits up to 5 s.
const closeBound = 10 * time.Second

// TestCloseEndsRetiredSession: a session replaced by a newer one from the
// same dialer is retired, not closed, while a stream on it is open (the
// peer's pooled stream here, idle). Close of the Network closes it anyway
// and ends the Read blocked on that stream, well before the drain
// timeout.
func TestCloseEndsRetiredSession(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		p := newStreamPair(t)
		c, a, b, accepted := p.c, p.a, p.b, p.accepted
		old := b.net.current("a")
		done := pendingRead(accepted, 0)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nl, err := a.net.dialAddr(ctx, "b", c.resolve("b")[0])
		if err != nil {
			t.Fatalf("dialAddr(b) = %v", err)
		}
		if cur, err := a.net.adopt(nl); err != nil || cur != nl {
			t.Fatalf("adopt(newer session) = %v, %v; want it adopted", cur, err)
		}
		synctest.Wait()
		if b.net.current("a") == old || old.sess.IsClosed() {
			t.Fatalf("b's old session: current %v, closed %v; want retired and open", b.net.current("a") == old, old.sess.IsClosed())
		}
		if len(b.logs.lines("peer link replaced", `old_dialer=a`)) != 1 {
			t.Errorf("b did not log the replacement:\n%s", b.logs)
		}

		returnsWithin(t, "Close of b", closeBound, b.stop)
		synctest.Wait()
		if !old.sess.IsClosed() {
			t.Errorf("retired session still open after Close")
		}
		endedWithError(t, done, "Read on the retired session's stream")
		returnsWithin(t, "Close of a", closeBound, a.stop)
	})
}

// stallConn stops reading once stalled, as a peer whose process hangs
// does while its kernel keeps the connection open: the other end's writes
// block once the pipe holds nothing more. Close ends a stalled Read.
type stallConn struct {
	net.Conn
	stalled   chan struct{} // closed by stall
	closed    chan struct{} // closed by Close
	stallOnce sync.Once
	closeOnce sync.Once
}

func newStallConn(c net.Conn) *stallConn {
	return &stallConn{Conn: c, stalled: make(chan struct{}), closed: make(chan struct{})}
}

func (c *stallConn) stall() { c.stallOnce.Do(func() { close(c.stalled) }) }

func (c *stallConn) Read(p []byte) (int, error) {
	select {
	case <-c.stalled:
		<-c.closed
		return 0, net.ErrClosed
	default:
		return c.Conn.Read(p)
	}
}

func (c *stallConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestCloseWithStalledPeer: the peer stops reading but keeps the
// connection open while a large write is under way on a stream to it:
// the writer is blocked (yamux's window, then the connection itself).
// Close returns anyway and the Write fails; the stalled peer's Close
// returns too.
func TestCloseWithStalledPeer(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{}
		c := newCluster(t)
		c.listen = mem.listen
		var (
			mu     sync.Mutex
			stalls []*stallConn
		)
		c.dial = func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := mem.dial(ctx, addr)
			if err != nil {
				return nil, err
			}
			sc := newStallConn(conn)
			mu.Lock()
			stalls = append(stalls, sc)
			mu.Unlock()
			return sc, nil
		}
		a := c.start("a", nil) // dials, and stalls
		b := c.start("b", nil)
		opened, accepted := idleStream(t, a, b)
		defer opened.Close()
		mu.Lock()
		for _, sc := range stalls {
			sc.stall()
		}
		mu.Unlock()

		written := make(chan error, 1)
		go func() {
			_, err := accepted.Write(make([]byte, 4<<20))
			written <- err
		}()
		synctest.Wait()
		select {
		case err := <-written:
			t.Fatalf("Write of 4 MiB to a stalled peer returned %v", err)
		default:
		}

		returnsWithin(t, "Close of b", closeBound, b.stop)
		endedWithError(t, written, "Write to a stalled peer")
		returnsWithin(t, "Close of a", closeBound, a.stop)
	})
}

// TestCloseDuringJoin: a joiner that completed the handshake and sends
// nothing holds a Join handler in a read with a long deadline, as the
// node's does. Close ends that read and returns without waiting for the
// deadline.
func TestCloseDuringJoin(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{}
		c := newCluster(t)
		c.dial, c.listen = mem.dial, mem.listen
		joined := make(chan error, 1)
		srv := c.start("srv", func(cfg *Config) {
			cfg.Join = func(ctx context.Context, conn *tls.Conn) {
				conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				_, err := conn.Read(make([]byte, 64))
				joined <- err
			}
		})
		raw, err := mem.dial(context.Background(), srv.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		conn := tls.Client(raw, &tls.Config{
			RootCAs: c.ca.pool, ServerName: "srv", NextProtos: []string{ALPNJoin}, MinVersion: tls.VersionTLS13,
		})
		if err := conn.Handshake(); err != nil {
			t.Fatalf("join handshake: %v", err)
		}
		// TLS 1.3 sends the session ticket after the handshake: read it,
		// so the server's writes are done before it waits.
		go conn.Read(make([]byte, 1))
		synctest.Wait()

		returnsWithin(t, "Close during a join", closeBound, srv.stop)
		endedWithError(t, joined, "Join's read")
	})
}
