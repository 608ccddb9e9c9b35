package clustertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy"
	"buoy/internal/kv"
)

// watcher collects what one Watch delivers, on a goroutine that ends when
// the watch's channel closes.
type watcher struct {
	node string
	done chan struct{} // closed when the channel has closed

	// mu guards the following fields.
	mu     sync.Mutex
	events []kv.Event
	err    error // the error the watch ended with, if any
}

// startWatch watches prefix on n after index. The watch ends when ctx does
// or the node closes.
func startWatch(ctx context.Context, n *Node, prefix string, index uint64) *watcher {
	w := &watcher{node: n.Name, done: make(chan struct{})}
	ch := n.Node.KV().Watch(ctx, prefix, index)
	go func() { // ends when ch closes
		defer close(w.done)
		for ev := range ch {
			w.mu.Lock()
			w.events = append(w.events, ev.Events...)
			if ev.Err != nil {
				w.err = ev.Err
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// snapshot returns the events delivered so far and the watch's error.
func (w *watcher) snapshot() ([]kv.Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events), w.err
}

// last returns the index of the last event delivered, or from if none.
func (w *watcher) last(from uint64) uint64 {
	evs, _ := w.snapshot()
	if len(evs) == 0 {
		return from
	}
	return evs[len(evs)-1].Index
}

func describeEvent(e kv.Event) string {
	if e.Kind == kv.EventPut {
		return fmt.Sprintf("%d:%s %s=%q@%d", e.Index, e.Kind, e.Entry.Key, e.Entry.Value, e.Entry.ModifyIndex)
	}
	return fmt.Sprintf("%d:%s %s", e.Index, e.Kind, e.Entry.Key)
}

// diffEvents describes the first difference between two event lists, or
// returns "" if they are the same.
func diffEvents(got, want []kv.Event) string {
	for i := range min(len(got), len(want)) {
		if g, w := describeEvent(got[i]), describeEvent(want[i]); g != w {
			return fmt.Sprintf("event %d is %s, want %s", i, g, w)
		}
	}
	switch {
	case len(got) < len(want):
		return fmt.Sprintf("%d events, want %d: missing from %s on", len(got), len(want), describeEvent(want[len(got)]))
	case len(got) > len(want):
		return fmt.Sprintf("%d events, want %d: extra from %s on", len(got), len(want), describeEvent(got[len(want)]))
	}
	return ""
}

// TestKVWatchAcrossLeaderChange: watches on every node deliver every change
// under their prefix, once each and in log order, while the leader is
// killed (its watch ends with buoy.ErrClosed and, resumed on the restarted
// node from the last index it delivered, goes on without a gap) and while
// the next leader is cut off (its watch catches up after the cut heals).
// What they deliver is compared with the change log of the final state,
// which must also hold every write a client was told had committed.
func TestKVWatchAcrossLeaderChange(t *testing.T) {
	Run(t, func(t *testing.T) {
		const prefix = "w/"
		c := New(t, Options{})
		all := names(3)
		grow(t, c, all...)
		c.WaitMembers(convergeBound, all...)

		// A key outside the prefix, which no watcher may see.
		if _, err := c.Live()[0].Node.KV().Put(ctxT(t, 10*time.Second), "other", []byte("x"), buoy.PutOptions{}); err != nil {
			t.Fatalf("Put(other): %v", err)
		}
		var start uint64
		for _, n := range c.Live() {
			evs, next, err := n.Node.KV().WaitIndex(ctxT(t, time.Second), prefix, 0)
			if err != nil || len(evs) != 0 {
				t.Fatalf("WaitIndex(%q, 0) on %s = %v, %v; want no change yet", prefix, n.Name, evs, err)
			}
			start = max(start, next)
		}

		wctx, stop := context.WithCancel(t.Context())
		defer stop()
		watchers := map[string][]*watcher{} // per node, in order of start
		for _, n := range c.Live() {
			watchers[n.Name] = []*watcher{startWatch(wctx, n, prefix, start)}
		}

		nodes := newKVNodes(c)
		type ack struct {
			key, value string
			index      uint64
		}
		var acked []ack
		rng := rand.New(rand.NewPCG(1, 2))
		write := func(i int) {
			_, kvc := nodes.pick(0, rng)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			key := fmt.Sprintf("%sk%d", prefix, rng.IntN(4))
			if rng.IntN(5) == 0 {
				_, _ = kvc.Delete(ctx, key) // an unknown outcome is fine: the log decides
				return
			}
			value := fmt.Sprintf("v%d", i)
			if idx, err := kvc.Put(ctx, key, value, nil); err == nil {
				acked = append(acked, ack{key, value, idx})
			}
		}

		i := 0
		writes := func(n int) {
			for range n {
				write(i)
				i++
				time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
			}
		}
		writes(20)

		// Kill the leader with writes in flight around it.
		old := c.WaitLeader(electBound)
		nodes.kill(old.Name)
		writes(20)
		oldW := watchers[old.Name][0]
		select {
		case <-oldW.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("watch on killed %s still open", old.Name)
		}
		if _, err := oldW.snapshot(); !errors.Is(err, buoy.ErrClosed) {
			t.Errorf("watch on killed %s ended with %v, want %v", old.Name, err, buoy.ErrClosed)
		}
		nodes.restart(old.Name)
		resumeFrom := oldW.last(start)
		watchers[old.Name] = append(watchers[old.Name], startWatch(wctx, c.MustGet(old.Name), prefix, resumeFrom))
		writes(20)

		// Cut the new leader off; its watch stays open and must catch up.
		cut := c.WaitLeader(electBound)
		c.Partition(cut.Name)
		writes(20)
		c.Heal()
		writes(10)

		// The final log, read where every write is known to be applied.
		leader := c.WaitLeader(electBound)
		if _, _, err := leader.Node.KV().Get(ctxT(t, 10*time.Second), "other", buoy.ReadOptions{}); err != nil {
			t.Fatalf("linearizable Get on %s: %v", leader.Name, err)
		}
		want, final, err := leader.Node.KV().WaitIndex(ctxT(t, time.Second), prefix, start)
		if err != nil {
			t.Fatalf("WaitIndex(%q, %d) on %s: %v", prefix, start, leader.Name, err)
		}
		t.Logf("%d writes, %d acknowledged, %d changes in the log up to index %d; %s killed, %s cut off", i, len(acked), len(want), final, old.Name, cut.Name)
		if len(want) < len(acked) {
			t.Fatalf("%d changes in the log, fewer than the %d acknowledged writes", len(want), len(acked))
		}
		for _, a := range acked {
			found := slices.ContainsFunc(want, func(e kv.Event) bool {
				return e.Index == a.index && e.Kind == kv.EventPut && e.Entry.Key == a.key && string(e.Entry.Value) == a.value
			})
			if !found {
				t.Errorf("acknowledged put %s=%q at index %d is not in the change log", a.key, a.value, a.index)
			}
		}

		err = c.Wait(convergeBound, func() error {
			for name, ws := range watchers {
				if got := ws[len(ws)-1].last(start); got < final {
					return fmt.Errorf("watch on %s delivered up to index %d, want %d", name, got, final)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		stop()
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for n := range watchers {
				if !yield(n) {
					return
				}
			}
		}) {
			var got []kv.Event
			for _, w := range watchers[name] {
				<-w.done
				evs, err := w.snapshot()
				if err != nil && !errors.Is(err, buoy.ErrClosed) {
					t.Errorf("watch on %s ended with %v", name, err)
				}
				got = append(got, evs...)
			}
			for _, e := range got {
				if !strings.HasPrefix(e.Entry.Key, prefix) {
					t.Errorf("watch on %s delivered %s, outside %q", name, describeEvent(e), prefix)
				}
			}
			if d := diffEvents(got, want); d != "" {
				t.Errorf("watch on %s (%d watches): %s", name, len(watchers[name]), d)
			}
		}
	})
}
