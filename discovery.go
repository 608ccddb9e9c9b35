package buoy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"buoy/internal/discovery"
	"buoy/internal/peer"
	"buoy/internal/wire"
)

// DefaultHeartbeat is how often each link carries a heartbeat.
const DefaultHeartbeat = time.Second

// silenceLimit is how long a control stream may stay silent before the
// link is taken for dead: two and a half heartbeats, so one late beat on a
// busy machine does not cut a healthy link.
func silenceLimit(interval time.Duration) time.Duration { return interval * 5 / 2 }

// linkSuspectAfter is how long a link may receive nothing at all before it is
// suspect: the peer layer then probes the peer in the background (a dial
// that replaces the link if it comes up while the link stays silent), and
// the peer's view of our address stops counting in the vote. A bit more
// than one heartbeat: every link carries a heartbeat each way every
// interval, so a healthy link is suspected only when a beat is late, and
// that costs one dial.
func linkSuspectAfter(interval time.Duration) time.Duration { return interval * 6 / 5 }

// incarnationFile keeps the incarnation of the last address record this
// node signed, so a restarted node starts above what its peers hold.
const incarnationFile = "incarnation"

// disco runs address discovery for a node: the pure state of package
// discovery, fed by the control stream of every peer link.
type disco struct {
	n        *Node
	self     *discovery.Self
	own      *discovery.Own
	book     *discovery.Book
	sign     discovery.Signer
	interval time.Duration

	// pubMu serializes publish. changed runs on many goroutines at once,
	// and a record one of them built first must not be persisted or sent
	// after, and so instead of, the newer record another one built.
	pubMu sync.Mutex

	// mu guards the following fields.
	mu        sync.Mutex
	links     map[string]*ctlLink
	signed    wire.SignedRecord
	best      map[string]netip.AddrPort // last address reported per node, for callbacks
	callbacks []func(name string, old, new netip.AddrPort)
	selfAddr  netip.AddrPort
	// unverified holds nodes whose records were refused because the
	// replicated state did not know their key yet (after a restart or a
	// join, until Raft catches up); tick asks the links for them again
	// once it does, rather than wait for their next periodic resend.
	unverified map[string]bool
}

// maxUnverified bounds disco.unverified: names come from peers' records.
const maxUnverified = 256

// ctlLink is the sending half of one peer's control stream.
type ctlLink struct {
	out    chan wire.ControlMsg
	cancel context.CancelFunc
}

func newDisco(n *Node) (*disco, error) {
	now := time.Now()
	prev, err := readIncarnation(n.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	d := &disco{
		n:          n,
		sign:       discovery.Ed25519Signer(n.id.Key),
		interval:   n.cfg.Heartbeat,
		links:      map[string]*ctlLink{},
		best:       map[string]netip.AddrPort{},
		unverified: map[string]bool{},
	}
	d.book, err = discovery.NewBook(discovery.BookConfig{
		Self:   n.cfg.Name,
		Verify: discovery.Ed25519Verifier(n.memberKey),
	})
	if err != nil {
		return nil, err
	}
	d.self = discovery.NewSelf(discovery.SelfConfig{Peers: d.book})
	own, rec, err := discovery.NewOwn(n.cfg.Name, uint16(listenPort(n.peerL)), prev, now)
	if err != nil {
		return nil, err
	}
	d.own = own
	if err := d.publish(rec); err != nil {
		return nil, err
	}
	return d, nil
}

// memberKey returns a member's node key from the replicated state, or the
// key in its certificate when it is linked to us right now and the state
// has not caught up.
func (n *Node) memberKey(name string) (ed25519.PublicKey, error) {
	m, ok := n.fsm.View().Members[name]
	if ok && m.Left {
		return nil, fmt.Errorf("%s has left the cluster", name)
	}
	if ok && len(m.PublicKey) == ed25519.PublicKeySize {
		return ed25519.PublicKey(m.PublicKey), nil
	}
	return nil, fmt.Errorf("no key known for %s", name)
}

func readIncarnation(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, incarnationFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, nil // damaged: NextIncarnation's clock floor still moves us ahead
	}
	return v, nil
}

// publish persists, signs and spreads a new own record.
func (d *disco) publish(rec discovery.Record) error {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	d.mu.Lock()
	held := d.signed.Record.Incarnation
	d.mu.Unlock()
	if rec.Incarnation <= held {
		return nil // a newer record went out first
	}
	if err := writeFileAtomic(filepath.Join(d.n.cfg.DataDir, incarnationFile), []byte(strconv.FormatUint(rec.Incarnation, 10)+"\n"), 0o600); err != nil {
		return err
	}
	sr, err := discovery.Sign(rec, d.sign)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.signed = sr
	d.mu.Unlock()
	d.broadcast("", wire.ControlMsg{Type: wire.ControlRecordPush, Push: &wire.RecordPush{Records: []wire.SignedRecord{sr}}})
	return nil
}

// broadcast queues m on every link but except's.
func (d *disco) broadcast(except string, m wire.ControlMsg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, l := range d.links {
		if name != except {
			l.send(m)
		}
	}
}

// send queues m without blocking; a link too slow to take it loses it (the
// next heartbeat or query repairs what it missed).
func (l *ctlLink) send(m wire.ControlMsg) {
	select {
	case l.out <- m:
	default:
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// linkUp starts the control sender for a new (or replaced) session.
func (d *disco) linkUp(name string, remote net.Addr, inbound bool) {
	now := time.Now()
	// What the node knew of the peer before discovery did (the saved
	// peer list, the member record) ranks last, but gives the peer's
	// listening port: with it, the address a peer dials us from is a
	// candidate before its record is in, which after a restart waits
	// until Raft has replayed the key that verifies it.
	for _, a := range d.n.book.get(name) {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			_ = d.book.Hint(name, ap, now) // refused hints are of no use anyway
		}
	}
	if m, ok := d.n.fsm.View().Members[name]; ok {
		if ap, err := netip.ParseAddrPort(m.Address); err == nil {
			_ = d.book.Hint(name, ap, now)
		}
	}
	// A relayed link has no address (ap is invalid): it only marks the
	// peer up.
	d.book.LinkUp(name, addrPortOf(remote), !inbound, now)
	ctx, cancel := context.WithCancel(d.n.ctx)
	l := &ctlLink{out: make(chan wire.ControlMsg, 64), cancel: cancel}
	d.mu.Lock()
	if old := d.links[name]; old != nil {
		old.cancel()
	}
	d.links[name] = l
	d.mu.Unlock()
	if q := d.book.Unreachable(); len(q) > 0 {
		l.send(wire.ControlMsg{Type: wire.ControlRecordQuery, Query: &wire.RecordQuery{Nodes: q}})
	}
	d.n.wg.Go(func() { d.runSender(ctx, name, l) })
	d.changed(now)
}

// suspect drops the view of us that name's link gave: that link has been
// silent for linkSuspectAfter, so we may have moved since. Observations from
// the links that still work then decide the vote: when this node and
// others moved at once, the links among the movers all go silent, and
// their stale views would otherwise outvote the one peer that sees where
// we are now until the links are dropped. The peer's next heartbeat, on
// this link or the probe's, brings its view back.
func (d *disco) suspect(name string) {
	now := time.Now()
	d.self.Forget(name, now)
	d.changed(now)
}

func (d *disco) linkDown(name string) {
	now := time.Now()
	d.mu.Lock()
	if l := d.links[name]; l != nil {
		l.cancel()
		delete(d.links, name)
	}
	d.mu.Unlock()
	d.book.LinkDown(name, now)
	d.self.Forget(name, now)
	d.changed(now)
}

// runSender opens the control stream to name and sends a heartbeat every
// interval plus whatever is queued, until the link goes or the node stops.
func (d *disco) runSender(ctx context.Context, name string, l *ctlLink) {
	defer l.cancel()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := d.n.net.Open(octx, name, wire.KindControl)
	cancel()
	if err != nil {
		d.n.log.Debug("control stream", "peer", name, "err", err)
		return
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	youAre := ""
	if ap := addrPortOf(st.RemoteAddr()); ap.IsValid() {
		youAre = ap.String() // empty for a WebSocket: we see the proxy, not the peer
	}
	t := time.NewTicker(d.interval)
	defer t.Stop()
	var seq uint64
	var sentInc uint64
	for {
		seq++
		hb := wire.Heartbeat{Seq: seq, SentAt: time.Now().UnixNano(), YouAre: youAre}
		d.mu.Lock()
		sr := d.signed
		d.mu.Unlock()
		// Our record rides on the first heartbeat, on every change, and
		// every tenth beat so a peer that lost it gets it back.
		if sr.Record.Incarnation != sentInc || seq%10 == 1 {
			hb.Record = &sr
			sentInc = sr.Record.Incarnation
		}
		_ = st.SetWriteDeadline(time.Now().Add(5 * d.interval))
		if err := wire.WriteControl(st, wire.ControlMsg{Type: wire.ControlHeartbeat, Heartbeat: &hb}); err != nil {
			return
		}
		for drained := false; !drained; {
			select {
			case m := <-l.out:
				if err := wire.WriteControl(st, m); err != nil {
					return
				}
			case <-t.C:
				drained = true
			case <-ctx.Done():
				return
			}
		}
	}
}

// serve reads the control streams peers open to us.
func (d *disco) serve(ln *peer.Listener) {
	for {
		st, err := ln.AcceptStream()
		if err != nil {
			return
		}
		d.n.wg.Go(func() { d.readStream(st) })
	}
}

func (d *disco) readStream(st *peer.Stream) {
	defer st.Close()
	stop := context.AfterFunc(d.n.ctx, func() { st.Close() })
	defer stop()
	local, remote := addrPortOf(st.LocalAddr()), addrPortOf(st.RemoteAddr())
	outbound := false
	for _, l := range d.n.net.Links() {
		if l.Name == st.Peer {
			outbound = !l.Inbound
		}
	}
	for {
		_ = st.SetReadDeadline(time.Now().Add(silenceLimit(d.interval)))
		m, err := wire.ReadControl(st)
		if errors.Is(err, wire.ErrUnknownControl) {
			continue // from a newer node: skip it, keep the stream
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			// A peer whose address vanished (an ISP change, a new DHCP
			// lease) leaves its TCP connection silent, not reset: the
			// kernel would notice only after many retransmissions. Missed
			// heartbeats are the fast signal. Drop the link if it is still
			// this one, so both sides redial the new addresses now.
			for _, l := range d.n.net.Links() {
				if l.Name == st.Peer && addrPortOf(l.Local) == local && addrPortOf(l.Remote) == remote {
					d.n.log.Info("peer silent, dropping link", "peer", st.Peer, "after", silenceLimit(d.interval))
					d.n.net.Disconnect(st.Peer)
				}
			}
			return
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				d.n.log.Debug("control stream ended", "peer", st.Peer, "err", err)
			}
			return
		}
		d.handle(st.Peer, m, local, remote, outbound)
	}
}

func (d *disco) handle(from string, m wire.ControlMsg, local, remote netip.AddrPort, outbound bool) {
	now := time.Now()
	switch m.Type {
	case wire.ControlHeartbeat:
		hb := m.Heartbeat
		if hb.Record != nil {
			d.merge(from, *hb.Record, now)
		}
		if hb.YouAre != "" && local.IsValid() && remote.IsValid() {
			o, err := discovery.ObservationFromHeartbeat(from, *hb, local, remote, outbound, now)
			if err == nil {
				_, err = d.self.Observe(o)
			}
			if err != nil {
				d.n.log.Warn("ignoring observation", "peer", from, "you_are", hb.YouAre, "err", err)
			}
		}
	case wire.ControlRecordPush:
		for _, sr := range m.Push.Records {
			d.merge(from, sr, now)
		}
	case wire.ControlRecordQuery:
		recs := d.book.Signed(m.Query.Nodes...)
		if len(m.Query.Nodes) == 0 || slices.Contains(m.Query.Nodes, d.n.cfg.Name) {
			d.mu.Lock()
			recs = append(recs, d.signed)
			d.mu.Unlock()
		}
		if len(recs) > 0 {
			d.mu.Lock()
			if l := d.links[from]; l != nil {
				l.send(wire.ControlMsg{Type: wire.ControlRecordPush, Push: &wire.RecordPush{Records: recs}})
			}
			d.mu.Unlock()
		}
	}
	d.changed(now)
}

// merge takes a record from a peer: a newer one is passed on to every
// other link at once, and its subject is redialed with the new addresses.
func (d *disco) merge(from string, sr wire.SignedRecord, now time.Time) {
	rec, outcome, err := d.book.Merge(sr, now)
	switch outcome {
	case discovery.Accepted:
		d.broadcast(from, wire.ControlMsg{Type: wire.ControlRecordPush, Push: &wire.RecordPush{Records: []wire.SignedRecord{sr}}})
		// Also when a link is up: a silent one is probed at the new
		// addresses at once (a healthy one is left alone).
		d.n.net.Kick(rec.Node)
	case discovery.Ours:
		// A record of ours newer than we remember (we restarted and lost
		// our incarnation): jump above it.
		if r, changed := d.own.Supersede(rec.Incarnation, now); changed {
			if err := d.publish(r); err != nil {
				d.n.log.Error("publishing own record", "err", err)
			}
		}
	case discovery.Refused:
		if _, kerr := d.n.memberKey(sr.Record.Node); kerr == nil {
			// The key is known and the record still does not check: a
			// peer that lies or is broken.
			d.n.log.Warn("refused address record", "from", from, "subject", sr.Record.Node, "err", err)
		} else {
			// No key yet (this node's state is catching up, as right
			// after a join): asked again once the key is replicated.
			d.n.log.Debug("address record not verifiable yet", "from", from, "subject", sr.Record.Node, "err", err)
			d.mu.Lock()
			if len(d.unverified) < maxUnverified {
				d.unverified[sr.Record.Node] = true
			}
			d.mu.Unlock()
		}
	}
}

// verifiable returns the nodes of unverified whose key the replicated
// state now knows, and forgets them and those that left.
func (d *disco) verifiable() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name := range d.unverified {
		if _, err := d.n.memberKey(name); err == nil {
			out = append(out, name)
			delete(d.unverified, name)
		} else if m, ok := d.n.fsm.View().Members[name]; ok && m.Left {
			delete(d.unverified, name)
		}
	}
	slices.Sort(out)
	return out
}

// changed runs after anything that may move an address: it republishes
// our own record if the vote moved, and reports address changes.
func (d *disco) changed(now time.Time) {
	if rec, changed := d.own.Update(d.self, now); changed {
		d.book.SetSelfAddrs(d.self.Addresses())
		if err := d.publish(rec); err != nil {
			d.n.log.Error("publishing own record", "err", err)
		}
		d.n.log.Info("own address record changed", "incarnation", rec.Incarnation, "addrs", fmt.Sprint(rec.Addrs), "nat", rec.NAT)
	}
	type change struct {
		name     string
		old, new netip.AddrPort
	}
	var changes []change
	d.mu.Lock()
	if ap := d.selfAddrLocked(); ap != d.selfAddr {
		changes = append(changes, change{d.n.cfg.Name, d.selfAddr, ap})
		d.selfAddr = ap
	}
	for _, name := range d.book.Peers() {
		var cur netip.AddrPort
		if c := d.book.Candidates(name, now); len(c) > 0 {
			cur = c[0]
		}
		if cur.IsValid() && cur != d.best[name] {
			changes = append(changes, change{name, d.best[name], cur})
			d.best[name] = cur
			// Into the saved peer list too (tick saves it): a node that
			// restarts after its peers moved, perhaps on an address of
			// its own that nobody knows, can only find them there.
			d.n.book.learn(name, cur.String())
		}
	}
	cbs := slices.Clone(d.callbacks)
	d.mu.Unlock()
	for _, c := range changes {
		for _, cb := range cbs {
			cb(c.name, c.old, c.new)
		}
	}
}

// onChange registers an internal address-change callback.
func (d *disco) onChange(f func(name string, old, new netip.AddrPort)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.callbacks = append(d.callbacks, f)
}

func (d *disco) selfAddrLocked() netip.AddrPort {
	port := uint16(listenPort(d.n.peerL))
	for _, f := range []discovery.Family{discovery.IPv4, discovery.IPv6} {
		if a := d.self.Address(f); a.IsValid() {
			return netip.AddrPortFrom(a, port)
		}
	}
	return netip.AddrPort{}
}

// tick runs the periodic duties: expire old observations, and ask every
// connected peer about the peers we cannot reach.
func (d *disco) tick() {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-d.n.ctx.Done():
			return
		}
		now := time.Now()
		d.self.Expire(now)
		if want := d.book.Wanted(now); len(want) > 0 {
			d.broadcast("", wire.ControlMsg{Type: wire.ControlRecordQuery, Query: &wire.RecordQuery{Nodes: want}})
		}
		if ask := d.verifiable(); len(ask) > 0 {
			d.broadcast("", wire.ControlMsg{Type: wire.ControlRecordQuery, Query: &wire.RecordQuery{Nodes: ask}})
		}
		d.changed(now)
		if err := d.n.book.save(); err != nil {
			d.n.log.Warn("saving peer addresses", "err", err)
		}
	}
}

// candidates are the addresses discovery ranks for a peer, as host:port.
func (d *disco) candidates(name string) []string {
	var out []string
	for _, ap := range d.book.Candidates(name, time.Now()) {
		out = append(out, ap.String())
	}
	return out
}
