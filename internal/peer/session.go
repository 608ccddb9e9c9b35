package peer

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/yamux"

	"buoy/internal/wire"
)

// Session tuning.
const (
	// kindTimeout bounds how long an accepted stream may take to send its
	// kind byte before it is closed.
	kindTimeout = 5 * time.Second
	// pingTimeout bounds the liveness check of an existing session when a
	// less preferred duplicate arrives.
	pingTimeout = 2 * time.Second
	// streamBacklog bounds both yamux's queue of unaccepted streams and the
	// streams of one session waiting for their kind byte or a listener.
	streamBacklog = 256
	// drainPoll and drainTimeout pace the closing of a replaced session:
	// it is checked for remaining streams every drainPoll and closed after
	// drainTimeout regardless.
	drainPoll    = 100 * time.Millisecond
	drainTimeout = 30 * time.Second
)

// link is one adopted (or about to be adopted) yamux session.
type link struct {
	name    string
	dialer  string
	inbound bool
	remote  net.Addr
	local   net.Addr
	since   time.Time
	sess    *yamux.Session
	// relayed: the connection is spliced through another node.
	relayed bool
	// probe: the dialer opened it to replace a silent session.
	probe bool
	// rc sees every byte that arrives on the connection, under TLS.
	rc *liveConn
	// kick (capacity 1) wakes the session's guard: new candidates for
	// the peer are known (Kick).
	kick chan struct{}
}

// lastRecv returns when anything last arrived on the session.
func (l *link) lastRecv() time.Time {
	if l.rc == nil {
		return l.since
	}
	return l.rc.last()
}

func (l *link) info() Link {
	return Link{Name: l.name, Remote: l.remote, Local: l.local, Inbound: l.inbound, Dialer: l.dialer, Since: l.since}
}

// newLink starts a yamux session over an established TLS connection with
// the peer name.
func (n *Network) newLink(conn *tls.Conn, name string, inbound bool) (*link, error) {
	ycfg := yamux.DefaultConfig()
	ycfg.AcceptBacklog = streamBacklog
	ycfg.EnableKeepAlive = true
	ycfg.KeepAliveInterval = 5 * time.Second
	ycfg.ConnectionWriteTimeout = 10 * time.Second
	ycfg.StreamOpenTimeout = 30 * time.Second
	ycfg.StreamCloseTimeout = time.Minute
	ycfg.LogOutput = nil
	ycfg.Logger = yamuxLogger{n.ctx, n.log.With("peer", name)}
	var (
		sess *yamux.Session
		err  error
	)
	dialer := n.cfg.Name
	if inbound {
		dialer = name
		sess, err = yamux.Server(newCoalesceConn(conn), ycfg)
	} else {
		sess, err = yamux.Client(newCoalesceConn(conn), ycfg)
	}
	if err != nil {
		return nil, fmt.Errorf("start session with %s: %w", name, err)
	}
	rc, _ := conn.NetConn().(*liveConn)
	return &link{
		name: name, dialer: dialer, inbound: inbound,
		remote: conn.RemoteAddr(), local: conn.LocalAddr(),
		since: time.Now(), sess: sess,
		relayed: conn.RemoteAddr() != nil && conn.RemoteAddr().Network() == RelayNetwork,
		rc:      rc, kick: make(chan struct{}, 1),
	}, nil
}

// preferred reports whether session a should win over session b for the
// same peer. Both sides of a pair apply the same rule and so agree: a
// direct session wins over a relayed one (a relayed session rides on
// other links, which may in turn be replaced by it); then a newer session
// from the same dialer replaces the older one (that dialer had lost the
// old one); otherwise the session dialed by the lexicographically smaller
// name wins.
func preferred(a, b *link) bool {
	if a.relayed != b.relayed {
		return !a.relayed
	}
	if a.dialer == b.dialer {
		return true
	}
	return a.dialer < b.dialer
}

// supersedes decides between a new session nl and the current live one
// old (nil if none) for the same peer: whether nl replaces old, and if so
// whether old is closed at once rather than retired.
//
// A probe replaces a session older than SuspectAfter whatever the
// tie-break: its dialer found the session silent for that long and still
// silent when the probe came up, so the session is broken at least one
// way, and its streams are cut so that their owners (Raft) redial at once
// rather than wait on it. A younger session cannot be the one the prober
// suspected: it arrived meanwhile, and both ends settle the pair by the
// usual rule. A session silent for SuspectAfter on this side is dead too.
// Otherwise preferred decides, and the loser is retired.
func (n *Network) supersedes(nl, old *link, now time.Time) (replace, closeOld bool) {
	switch {
	case old == nil:
		return true, true
	case nl.probe && (old.dialer == nl.dialer || now.Sub(old.since) >= n.cfg.SuspectAfter):
		return true, true
	case n.silent(old, now):
		return true, true
	}
	return preferred(nl, old), false
}

// silent reports whether l has received nothing for SuspectAfter.
func (n *Network) silent(l *link, now time.Time) bool {
	return n.cfg.SuspectAfter > 0 && now.Sub(l.lastRecv()) >= n.cfg.SuspectAfter
}

// adopt makes nl the session for its peer, or closes it as a duplicate
// (see supersedes). When nl loses to a live session, that session is
// pinged first and replaced if the ping fails (it may be half-open while
// the peer already redialed). adopt returns the link that is current
// afterwards (nl or the one it lost to) and starts nl's accept loop and
// guard if adopted.
func (n *Network) adopt(nl *link) (*link, error) {
	pinged := false
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			nl.sess.Close()
			return nil, ErrClosed
		}
		old := n.links[nl.name]
		if old != nil && old.sess.IsClosed() {
			old = nil
		}
		if replace, closeOld := n.supersedes(nl, old, time.Now()); replace {
			n.links[nl.name] = nl
			n.queueEventLocked(linkEvent{up: true, name: nl.name, remote: nl.remote, inbound: nl.inbound})
			n.mu.Unlock()
			// Log before streams can flow, so the line precedes any effect.
			switch {
			case old == nil:
				n.log.Info("peer link up", "peer", nl.name, "remote", nl.remote.String(), "inbound", nl.inbound, "probe", nl.probe)
			case closeOld:
				n.log.Info("peer link replaced, old one closed", "peer", nl.name, "dialer", nl.dialer, "old_dialer", old.dialer,
					"remote", nl.remote.String(), "probe", nl.probe, "old_silent", time.Since(old.lastRecv()).Round(time.Millisecond))
			default:
				n.log.Info("peer link replaced", "peer", nl.name, "dialer", nl.dialer, "old_dialer", old.dialer, "remote", nl.remote.String())
			}
			// adopt runs on a tracked goroutine, so wg.Go is safe even if
			// Close started meanwhile; Close then closes nl, which ends
			// runSession and guard.
			n.wg.Go(func() { n.runSession(nl) })
			if n.cfg.SuspectAfter > 0 {
				n.wg.Go(func() { n.guard(nl) })
			}
			switch {
			case old == nil:
			case closeOld:
				old.sess.Close()
			default:
				n.wg.Go(func() { n.retire(old) })
			}
			return nl, nil
		}
		n.mu.Unlock()
		if pinged {
			n.log.Debug("peer link duplicate closed", "peer", nl.name, "dialer", nl.dialer, "kept_dialer", old.dialer)
			nl.sess.Close()
			return old, nil
		}
		pinged = true
		if !n.ping(old.sess) {
			n.log.Info("peer link failed ping, replacing", "peer", nl.name)
			old.sess.Close()
		}
	}
}

// retire closes a replaced session once it carries no stream, or after
// drainTimeout, so that streams opened on it while both sides were still
// settling on one session are not cut. The peer may still open streams on
// it until it adopts the replacement too; they are accepted as usual. It
// exits when the session is closed (by itself, Disconnect or Close).
func (n *Network) retire(l *link) {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	deadline := time.Now().Add(drainTimeout)
	for {
		select {
		case <-l.sess.CloseChan():
			return
		case <-n.ctx.Done():
			l.sess.Close()
			return
		case now := <-t.C:
			if l.sess.NumStreams() == 0 || now.After(deadline) {
				l.sess.Close()
				return
			}
		}
	}
}

// ping reports whether sess answers a yamux ping within pingTimeout. The
// ping runs on a tracked goroutine; it returns once sess answers, fails or
// is closed (which the caller does when ping reports false).
func (n *Network) ping(sess *yamux.Session) bool {
	res := make(chan error, 1)
	n.wg.Go(func() {
		_, err := sess.Ping()
		res <- err
	})
	t := time.NewTimer(pingTimeout)
	defer t.Stop()
	select {
	case err := <-res:
		return err == nil
	case <-t.C:
		return false
	case <-n.ctx.Done():
		return false
	}
}

// runSession accepts the streams of an adopted session until it closes,
// then removes it from the link table if it is still current. Its exit:
// the session closes (peer gone, replaced, Disconnect or Close).
func (n *Network) runSession(l *link) {
	sem := make(chan struct{}, streamBacklog)
	for {
		st, err := l.sess.AcceptStream()
		if err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-l.sess.CloseChan():
			st.Close()
		}
		if l.sess.IsClosed() {
			break
		}
		n.wg.Go(func() {
			defer func() { <-sem }()
			n.handleStream(l, st)
		})
	}
	l.sess.Close()
	n.mu.Lock()
	current := n.links[l.name] == l
	if current {
		delete(n.links, l.name)
		n.queueEventLocked(linkEvent{name: l.name})
	}
	n.mu.Unlock()
	if current {
		n.log.Info("peer link down", "peer", l.name)
	}
}

// handleStream reads the kind byte of an accepted stream and hands the
// stream to the listener of that kind. A bad or late header, or a kind
// nobody listens to, closes this stream only.
func (n *Network) handleStream(l *link, st *yamux.Stream) {
	st.SetReadDeadline(time.Now().Add(kindTimeout))
	kind, err := wire.ReadKind(st)
	if err != nil {
		n.log.Warn("peer stream refused", "peer", l.name, "err", err)
		st.Close()
		return
	}
	st.SetReadDeadline(time.Time{})
	n.mu.Lock()
	ln := n.listeners[kind]
	n.mu.Unlock()
	if ln == nil {
		n.log.Debug("peer stream of unlistened kind closed", "peer", l.name, "kind", kind)
		st.Close()
		return
	}
	s := &Stream{Conn: st, Peer: l.name, Kind: kind}
	select {
	case ln.ch <- s:
	case <-ln.done:
		st.Close()
	case <-l.sess.CloseChan():
		st.Close()
	case <-n.ctx.Done():
		st.Close()
	}
}

// handleInbound handshakes one raw accepted connection and either adopts
// it as a member link or hands it to Config.Join. It runs on a tracked
// goroutine and returns after the handshake (or when Join returns).
func (n *Network) handleInbound(raw net.Conn) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	conn := tls.Server(newLiveConn(raw), n.serverTLS)
	if err := conn.HandshakeContext(ctx); err != nil {
		n.log.Warn("peer connection refused", "remote", raw.RemoteAddr().String(), "reason", refusalReason(err), "err", err)
		raw.Close()
		return
	}
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol == ALPNJoin {
		if n.cfg.Join == nil {
			n.log.Warn("peer connection refused", "remote", raw.RemoteAddr().String(), "reason", "joining not enabled")
			conn.Close()
			return
		}
		// Join is to return once ctx ends, but a read or write it has
		// under way waits for its own deadline (a join allows 30 s), not
		// for ctx: closing the connection at Close ends it at once.
		stop := context.AfterFunc(n.ctx, func() { raw.Close() })
		n.cfg.Join(n.ctx, conn)
		stop()
		conn.Close()
		return
	}
	// VerifyConnection made sure a peer link has a verified, member name.
	name, err := certName(cs.PeerCertificates[0])
	if err != nil {
		conn.Close()
		return
	}
	intent, err := readIntent(ctx, conn)
	if err != nil {
		// The dialer raced several addresses of ours and another one won,
		// or it gave up: not a refusal.
		n.log.Debug("peer connection dropped by its dialer before use", "peer", name, "remote", raw.RemoteAddr().String(), "err", err)
		conn.Close()
		return
	}
	if intent != intentLink && intent != intentProbe {
		n.log.Warn("peer connection refused", "peer", name, "remote", raw.RemoteAddr().String(), "reason", "unknown session intent", "intent", intent)
		conn.Close()
		return
	}
	l, err := n.newLink(conn, name, true)
	if err != nil {
		n.log.Warn("peer link not started", "peer", name, "err", err)
		conn.Close()
		return
	}
	l.probe = intent == intentProbe
	n.adopt(l) // errors mean closed or duplicate; adopt logs and closes
}

// readIntent reads the session intent byte the dialer sends after the
// handshake, within ctx's deadline.
func readIntent(ctx context.Context, conn *tls.Conn) (byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	// Close cancels ctx: a read is woken by a deadline, not by that.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	var b [1]byte
	_, err := io.ReadFull(conn, b[:])
	if !stop() {
		// The deadline may have been moved after the read: the connection
		// is not fit for a session.
		return 0, fmt.Errorf("read session intent: %w", ctx.Err())
	}
	if err != nil {
		return 0, fmt.Errorf("read session intent: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return b[0], nil
}

// Listener delivers the streams of one kind opened by peers. It
// implements net.Listener so hashicorp/raft can use it as a StreamLayer.
type Listener struct {
	n    *Network
	kind wire.Kind
	ch   chan *Stream
	done chan struct{}
}

// Listen returns the listener for streams of kind opened by peers. There
// is one per kind: while it is open, Listen returns the same one; after its
// Close, Listen makes a new one. Streams of a kind nobody listens to are
// closed on arrival. After Close of the Network, the listener returned is
// already closed.
func (n *Network) Listen(kind wire.Kind) *Listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.listeners[kind]; l != nil {
		return l
	}
	l := &Listener{n: n, kind: kind, ch: make(chan *Stream), done: make(chan struct{})}
	if n.closed {
		close(l.done)
		return l
	}
	n.listeners[kind] = l
	return l
}

// Accept returns the next stream of the listener's kind as a *Stream.
func (l *Listener) Accept() (net.Conn, error) {
	return l.AcceptStream()
}

// AcceptStream returns the next stream of the listener's kind. It returns
// ErrClosed once the listener or the Network is closed.
func (l *Listener) AcceptStream() (*Stream, error) {
	for {
		select {
		case s := <-l.ch:
			// The echo tells the opener that the stream is taken. Nothing
			// has been written on the stream yet, so the write fits in
			// yamux's initial window and does not block.
			if _, err := s.Write([]byte{byte(s.Kind)}); err != nil {
				l.n.log.Debug("peer stream gone before acceptance", "peer", s.Peer, "kind", s.Kind, "err", err)
				s.Close()
				continue
			}
			return s, nil
		case <-l.done:
			return nil, fmt.Errorf("accept %s streams: %w", l.kind, ErrClosed)
		}
	}
}

// Close stops delivery of this kind; streams of it arriving later are
// closed. It is safe to call more than once.
func (l *Listener) Close() error {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	if l.n.listeners[l.kind] == l {
		delete(l.n.listeners, l.kind)
	}
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

// Addr returns this node's name: peers are addressed by name, and
// hashicorp/raft takes Addr().String() as the local server address.
func (l *Listener) Addr() net.Addr { return Addr(l.n.cfg.Name) }

// Addr is a node name used as a net.Addr.
type Addr string

// Network returns "buoy".
func (a Addr) Network() string { return "buoy" }

// String returns the node name.
func (a Addr) String() string { return string(a) }

// yamuxLogger routes yamux's log lines to slog, at a level taken from
// yamux's "[ERR]"/"[WARN]" prefixes.
type yamuxLogger struct {
	ctx context.Context
	log *slog.Logger
}

func (y yamuxLogger) Print(v ...any)                 { y.emit(fmt.Sprint(v...)) }
func (y yamuxLogger) Printf(format string, v ...any) { y.emit(fmt.Sprintf(format, v...)) }
func (y yamuxLogger) Println(v ...any)               { y.emit(fmt.Sprintln(v...)) }

func (y yamuxLogger) emit(msg string) {
	msg = strings.TrimSpace(msg)
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(msg, "[ERR]"):
		level = slog.LevelWarn
	case strings.HasPrefix(msg, "[WARN]"):
		level = slog.LevelInfo
	}
	y.log.Log(y.ctx, level, msg)
}
