package clustertest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"buoy/internal/discovery"
	"buoy/internal/peer"
	"buoy/internal/pki"
	"buoy/internal/wire"
)

// rogue is a member gone bad: its buoy.Node is stopped and a hand-driven
// peer endpoint with the same certificate takes its place, speaking the
// control protocol as the test tells it, lies included. It needs no hook
// in the node: a member's certificate is all a liar needs.
type rogue struct {
	name string
	id   *pki.Identity
	net  *peer.Network
	wg   sync.WaitGroup // the accept loop, the keepalive and one reader per control stream
	stop context.CancelFunc
	// wmu serializes writes on the control streams (the test's and the
	// keepalive's).
	wmu sync.Mutex

	// mu guards the following fields.
	mu      sync.Mutex
	got     []received              // control messages peers sent us, in order
	streams map[string]*peer.Stream // our control stream to each victim
}

type received struct {
	from string
	msg  wire.ControlMsg
}

// newRogue stops member name and takes over its identity and host. Its
// Close is registered with t.Cleanup (so it runs before the cluster's).
func newRogue(t *testing.T, c *Cluster, name string) *rogue {
	t.Helper()
	n := c.MustGet(name)
	c.Kill(name)
	n.Host.Up()
	id, err := pki.LoadIdentity(n.Dir)
	if err != nil {
		t.Fatalf("load %s's identity: %v", name, err)
	}
	dial := n.Host.Dialer(PeerPort)
	pn, err := peer.New(peer.Config{
		Name:  name,
		Cert:  id.TLSCertificate(),
		Roots: id.Pool(),
		Resolve: func(victim string) []string {
			if v := c.Get(victim); v != nil {
				return []string{WantAddr(n, v).String()}
			}
			return nil
		},
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		},
		Logger: c.logs.logger().With("node", name, "rogue", true),
	})
	if err != nil {
		t.Fatalf("rogue peer network: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &rogue{name: name, id: id, net: pn, stop: stop, streams: map[string]*peer.Stream{}}
	ln := pn.Listen(wire.KindControl)
	r.wg.Go(func() { r.accept(ln) })
	r.wg.Go(func() { r.keepalive(ctx) })
	t.Cleanup(r.close)
	return r
}

// keepalive sends an empty heartbeat (no view, no record) on every open
// control stream twice a second, as a real node's sender does every
// second, so that victims do not find the rogue's links silent and
// replace them under the test. It ends when ctx does.
func (r *rogue) keepalive(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		r.mu.Lock()
		streams := make([]*peer.Stream, 0, len(r.streams))
		for _, st := range r.streams {
			streams = append(streams, st)
		}
		r.mu.Unlock()
		for _, st := range streams {
			r.wmu.Lock()
			_ = wire.WriteControl(st, wire.ControlMsg{Type: wire.ControlHeartbeat, Heartbeat: &wire.Heartbeat{SentAt: time.Now().UnixNano()}})
			r.wmu.Unlock()
		}
	}
}

// accept reads the control streams victims open to us; it ends when the
// peer network closes.
func (r *rogue) accept(ln *peer.Listener) {
	for {
		st, err := ln.AcceptStream()
		if err != nil {
			return
		}
		r.wg.Go(func() { r.read(st) })
	}
}

// read keeps what one victim sends; it ends when the stream does.
func (r *rogue) read(st *peer.Stream) {
	defer st.Close()
	for {
		m, err := wire.ReadControl(st)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.got = append(r.got, received{st.Peer, m})
		r.mu.Unlock()
	}
}

func (r *rogue) close() {
	r.stop()
	r.net.Close()
	r.wg.Wait()
}

// send writes m on our control stream to victim, opening it first. Should
// the link have been replaced meanwhile (a victim's probe), the stream is
// opened again on the new one, as a real node's sender does.
func (r *rogue) send(t *testing.T, victim string, m wire.ControlMsg) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		st := r.streams[victim]
		r.mu.Unlock()
		if st == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			st, err = r.net.Open(ctx, victim, wire.KindControl)
			cancel()
			if err != nil {
				t.Fatalf("rogue: open control stream to %s: %v", victim, err)
			}
			r.mu.Lock()
			r.streams[victim] = st
			r.mu.Unlock()
		}
		r.wmu.Lock()
		err := wire.WriteControl(st, m)
		r.wmu.Unlock()
		if err == nil {
			return
		}
		if attempt > 0 {
			t.Fatalf("rogue: send %s to %s: %v", m.Type, victim, err)
		}
		st.Close()
		r.mu.Lock()
		delete(r.streams, victim)
		r.mu.Unlock()
	}
}

// heartbeat sends victim a heartbeat telling it it is at youAre.
func (r *rogue) heartbeat(t *testing.T, victim, youAre string, seq uint64) {
	t.Helper()
	r.send(t, victim, wire.ControlMsg{Type: wire.ControlHeartbeat, Heartbeat: &wire.Heartbeat{
		Seq: seq, SentAt: time.Now().UnixNano(), YouAre: youAre,
	}})
}

// mark returns a position in what we received, for since.
func (r *rogue) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// record returns the newest record of subject that from sent us after
// position since, in a heartbeat or a push.
func (r *rogue) record(from, subject string, since int) (wire.SignedRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var best wire.SignedRecord
	found := false
	for _, g := range r.got[since:] {
		if g.from != from {
			continue
		}
		var recs []wire.SignedRecord
		if hb := g.msg.Heartbeat; hb != nil && hb.Record != nil {
			recs = append(recs, *hb.Record)
		}
		if p := g.msg.Push; p != nil {
			recs = append(recs, p.Records...)
		}
		for _, sr := range recs {
			if sr.Record.Node == subject && (!found || sr.Record.Incarnation > best.Record.Incarnation) {
				best, found = sr, true
			}
		}
	}
	return best, found
}

// held asks victim for its record of subject and returns the answer.
func (r *rogue) held(t *testing.T, c *Cluster, victim, subject string) wire.SignedRecord {
	t.Helper()
	since := r.mark()
	r.send(t, victim, wire.ControlMsg{Type: wire.ControlRecordQuery, Query: &wire.RecordQuery{Nodes: []string{subject}}})
	var sr wire.SignedRecord
	err := c.Wait(10*time.Second, func() error {
		var ok bool
		if sr, ok = r.record(victim, subject, since); !ok {
			return fmt.Errorf("%s has not answered a query for %s's record", victim, subject)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

// TestBadPeer: a member that lies — about what it sees, with an old
// record of another node, with a record of another node it signed itself
// — moves nobody's address. Each lie is shown to arrive (the victim
// records the false observation; the records are refused or ignored) and
// the cluster still agrees on every address and commits a write.
func TestBadPeer(t *testing.T) {
	Run(t, func(t *testing.T) {
		c := New(t, Options{MaxVoters: 3}) // the liar is a non-voter: the cluster does not need it
		all := names(4)
		grow(t, c, all...)
		c.WaitMembers(convergeBound, all...)
		c.WaitAddresses(convergeBound)
		r := newRogue(t, c, "n4")
		honest := c.Live()
		victim, moved := c.MustGet("n1"), c.MustGet("n2")

		// 1. False observations: n1 hears from n4 that it sits at an
		// address it does not have, for longer than a vote window's
		// worth of heartbeats; two honest peers outvote it. A loopback
		// address over a link that is not on loopback cannot be true
		// at all and is refused.
		const lie = "203.0.113.99:7300"
		for seq := range uint64(5) {
			r.heartbeat(t, victim.Name, lie, seq+1)
			time.Sleep(time.Second)
		}
		refusedBefore := c.LogCount("ignoring observation", "node=n1", "peer=n4")
		r.heartbeat(t, victim.Name, "127.0.0.1:7300", 6)
		err := c.Wait(5*time.Second, func() error {
			st, err := victim.Node.Status(t.Context())
			if err != nil {
				return err
			}
			seen := ""
			for _, o := range st.Observations {
				if o.Observer == r.name {
					seen = o.Seen
				}
			}
			if seen != lie {
				return fmt.Errorf("%s does not record n4's view %s: %+v", victim.Name, lie, st.Observations)
			}
			if c.LogCount("ignoring observation", "node=n1", "peer=n4") == refusedBefore {
				return fmt.Errorf("%s did not log refusing a loopback observation", victim.Name)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := addressesKnown(honest); err != nil {
			t.Fatalf("after false observations: %v", err)
		}
		t.Logf("%s recorded n4's false view %s and kept %v", victim.Name, lie, victim.Node.Self())

		// 2. An old record: n4 keeps n2's record, n2 moves, n4 pushes
		// the old record to n1.
		r.heartbeat(t, moved.Name, "", 1) // a link to n2, which sends its record on it
		var old wire.SignedRecord
		err = c.Wait(5*time.Second, func() error {
			var ok bool
			if old, ok = r.record(moved.Name, moved.Name, 0); !ok {
				return fmt.Errorf("n4 never got %s's record", moved.Name)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		c.ChangeAddr(moved.Name)
		c.WaitAddresses(addrBound)
		current := r.held(t, c, victim.Name, moved.Name)
		if current.Record.Incarnation <= old.Record.Incarnation {
			t.Fatalf("%s holds %s's incarnation %d after the move, want above %d", victim.Name, moved.Name, current.Record.Incarnation, old.Record.Incarnation)
		}
		r.send(t, victim.Name, wire.ControlMsg{Type: wire.ControlRecordPush, Push: &wire.RecordPush{Records: []wire.SignedRecord{old}}})
		if got := r.held(t, c, victim.Name, moved.Name); got.Record.Incarnation != current.Record.Incarnation {
			t.Errorf("after an old record (incarnation %d), %s holds %s's incarnation %d, want %d", old.Record.Incarnation, victim.Name, moved.Name, got.Record.Incarnation, current.Record.Incarnation)
		}

		// 3. A forged record: newer than anything, with n4's signature.
		forged := discovery.Record{
			Node: moved.Name, Incarnation: current.Record.Incarnation + 1000, Port: PeerPort,
			Addrs: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.98:7300")}, NAT: discovery.NATNone, Issued: time.Now(),
		}
		sr, err := discovery.Sign(forged, discovery.Ed25519Signer(r.id.Key))
		if err != nil {
			t.Fatal(err)
		}
		refusedBefore = c.LogCount("refused address record", "node=n1", "from=n4", "subject=n2")
		r.send(t, victim.Name, wire.ControlMsg{Type: wire.ControlRecordPush, Push: &wire.RecordPush{Records: []wire.SignedRecord{sr}}})
		if got := r.held(t, c, victim.Name, moved.Name); got.Record.Incarnation != current.Record.Incarnation {
			t.Errorf("after a forged record, %s holds %s's incarnation %d, want %d", victim.Name, moved.Name, got.Record.Incarnation, current.Record.Incarnation)
		}
		if c.LogCount("refused address record", "node=n1", "from=n4", "subject=n2") == refusedBefore {
			t.Errorf("%s did not log refusing n4's forged record of %s", victim.Name, moved.Name)
		}

		if err := addressesKnown(honest); err != nil {
			t.Fatalf("after the lies: %v", err)
		}
		if err := c.Write(victim, writeBound); err != nil {
			t.Fatalf("after the lies: %v", err)
		}
	})
}
