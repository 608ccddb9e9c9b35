package peer

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"buoy/internal/peer/peertest"
	"buoy/internal/wire"
)

// testSuspect is the SuspectAfter of the probe tests: 1.2 beats of beat.
const testSuspect = 1200 * time.Millisecond

// beat keeps traffic flowing both ways between from and to, as heartbeats
// do: from writes a byte every second on a stream that to's echo server
// answers, so both ends of the session receive something each second. It
// reopens the stream on whatever session is current and stops when ctx
// ends; wait for the returned channel.
func beat(ctx context.Context, from *testNode, to string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s, err := from.net.Open(ctx, to, wire.KindControl)
			if err != nil {
				sleepCtx(ctx, time.Second)
				continue
			}
			stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Now()) })
			buf := make([]byte, 256)
			for ctx.Err() == nil {
				if _, err := s.Write([]byte{'.'}); err != nil {
					break
				}
				s.SetReadDeadline(time.Now().Add(time.Second))
				s.Read(buf) // the greeting or the echo, or nothing from a silent session
				sleepCtx(ctx, time.Until(time.Now().Add(time.Second)))
			}
			stop()
			s.Close()
		}
	}()
	return done
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// events returns the link events of one node, in order.
func (c *cluster) eventsOf(name string) []string {
	var out []string
	for _, e := range c.eventLog() {
		if len(e) > len(name) && e[:len(name)+1] == name+":" {
			out = append(out, e)
		}
	}
	return out
}

// TestProbeReplacesSilentSession: a's address changes the way Linux does
// it, so the session with b goes silent both ways without a reset, and b
// cannot dial a (it only knows a's old address). After SuspectAfter a's
// probe reaches b from the new address and replaces the session on both
// ends at once, whatever the tie-break; no unlink is reported, and the
// old session is closed on both ends.
func TestProbeReplacesSilentSession(t *testing.T) {
	for _, dialer := range []string{"a", "b"} { // b's dial: a's probe loses the tie-break
		t.Run("old session dialed by "+dialer, func(t *testing.T) {
			peertest.SyncTest(t, func(t *testing.T) {
				mem := &memNet{}
				c := newCluster(t)
				c.dial = mem.dial
				c.listen = mem.listen
				fast := func(cfg *Config) { cfg.SuspectAfter = testSuspect }
				a := c.start("a", fast)
				b := c.start("b", fast)
				from, to := a, "b"
				if dialer == "b" {
					from, to = b, "a"
				}
				roundTrip(t, from, to, wire.KindRPC)
				sa, sb := a.net.current("b"), b.net.current("a")
				ctx, cancel := context.WithCancel(context.Background())
				beating := beat(ctx, a, "b")
				time.Sleep(5 * time.Second)
				if a.net.current("b") != sa || b.net.current("a") != sb {
					t.Fatalf("a healthy session was replaced: a %v, b %v", a.net.Links(), b.net.Links())
				}

				mem.valves[0].freeze()
				c.setAddr("a", "gone")
				moved := time.Now()
				for a.net.current("b") == sa && time.Since(moved) < time.Minute {
					time.Sleep(10 * time.Millisecond)
				}
				synctest.Wait()
				took := time.Since(moved)
				la, ok := linkTo(a.net, "b")
				if !ok || la.Dialer != "a" || !agreed(a, b) {
					t.Fatalf("after the move: a %v, b %v; want one probe session dialed by a", a.net.Links(), b.net.Links())
				}
				if took > testSuspect+time.Second+dialStagger {
					t.Errorf("replaced after %v of silence, want about SuspectAfter (%v)", took, testSuspect)
				}
				if !sa.sess.IsClosed() || !sb.sess.IsClosed() {
					t.Errorf("old session still open: a %v, b %v", !sa.sess.IsClosed(), !sb.sess.IsClosed())
				}
				for _, e := range c.eventLog() {
					if e == "a: down b" || e == "b: down a" {
						t.Errorf("event %q: the link was dropped, not replaced", e)
					}
				}
				if n := len(b.logs.lines("peer link replaced, old one closed", "probe=true")); n != 1 {
					t.Errorf("b logged %d probe replacements, want 1:\n%s", n, b.logs)
				}
				roundTrip(t, b, "a", wire.KindRaft)
				cancel()
				<-beating
			})
		})
	}
}

// TestFalseSuspicionKeepsSession: an idle session is suspected (nothing
// arrives on it for SuspectAfter), but traffic arrives on it while the
// probe dials. The probe is dropped before the peer starts a session on
// it, and both keep the old session: a false suspicion costs one dial.
func TestFalseSuspicionKeepsSession(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{}
		c := newCluster(t)
		c.dial = mem.dial
		c.listen = mem.listen
		a := c.start("a", func(cfg *Config) { cfg.SuspectAfter = testSuspect })
		b := c.start("b", nil)
		roundTrip(t, a, "b", wire.KindRPC)
		sa, sb := a.net.current("b"), b.net.current("a")

		var (
			mu     sync.Mutex
			probes int
			poked  error
		)
		mem.mu.Lock()
		mem.hook = func(string) {
			// The peer speaks up just as the probe goes out.
			err := poke(b, "a")
			mu.Lock()
			probes++
			poked = err
			mu.Unlock()
		}
		mem.mu.Unlock()
		time.Sleep(testSuspect + 100*time.Millisecond)
		synctest.Wait()
		mem.mu.Lock()
		mem.hook = nil
		mem.mu.Unlock()
		mu.Lock()
		n, err := probes, poked
		mu.Unlock()
		if n != 1 || err != nil {
			t.Fatalf("%d probe dials (b's stream to a: %v), want 1", n, err)
		}
		if a.net.current("b") != sa || b.net.current("a") != sb {
			t.Errorf("session replaced after a false suspicion: a %v, b %v", a.net.Links(), b.net.Links())
		}
		if len(a.logs.lines("peer probe not used")) != 1 {
			t.Errorf("a did not log the unused probe:\n%s", a.logs)
		}
		if len(b.logs.lines("dropped by its dialer before use")) != 1 {
			t.Errorf("b did not drop the unused probe connection:\n%s", b.logs)
		}
		if got := c.eventsOf("b"); len(got) != 1 {
			t.Errorf("b's link events = %q, want the first link only", got)
		}
		roundTrip(t, a, "b", wire.KindRaft)
	})
}

// TestRaceDialsCandidatesInParallel: the first candidate swallows the
// dial (an address the peer left); the second, started a stagger later,
// wins long before the first would time out.
func TestRaceDialsCandidatesInParallel(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{holes: map[string]bool{"old": true}}
		c := newCluster(t)
		c.dial = mem.dial
		c.listen = mem.listen
		a := c.start("a", nil)
		b := c.start("b", nil)
		c.setAddr("b", "old", b.ln.Addr().String())
		start := time.Now()
		roundTrip(t, a, "b", wire.KindRPC)
		if took := time.Since(start); took > 2*dialStagger {
			t.Errorf("Open took %v, want about one stagger (%v), not the dead candidate's timeout", took, dialStagger)
		}
	})
}

// TestRaceLoserNotAdopted: a dial race's loser may complete its
// handshake too; it is closed without an intent byte, and the peer drops
// it unused, so it never replaces the winner there.
func TestRaceLoserNotAdopted(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{}
		c := newCluster(t)
		c.dial = mem.dial
		c.listen = mem.listen
		a := c.start("a", nil)
		b := c.start("b", nil)
		roundTrip(t, a, "b", wire.KindRPC)
		won := b.net.current("a")

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lost, err := a.net.handshake(ctx, "b", c.resolve("b")[0], time.Minute, false)
		if err != nil {
			t.Fatalf("handshake(b) = %v", err)
		}
		lost.Close()
		synctest.Wait()
		if b.net.current("a") != won || !agreed(a, b) {
			t.Errorf("b's session changed: a %v, b %v", a.net.Links(), b.net.Links())
		}
		if got := c.eventsOf("b"); len(got) != 1 {
			t.Errorf("b's link events = %q, want one link", got)
		}
		if len(b.logs.lines("dropped by its dialer before use")) != 1 {
			t.Errorf("b did not log the dropped loser:\n%s", b.logs)
		}
		roundTrip(t, b, "a", wire.KindRaft)
	})
}

// poke opens a stream from n to peer and waits for its greeting.
func poke(n *testNode, peer string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.net.Open(ctx, peer, wire.KindRPC)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = s.Read(make([]byte, 64))
	return err
}

// TestUpgradeRelayedSession: a reaches b only through a relay; once a
// learns a direct address (Kick), a direct session replaces the relayed
// one on both ends, while the relayed one was never silent.
func TestUpgradeRelayedSession(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{relays: map[string]bool{}}
		c := newCluster(t)
		c.dial = mem.dial
		c.listen = mem.listen
		// Only a guards its sessions: b would try a's direct address
		// at once.
		a := c.start("a", func(cfg *Config) { cfg.SuspectAfter = testSuspect })
		b := c.start("b", nil)
		relay := mem.listen()
		mem.mu.Lock()
		mem.relays[relay.Addr().String()] = true
		mem.mu.Unlock()
		served := make(chan struct{})
		go func() {
			defer close(served)
			b.net.Serve(relay)
		}()
		direct := b.ln.Addr().String()
		c.setAddr("b", relay.Addr().String())
		roundTrip(t, a, "b", wire.KindRPC)
		relayed := a.net.current("b")
		if relayed == nil || !relayed.relayed || !b.net.current("a").relayed {
			t.Fatalf("first session not relayed on both ends: a %+v", relayed)
		}

		c.setAddr("b", direct, relay.Addr().String())
		a.net.Kick("b")
		synctest.Wait()
		la, lb := a.net.current("b"), b.net.current("a")
		if la == nil || la.relayed || lb == nil || lb.relayed || !agreed(a, b) {
			t.Fatalf("after Kick: a %v, b %v; want one direct session", a.net.Links(), b.net.Links())
		}
		roundTrip(t, b, "a", wire.KindRaft)
		b.stop()
		<-served
	})
}

// TestSupersedes covers the rule between a new session and the current
// one for the same peer.
func TestSupersedes(t *testing.T) {
	now := time.Unix(1000, 0)
	n := &Network{cfg: Config{SuspectAfter: testSuspect}}
	mk := func(dialer string, age, silent time.Duration, probe, relayed bool) *link {
		return &link{dialer: dialer, since: now.Add(-age), probe: probe, relayed: relayed,
			rc: &liveConn{base: now.Add(-silent)}, sess: nil}
	}
	tests := []struct {
		name              string
		nl, old           *link
		replace, closeOld bool
	}{
		{"probe over an old session, tie-break against it", mk("b", 0, 0, true, false), mk("a", time.Hour, 2*time.Second, false, false), true, true},
		{"probe over an old session that looks alive here", mk("b", 0, 0, true, false), mk("a", time.Hour, 200*time.Millisecond, false, false), true, true},
		{"probe crossing a young probe, tie-break for it", mk("a", 0, 0, true, false), mk("b", 100*time.Millisecond, 0, true, false), true, false},
		{"probe crossing a young probe, tie-break against it", mk("b", 0, 0, true, false), mk("a", 100*time.Millisecond, 0, true, false), false, false},
		{"same dialer's probe over a young session", mk("b", 0, 0, true, false), mk("b", 100*time.Millisecond, 0, false, false), true, true},
		{"dial over a silent session, tie-break against it", mk("b", 0, 0, false, false), mk("a", time.Hour, 2*time.Second, false, false), true, true},
		{"dial over a healthy session, tie-break against it", mk("b", 0, 0, false, false), mk("a", time.Hour, 0, false, false), false, false},
		{"direct dial over a healthy relayed session", mk("b", 0, 0, false, false), mk("a", time.Hour, 0, false, true), true, false},
		{"relayed dial over a healthy direct session", mk("a", 0, 0, false, true), mk("b", time.Hour, 0, false, false), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.old.rc.lastNs.Store(0) // last data at base: silent since then
			replace, closeOld := n.supersedes(tt.nl, tt.old, now)
			if replace != tt.replace || replace && closeOld != tt.closeOld {
				t.Errorf("supersedes = %v, %v; want %v, %v", replace, closeOld, tt.replace, tt.closeOld)
			}
		})
	}
}

// TestUnknownIntentRefused: a member that completes the handshake and
// then sends an intent byte this version does not know is refused.
func TestUnknownIntentRefused(t *testing.T) {
	c := newCluster(t)
	srv := c.start("srv", nil)
	cert := c.ca.node(t, "good")
	raw, err := net.Dial("tcp", srv.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{
		RootCAs: c.ca.pool, ServerName: "srv", NextProtos: []string{ALPNPeer},
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
	})
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte{9}); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, raw)
	eventually(t, "refusal log line", func() bool {
		return len(srv.logs.lines("peer connection refused", `reason="unknown session intent"`)) == 1
	})
	if links := srv.net.Links(); len(links) != 0 {
		t.Errorf("Links() = %v after an unknown intent, want none", links)
	}
}

// TestKeepRedialsWorkingSessionAtOnce: a kept session that carried the
// link for a couple of seconds and then dropped (the peer moved, or
// restarted) is redialed at once, not after a backoff: only sessions that
// end within stableSession count as failures.
func TestKeepRedialsWorkingSessionAtOnce(t *testing.T) {
	peertest.SyncTest(t, func(t *testing.T) {
		mem := &memNet{}
		c := newCluster(t)
		c.dial = mem.dial
		c.listen = mem.listen
		a := c.start("a", nil)
		b := c.start("b", nil)
		a.net.Keep([]string{"b"})
		synctest.Wait()
		first := a.net.current("b")
		if first == nil {
			t.Fatal("a kept b but has no session")
		}
		time.Sleep(2 * stableSession) // well short of MaxBackoff
		b.net.Disconnect("a")
		dropped := time.Now()
		for a.net.current("b") == nil || a.net.current("b") == first {
			time.Sleep(time.Millisecond)
		}
		if took := time.Since(dropped); took >= DefaultMinBackoff*8/10 {
			t.Errorf("redialed %v after the drop, want at once (a backoff would be at least %v)", took, DefaultMinBackoff*8/10)
		}
	})
}
