package buoy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"buoy/internal/peer"
	"buoy/internal/wire"
)

// Relaying: two nodes with no direct path (each behind its own NAT) reach
// each other through a node both are linked to. The caller opens a
// relay-kind stream to the relay naming the target; the relay opens one to
// the target naming the caller and splices the two. The two ends then run
// their own TLS 1.3 handshake and yamux session inside the splice, exactly
// as over TCP, so the relay forwards ciphertext it cannot read or forge.

// relayScheme prefixes relay candidates: relay://VIA/TARGET.
const relayScheme = "relay://"

// maxRelays bounds the splices one node carries at once.
const maxRelays = 64

// relayDialTimeout bounds the setup of a relayed connection.
const relayDialTimeout = 10 * time.Second

func relayAddr(via, target string) string { return relayScheme + via + "/" + target }

func parseRelayAddr(addr string) (via, target string, ok bool) {
	rest, found := strings.CutPrefix(addr, relayScheme)
	if !found {
		return "", "", false
	}
	via, target, ok = strings.Cut(rest, "/")
	return via, target, ok && via != "" && target != ""
}

// relayNetAddr is the remote address of a relayed connection.
type relayNetAddr string

func (a relayNetAddr) Network() string { return peer.RelayNetwork }
func (a relayNetAddr) String() string  { return string(a) }

// relayConn is a spliced stream used as a raw connection.
type relayConn struct {
	net.Conn
	remote relayNetAddr
}

func (c *relayConn) RemoteAddr() net.Addr { return c.remote }

// relayState is the node's relay bookkeeping.
type relayState struct {
	ln     *peer.ChanListener // relayed connections for us, to be handshaken
	active atomic.Int32
}

// dialRelay opens a raw connection to target through via.
func (n *Node) dialRelay(ctx context.Context, via, target string) (net.Conn, error) {
	// Only through a relay we already have a direct link to: dialing the
	// relay itself (perhaps through another relay) would nest waits.
	if !n.directLink(via) {
		return nil, fmt.Errorf("relay via %s: no direct link to it", via)
	}
	ctx, cancel := context.WithTimeout(ctx, relayDialTimeout)
	defer cancel()
	st, err := n.net.Open(ctx, via, wire.KindRelay)
	if err != nil {
		return nil, fmt.Errorf("relay via %s: %w", via, err)
	}
	dl, _ := ctx.Deadline()
	_ = st.SetDeadline(dl)
	var ack wire.RelayAck
	err = wire.WriteFrame(st, wire.RelayHello{Op: wire.RelayConnect, Node: target})
	if err == nil {
		err = wire.ReadFrame(st, &ack, 4096)
	}
	if err == nil && ack.Error != "" {
		err = errors.New(ack.Error)
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("relay via %s to %s: %w", via, target, err)
	}
	_ = st.SetDeadline(time.Time{})
	return &relayConn{Conn: st, remote: relayNetAddr(relayAddr(via, target))}, nil
}

// serveRelay takes the relay-kind streams peers open to us.
func (n *Node) serveRelay(ln *peer.Listener) {
	for {
		st, err := ln.AcceptStream()
		if err != nil {
			return
		}
		n.wg.Go(func() { n.handleRelay(st) })
	}
}

func (n *Node) handleRelay(st *peer.Stream) {
	_ = st.SetDeadline(time.Now().Add(relayDialTimeout))
	var h wire.RelayHello
	if err := wire.ReadFrame(st, &h, 4096); err != nil {
		n.log.Info("relay stream: bad request", "peer", st.Peer, "err", err)
		st.Close()
		return
	}
	refuse := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		n.log.Info("relay refused", "peer", st.Peer, "op", h.Op, "node", h.Node, "reason", msg)
		_ = wire.WriteFrame(st, wire.RelayAck{Error: msg})
		st.Close()
	}
	// A restarted node's state may not know every member yet; like the
	// handshake check, refuse only departed members. The TLS handshake
	// inside the splice proves who the caller is.
	known := func(name string) bool { return n.isMember(name) }
	switch h.Op {
	case wire.RelayConnect:
		target := h.Node
		switch {
		case !known(target) || target == st.Peer:
			refuse("%q is not another member", target)
			return
		case target == n.cfg.Name:
			refuse("%s is the relay itself: dial it directly", target)
			return
		case !n.directLink(target):
			refuse("%s has no direct link to %s", n.cfg.Name, target)
			return
		}
		if n.relay.active.Add(1) > maxRelays {
			n.relay.active.Add(-1)
			refuse("%s relays too many connections", n.cfg.Name)
			return
		}
		defer n.relay.active.Add(-1)
		ctx, cancel := context.WithTimeout(n.ctx, relayDialTimeout)
		out, err := n.net.Open(ctx, target, wire.KindRelay)
		cancel()
		if err != nil {
			refuse("reach %s: %v", target, err)
			return
		}
		_ = out.SetDeadline(time.Now().Add(relayDialTimeout))
		var ack wire.RelayAck
		err = wire.WriteFrame(out, wire.RelayHello{Op: wire.RelayDeliver, Node: st.Peer})
		if err == nil {
			err = wire.ReadFrame(out, &ack, 4096)
		}
		if err == nil && ack.Error != "" {
			err = errors.New(ack.Error)
		}
		if err != nil {
			out.Close()
			refuse("%s: %v", target, err)
			return
		}
		if err := wire.WriteFrame(st, wire.RelayAck{}); err != nil {
			out.Close()
			st.Close()
			return
		}
		_ = st.SetDeadline(time.Time{})
		_ = out.SetDeadline(time.Time{})
		n.splice(st, out)
	case wire.RelayDeliver:
		if !known(h.Node) {
			refuse("%q is not a member", h.Node)
			return
		}
		if err := wire.WriteFrame(st, wire.RelayAck{}); err != nil {
			st.Close()
			return
		}
		_ = st.SetDeadline(time.Time{})
		// The TLS handshake inside checks that the caller really is h.Node.
		_ = n.relay.ln.Deliver(n.ctx, &relayConn{Conn: st, remote: relayNetAddr(relayAddr(st.Peer, h.Node))})
	default:
		refuse("unknown relay operation %q", h.Op)
	}
}

// directLink reports whether name is linked to us other than through a relay.
func (n *Node) directLink(name string) bool {
	for _, l := range n.net.Links() {
		if l.Name == name {
			return l.Remote == nil || !strings.HasPrefix(l.Remote.String(), relayScheme)
		}
	}
	return false
}

// splice copies both ways until either side ends or the node stops.
func (n *Node) splice(a, b net.Conn) {
	stop := context.AfterFunc(n.ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// One direction ended: end both, the TLS session inside is over.
		dst.Close()
		src.Close()
	}
	wg.Go(func() { pipe(a, b) })
	pipe(b, a)
	wg.Wait()
}

// relayCandidates are the relays to try for target: the peers this node
// has a direct link to.
func (n *Node) relayCandidates(target string) []string {
	var out []string
	for _, l := range n.net.Links() {
		if l.Name != target && (l.Remote == nil || !strings.HasPrefix(l.Remote.String(), relayScheme)) {
			out = append(out, relayAddr(l.Name, target))
		}
	}
	return out
}
