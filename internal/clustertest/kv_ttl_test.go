package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"buoy"
	"buoy/internal/kv"
)

// TestKVTTLExpiresOnceAcrossLeaderChange: keys with a TTL are deleted
// through the log exactly once, on every node, although leadership
// changes around their expiry. One key expires just after its leader is
// cut off (that leader may try to expire it and fail to commit, the new
// leader expires it), one just after its leader is killed, one later on a
// quiet cluster. A key overwritten without a TTL before its expiry never
// expires; a key deleted before its expiry is deleted, not expired. Every
// node's change log under the prefix is the same and holds one expire
// event per expiring key.
func TestKVTTLExpiresOnceAcrossLeaderChange(t *testing.T) {
	Run(t, func(t *testing.T) {
		const prefix = "ttl/"
		c := New(t, Options{})
		all := names(3)
		grow(t, c, all...)
		c.WaitMembers(convergeBound, all...)
		nodes := newKVNodes(c)

		// put writes key through a follower of the current leader.
		put := func(key string, ttl time.Duration) uint64 {
			t.Helper()
			leader := c.WaitLeader(electBound)
			via := c.Followers(leader)[0]
			e, err := via.Node.KV().Put(ctxT(t, 10*time.Second), key, []byte("v"), buoy.PutOptions{TTL: ttl})
			if err != nil {
				t.Fatalf("Put(%s, ttl %v) via %s: %v", key, ttl, via.Name, err)
			}
			return e.ModifyIndex
		}
		start := put(prefix+"start", 0) - 1

		// Cut the leader off 100 ms before a key's expiry: it still
		// believes it leads for a while.
		put(prefix+"cut", 3*time.Second)
		put(prefix+"overwritten", 3*time.Second)
		put(prefix+"deleted", 3*time.Second)
		time.Sleep(2 * time.Second)
		put(prefix+"overwritten", 0) // no TTL any more
		if existed, err := c.Live()[0].Node.KV().Delete(ctxT(t, 10*time.Second), prefix+"deleted", nil); err != nil || !existed {
			t.Fatalf("Delete(%sdeleted) = %v, %v; want true", prefix, existed, err)
		}
		time.Sleep(800 * time.Millisecond)
		cut := c.WaitLeader(electBound)
		c.Partition(cut.Name)
		time.Sleep(4 * time.Second)
		c.Heal()
		t.Logf("+%v: leader %s was cut off around the expiry of %scut", c.Since(), cut.Name, prefix)

		// Kill the leader half a second before a key's expiry.
		put(prefix+"killed", 3*time.Second)
		time.Sleep(2500 * time.Millisecond)
		killed := c.WaitLeader(electBound)
		nodes.kill(killed.Name)
		time.Sleep(3 * time.Second)
		nodes.restart(killed.Name)
		t.Logf("+%v: leader %s was killed before the expiry of %skilled", c.Since(), killed.Name, prefix)

		// One more on a quiet cluster.
		put(prefix+"quiet", 2*time.Second)

		expiring := []string{prefix + "cut", prefix + "killed", prefix + "quiet"}
		var logs map[string][]kv.Event
		err := c.Wait(convergeBound, func() error {
			logs = map[string][]kv.Event{}
			for _, n := range c.Live() {
				kvs := n.Node.KV()
				for _, key := range expiring {
					if _, _, err := kvs.Get(t.Context(), key, buoy.ReadOptions{Stale: true}); !errors.Is(err, buoy.ErrKVNotFound) {
						return fmt.Errorf("%s on %s: Get = %v, want not found", key, n.Name, err)
					}
				}
				ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
				evs, _, err := kvs.WaitIndex(ctx, prefix, start)
				cancel()
				if err != nil {
					return fmt.Errorf("WaitIndex on %s: %w", n.Name, err)
				}
				logs[n.Name] = evs
			}
			return nil
		})
		if err != nil {
			t.Fatalf("keys did not expire everywhere: %v", err)
		}

		first := c.Live()[0].Name
		want := logs[first]
		for _, n := range c.Live()[1:] {
			if d := diffEvents(logs[n.Name], want); d != "" {
				t.Errorf("change log on %s differs from %s's: %s", n.Name, first, d)
			}
		}
		for _, n := range c.Live() {
			count := func(key string, kind kv.EventKind) int {
				return len(slices.DeleteFunc(slices.Clone(logs[n.Name]), func(e kv.Event) bool {
					return e.Entry.Key != key || e.Kind != kind
				}))
			}
			for _, key := range expiring {
				if got := count(key, kv.EventExpire); got != 1 {
					t.Errorf("%s on %s: %d expire events, want 1", key, n.Name, got)
				}
				if got := count(key, kv.EventDelete); got != 0 {
					t.Errorf("%s on %s: %d delete events, want 0", key, n.Name, got)
				}
			}
			if got := count(prefix+"overwritten", kv.EventExpire); got != 0 {
				t.Errorf("%soverwritten on %s: %d expire events, want 0 (its TTL was dropped)", prefix, n.Name, got)
			}
			if _, _, err := n.Node.KV().Get(t.Context(), prefix+"overwritten", buoy.ReadOptions{Stale: true}); err != nil {
				t.Errorf("%soverwritten on %s: Get = %v, want the entry", prefix, n.Name, err)
			}
			if got := count(prefix+"deleted", kv.EventExpire); got != 0 {
				t.Errorf("%sdeleted on %s: %d expire events, want 0 (deleted before)", prefix, n.Name, got)
			}
			if got := count(prefix+"deleted", kv.EventDelete); got != 1 {
				t.Errorf("%sdeleted on %s: %d delete events, want 1", prefix, n.Name, got)
			}
		}
		var desc []string
		for _, e := range want {
			desc = append(desc, describeEvent(e))
		}
		t.Logf("change log on every node: %v", desc)
	})
}
