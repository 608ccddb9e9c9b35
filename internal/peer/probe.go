package peer

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// liveConn wraps a raw connection, under TLS, and notes when bytes last
// arrived on it: the liveness of a session whatever carries it (heartbeats,
// Raft, yamux's own pings).
type liveConn struct {
	net.Conn
	// base carries a monotonic clock reading; lastNs is the time of the
	// last read that returned data, as nanoseconds after base, so that a
	// jump of the wall clock does not look like silence.
	base   time.Time
	lastNs atomic.Int64
}

func newLiveConn(c net.Conn) *liveConn { return &liveConn{Conn: c, base: time.Now()} }

// Read reads from the connection and notes the time if data arrived.
func (c *liveConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastNs.Store(int64(time.Since(c.base)))
	}
	return n, err
}

// last returns when data last arrived (or when the connection was made).
func (c *liveConn) last() time.Time { return c.base.Add(time.Duration(c.lastNs.Load())) }

// probeTimeout bounds each attempt of a probe.
func (n *Network) probeTimeout() time.Duration {
	return min(n.cfg.HandshakeTimeout, maxProbeTimeout)
}

// guard watches an adopted session for silence. Once nothing has arrived
// on it for SuspectAfter it reports OnSuspect and probes the peer (see
// probe), and probes again after each further SuspectAfter of silence; a
// Kick while the session is suspect probes at once with the new
// candidates. A relayed session is tried for a direct one (see upgrade)
// once at the start, since the candidates may have changed while the
// relayed dial won its race, and again on every Kick. guard exits when the
// session closes (dropped, Disconnect) or is no longer the current one
// (replaced), or on Close.
func (n *Network) guard(l *link) {
	t := time.NewTimer(n.cfg.SuspectAfter)
	defer t.Stop()
	upgrade := l.relayed
	for {
		if upgrade && n.current(l.name) == l {
			n.upgrade(l)
		}
		upgrade = false
		kicked := false
		select {
		case <-t.C:
		case <-l.kick:
			kicked = true
		case <-l.sess.CloseChan():
			return
		case <-n.ctx.Done():
			return
		}
		if wait := n.suspectAfter(l, time.Now()) - time.Since(l.lastRecv()); wait > 0 {
			upgrade = kicked && l.relayed
			t.Reset(wait)
			continue
		}
		n.mu.Lock()
		current := n.links[l.name] == l
		if current {
			n.queueEventLocked(linkEvent{suspect: true, name: l.name})
		}
		n.mu.Unlock()
		if !current {
			return // a retired session is not probed for
		}
		n.probe(l)
		t.Reset(n.cfg.SuspectAfter)
	}
}

// probe dials the peer of the silent session l at all its candidates
// (race, with the short probeTimeout per attempt), while l stays up. It
// uses the connection that wins only if l is still the current session and
// has stayed silent since the probe began: the probe then replaces it on
// both ends (intentProbe, see supersedes). Otherwise, or if every attempt
// fails, l is left as it was; its guard probes again after another
// SuspectAfter of silence, and whoever owns the session's liveness (the
// heartbeat reader) drops it if it stays silent. probe returns when the
// race is over, or early when l closes.
//
// Both ends of a silent session probe. When one of them moved, only its
// probe can succeed (the other dials the address it left, in vain and in
// the background); when both can, the first probe to arrive wins and the
// later one finds its session replaced and is dropped unused.
func (n *Network) probe(l *link) {
	start := time.Now()
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	n.wg.Go(func() {
		select {
		case <-l.sess.CloseChan():
			cancel()
		case <-ctx.Done():
		}
	})
	n.log.Info("peer silent, probing", "peer", l.name, "silent", start.Sub(l.lastRecv()).Round(time.Millisecond))
	conn, err := n.race(ctx, l.name, raceOpts{timeout: n.probeTimeout(), kick: l.kick})
	if err != nil {
		n.log.Debug("peer probe failed", "peer", l.name, "err", err)
		return
	}
	// Silent at start for SuspectAfter: anything since is not Before it.
	if n.current(l.name) != l || !l.lastRecv().Before(start) {
		conn.Close()
		n.log.Info("peer probe not used: the link is alive or was replaced", "peer", l.name)
		return
	}
	nl, err := n.commit(conn, l.name, intentProbe)
	if err != nil {
		n.log.Debug("peer probe failed", "peer", l.name, "err", err)
		return
	}
	if cur, err := n.adopt(nl); err != nil || cur != nl {
		return // closed or duplicate; adopt logs and closes
	}
	if from, to := localIP(l), localIP(nl); from.IsValid() && to.IsValid() && from != to {
		n.noteMoved(from, to)
	}
}

// movedWindow, in SuspectAfters, is how long after a probe showed that
// this node's local address changed the sessions still on the old address
// are suspected sooner.
const movedWindow = 5

// noteMoved records that a probe came up from local address to while the
// session it replaced used from: this node's address changed, and every
// other session on from is as silent as that one was, not just late. Their
// guards are woken to probe as soon as they have been silent for a
// quarter of SuspectAfter (see suspectAfter) instead of waiting out
// their own SuspectAfter. A session on from that still works (the address
// did not go, the route to its peer just did not change) costs a dial, or
// is swapped for the probe's session if it was quiet all along.
func (n *Network) noteMoved(from, to netip.Addr) {
	n.mu.Lock()
	n.movedFrom, n.movedAt = from, time.Now()
	var kicks []chan struct{}
	for _, o := range n.links {
		if localIP(o) == from {
			kicks = append(kicks, o.kick)
		}
	}
	n.mu.Unlock()
	n.log.Info("local address changed, probing the links still on the old one", "old", from.String(), "new", to.String(), "links", len(kicks))
	for _, c := range kicks {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// suspectAfter is the silence after which l is suspect: SuspectAfter, or
// a quarter of it for a direct session on a local address this node
// recently moved from (noteMoved).
func (n *Network) suspectAfter(l *link, now time.Time) time.Duration {
	n.mu.Lock()
	from, at := n.movedFrom, n.movedAt
	n.mu.Unlock()
	if from.IsValid() && now.Sub(at) < movedWindow*n.cfg.SuspectAfter && localIP(l) == from {
		return n.cfg.SuspectAfter / 4
	}
	return n.cfg.SuspectAfter
}

// localIP returns the local IP address of a direct session, or the zero
// Addr for a relayed one (its local address is that of another link).
func localIP(l *link) netip.Addr {
	if l.relayed || l.local == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(l.local.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// upgrade tries the peer of the relayed session l directly, for when new
// candidates are known: two nodes that lost each other when both moved
// may have linked through a third node before either knew where the other
// went. A direct session that comes up replaces l on both ends (preferred:
// direct wins over relayed); if none does, l stays. It returns when the
// race is over, or early when l closes.
func (n *Network) upgrade(l *link) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	n.wg.Go(func() {
		select {
		case <-l.sess.CloseChan():
			cancel()
		case <-ctx.Done():
		}
	})
	conn, err := n.race(ctx, l.name, raceOpts{timeout: n.probeTimeout(), kick: l.kick, directOnly: true})
	if err != nil {
		n.log.Debug("peer direct dial failed, keeping the relayed link", "peer", l.name, "err", err)
		return
	}
	nl, err := n.commit(conn, l.name, intentLink)
	if err != nil {
		n.log.Debug("peer direct dial failed, keeping the relayed link", "peer", l.name, "err", err)
		return
	}
	n.adopt(nl) // errors mean closed or duplicate; adopt logs and closes
}
