package main

import (
	"context"
	"slices"
	"testing"
)

// TestClusterLeaderFirst checks what both drivers rely on: the pool puts
// the leader's endpoint first (alone with -target leader), leader names
// it, and follow moves a leader-only pool when the leader changes.
func TestClusterLeaderFirst(t *testing.T) {
	urls := []string{"http://a", "http://b", "http://c"}
	for _, tt := range []struct {
		target string
		want   []string
	}{
		{targetAll, []string{"http://b", "http://c", "http://a"}},
		{targetLeader, []string{"http://b"}},
	} {
		t.Run(tt.target, func(t *testing.T) {
			leader := 1
			c := &cluster{system: "test", names: []string{"a", "b", "c"}, http: slices.Clone(urls)}
			c.findLeader = func(context.Context) (int, error) { return leader, nil }
			if err := c.startPool(t.Context(), 4, tt.target); err != nil {
				t.Fatal(err)
			}
			defer c.stop()
			if !slices.Equal(c.pool.endpoints, tt.want) {
				t.Errorf("startPool(%s) endpoints = %q, want %q", tt.target, c.pool.endpoints, tt.want)
			}
			if got, err := c.leader(t.Context()); got != "b" || err != nil {
				t.Errorf("leader() = %q, %v; want \"b\", nil", got, err)
			}
			leader = 2
			wantMoved := tt.target == targetLeader
			if moved, err := c.follow(t.Context()); moved != wantMoved || err != nil {
				t.Errorf("follow() after the leader moved = %v, %v; want %v, nil", moved, err, wantMoved)
			}
			if moved, err := c.follow(t.Context()); moved || err != nil {
				t.Errorf("follow() again = %v, %v; want false, nil", moved, err)
			}
			if wantMoved && c.pool.endpoints[0] != "http://c" {
				t.Errorf("after follow, endpoints = %q, want the new leader http://c first", c.pool.endpoints)
			}
		})
	}
}
