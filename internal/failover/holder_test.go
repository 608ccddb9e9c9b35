package failover

import (
	"slices"
	"testing"
	"time"
)

// kinds lists the kinds and epochs of events, for compact comparisons.
func kinds(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind.String())
	}
	return out
}

// ack returns the acknowledgement of r by node from.
func ack(r Renewal, from string) Ack {
	return Ack{Role: r.Role, Epoch: r.Epoch, Session: r.Session, Seq: r.Seq, From: from}
}

// promoted returns a Holder of node a (session 7) that holds web at epoch
// 3, promoted by a round sent at 0 and acknowledged by a and b at 10ms.
func promoted(t *testing.T, tm Timing) (*Holder, Renewal) {
	t.Helper()
	h := NewHolder("a", 7, tm)
	out := h.Assign(Assignment{Role: "web", Holder: "a", Epoch: 3, Previous: "c"}, at(0))
	if len(out.Renewals) != 1 {
		t.Fatalf("Assign(to self) renewals = %v, want one", out.Renewals)
	}
	r := out.Renewals[0]
	h.Ack(ack(r, "a"), abc, at(10*ms))
	out = h.Ack(ack(r, "b"), abc, at(10*ms))
	if !slices.Equal(kinds(out.Events), []string{"promote"}) {
		t.Fatalf("Ack() by a majority events = %v, want promote", out.Events)
	}
	return h, r
}

func TestHolderPromotes(t *testing.T) {
	tm := DefaultTiming()
	h := NewHolder("a", 7, tm)
	out := h.Assign(Assignment{Role: "web", Holder: "a", Epoch: 3, Previous: "c"}, at(0))
	wantEv := []Event{{Kind: EventChange, Role: "web", Epoch: 3, Node: "a", Holder: "a", Previous: "c", Cause: CauseMoved}}
	wantRen := []Renewal{{Role: "web", Epoch: 3, Node: "a", Session: 7, Seq: 1}}
	if !slices.Equal(out.Events, wantEv) || !slices.Equal(out.Renewals, wantRen) || !out.Next.Equal(at(tm.Retry)) {
		t.Fatalf("Assign(to self) = %+v, want events %v, renewals %v, next %v", out, wantEv, wantRen, tm.Retry)
	}
	r := out.Renewals[0]
	steps := []struct {
		name string
		ack  Ack
		want []string
	}{
		{"own ack", ack(r, "a"), nil},
		{"same node again", ack(r, "a"), nil},
		{"not a voter", ack(r, "z"), nil},
		{"earlier session", Ack{Role: "web", Epoch: 3, Session: 6, Seq: 1, From: "b"}, nil},
		{"other epoch", Ack{Role: "web", Epoch: 2, Session: 7, Seq: 1, From: "b"}, nil},
		{"unknown round", Ack{Role: "web", Epoch: 3, Session: 7, Seq: 9, From: "b"}, nil},
		{"majority", ack(r, "c"), []string{"promote"}},
		{"after the majority", ack(r, "b"), nil},
	}
	for _, s := range steps {
		out := h.Ack(s.ack, abc, at(20*ms))
		if got := kinds(out.Events); !slices.Equal(got, s.want) {
			t.Fatalf("%s: Ack(%+v) events = %v, want %v", s.name, s.ack, got, s.want)
		}
		if len(out.Events) == 1 {
			want := Event{Kind: EventPromote, Role: "web", Epoch: 3, Node: "a", Holder: "a", Previous: "c", Cause: CauseQuorum}
			if out.Events[0] != want {
				t.Fatalf("promote event = %+v, want %+v", out.Events[0], want)
			}
		}
	}
	if e, ok := h.Holds("web", at(20*ms)); !ok || e != 3 {
		t.Fatalf("Holds(web) = %d, %v, want 3, true", e, ok)
	}
}

// TestHolderLease: the lease runs from when the acknowledged round was
// sent, not from when the acknowledgements came, and ends exactly at
// Lease-Guard.
func TestHolderLease(t *testing.T) {
	tm := DefaultTiming()
	belief := tm.Lease - tm.Guard
	h, _ := promoted(t, tm)
	if _, ok := h.Holds("web", at(belief-1)); !ok {
		t.Errorf("Holds(web) at Lease-Guard-1ns after the round = false, want true")
	}
	if _, ok := h.Holds("web", at(belief)); ok {
		t.Errorf("Holds(web) at Lease-Guard after the round = true, want false")
	}
	if _, ok := h.Holds("db", at(0)); ok {
		t.Errorf("Holds(db) = true for a role never assigned")
	}
	out := h.Tick(at(belief))
	want := []Event{{Kind: EventDemote, Role: "web", Epoch: 3, Node: "a", Previous: "a", Cause: CauseLeaseLost}}
	if !slices.Equal(out.Events, want) || len(out.Releases) != 0 {
		t.Fatalf("Tick() at the end of the lease = %+v, want events %v and no release", out, want)
	}
}

// TestHolderRenews: renewals go out every Renew while holding, every Retry
// otherwise; Next covers both them and the end of the lease.
func TestHolderRenews(t *testing.T) {
	tm := DefaultTiming()
	h, _ := promoted(t, tm)
	// Promoted at 10ms; the next round was scheduled at Retry (sent while
	// pending), then every Renew.
	out := h.Tick(at(tm.Retry - 1))
	if len(out.Renewals) != 0 || !out.Next.Equal(at(tm.Retry)) {
		t.Fatalf("Tick() before Retry = %+v, want nothing until %v", out, tm.Retry)
	}
	out = h.Tick(at(tm.Retry))
	if len(out.Renewals) != 1 || out.Renewals[0].Seq != 2 || !out.Next.Equal(at(tm.Retry+tm.Renew)) {
		t.Fatalf("Tick() at Retry = %+v, want round 2, next at Retry+Renew", out)
	}
	// No acknowledgement for the rest of the lease: it ends at
	// Lease-Guard after round 1 (sent at 0), even with rounds in flight.
	var demoted time.Time
	for now := at(tm.Retry); now.Before(at(2 * tm.Lease)); now = now.Add(ms) {
		out := h.Tick(now)
		if slices.Equal(kinds(out.Events), []string{"demote"}) {
			demoted = now
			break
		}
	}
	if !demoted.Equal(at(tm.Lease - tm.Guard)) {
		t.Fatalf("demoted at %v, want %v", demoted.Sub(t0), tm.Lease-tm.Guard)
	}
	// Not holding: renewals every Retry.
	out = h.Tick(demoted.Add(tm.Renew))
	if n := out.Next.Sub(demoted.Add(tm.Renew)); len(out.Renewals) != 1 || n != tm.Retry {
		t.Fatalf("Tick() after losing the lease = %+v, want a renewal and the next in %v (got %v)", out, tm.Retry, n)
	}
}

// TestHolderRegains: after losing its lease a holder still assigned the
// role is promoted again at the same epoch by its next majority; an ack
// arriving after the lease ran out, before any Tick, demotes first.
func TestHolderRegains(t *testing.T) {
	tm := DefaultTiming()
	belief := tm.Lease - tm.Guard
	h, _ := promoted(t, tm)
	late := h.Tick(at(belief - ms)) // a round sent just before the end
	if len(late.Renewals) != 1 {
		t.Fatalf("Tick() = %+v, want a renewal", late)
	}
	r := late.Renewals[0]
	if out := h.Ack(ack(r, "a"), abc, at(belief-ms)); len(out.Events) != 0 {
		t.Fatalf("Ack() within the lease = %v, want no events", out.Events)
	}
	out := h.Ack(ack(r, "c"), abc, at(belief+ms))
	if got := kinds(out.Events); !slices.Equal(got, []string{"demote", "promote"}) {
		t.Fatalf("majority after the lease ran out, without a Tick: events %v, want demote, promote", got)
	}
	if e, ok := h.Holds("web", at(belief+ms)); !ok || e != 3 {
		t.Fatalf("Holds(web) = %d, %v, want 3, true", e, ok)
	}
	if _, ok := h.Holds("web", at(2*belief-ms)); ok {
		t.Fatalf("Holds(web) at the end of the new lease = true, want false")
	}
}

// TestHolderIgnoresStaleRounds: an acknowledgement of a round sent
// Lease-Guard ago or more cannot extend or start a lease.
func TestHolderIgnoresStaleRounds(t *testing.T) {
	tm := DefaultTiming()
	belief := tm.Lease - tm.Guard
	h := NewHolder("a", 7, tm)
	r := h.Assign(Assignment{Role: "web", Holder: "a", Epoch: 3}, at(0)).Renewals[0]
	h.Tick(at(belief)) // prunes round 1
	h.Ack(ack(r, "a"), abc, at(belief))
	if out := h.Ack(ack(r, "b"), abc, at(belief)); len(out.Events) != 0 {
		t.Fatalf("Ack() of a round Lease-Guard old = %v, want no events", out.Events)
	}
}

func TestHolderMovedAway(t *testing.T) {
	tm := DefaultTiming()
	t.Run("while holding", func(t *testing.T) {
		h, _ := promoted(t, tm)
		out := h.Assign(Assignment{Role: "web", Holder: "b", Epoch: 5, Previous: "a"}, at(100*ms))
		want := []Event{
			{Kind: EventDemote, Role: "web", Epoch: 3, Node: "a", Holder: "b", Previous: "a", Cause: CauseMoved},
			{Kind: EventChange, Role: "web", Epoch: 5, Node: "a", Holder: "b", Previous: "a", Cause: CauseMoved},
		}
		wantRel := []Release{{Role: "web", Epoch: 3, Node: "a", Session: 7}}
		if !slices.Equal(out.Events, want) || !slices.Equal(out.Releases, wantRel) || len(out.Renewals) != 0 || !out.Next.IsZero() {
			t.Fatalf("Assign(moved away) = %+v, want events %v, releases %v, nothing else", out, want, wantRel)
		}
		if _, ok := h.Holds("web", at(100*ms)); ok {
			t.Fatal("Holds(web) after moving away = true")
		}
		if out := h.Tick(at(time.Hour)); len(out.Events)+len(out.Renewals) != 0 {
			t.Fatalf("Tick() after moving away = %+v, want nothing", out)
		}
	})
	t.Run("before the first majority", func(t *testing.T) {
		h := NewHolder("a", 7, tm)
		h.Assign(Assignment{Role: "web", Holder: "a", Epoch: 3}, at(0))
		out := h.Assign(Assignment{Role: "web", Epoch: 4, Previous: "a"}, at(ms))
		if got := kinds(out.Events); !slices.Equal(got, []string{"change"}) || len(out.Releases) != 1 {
			t.Fatalf("Assign(released) before promotion = %+v, want a change and a release", out)
		}
	})
	t.Run("reassigned to self at a newer epoch", func(t *testing.T) {
		h, _ := promoted(t, tm)
		out := h.Assign(Assignment{Role: "web", Holder: "a", Epoch: 6, Previous: "a"}, at(100*ms))
		if got := kinds(out.Events); !slices.Equal(got, []string{"demote", "change"}) || len(out.Releases) != 1 || len(out.Renewals) != 1 || out.Renewals[0].Epoch != 6 {
			t.Fatalf("Assign(self, newer epoch) = %+v, want demote, change, release of 3, renewal of 6", out)
		}
	})
	t.Run("stale and repeated assignments", func(t *testing.T) {
		h, _ := promoted(t, tm)
		for _, a := range []Assignment{{Role: "web", Holder: "b", Epoch: 2}, {Role: "web", Holder: "a", Epoch: 3}} {
			if out := h.Assign(a, at(20*ms)); len(out.Events)+len(out.Releases) != 0 {
				t.Fatalf("Assign(%+v) = %+v, want nothing", a, out)
			}
		}
		if _, ok := h.Holds("web", at(20*ms)); !ok {
			t.Fatal("Holds(web) after a stale assignment = false")
		}
	})
	t.Run("other roles and nodes", func(t *testing.T) {
		h := NewHolder("a", 7, tm)
		out := h.Assign(Assignment{Role: "db", Holder: "c", Epoch: 1}, at(0))
		if got := kinds(out.Events); !slices.Equal(got, []string{"change"}) || len(out.Renewals) != 0 || !out.Next.IsZero() {
			t.Fatalf("Assign(another node) = %+v, want a change only", out)
		}
		if out := h.Assign(Assignment{Role: "mx"}, at(0)); len(out.Events) != 0 {
			t.Fatalf("Assign(never assigned) = %+v, want nothing", out)
		}
	})
}

func TestMajority(t *testing.T) {
	tests := []struct {
		acks, voters []string
		want         bool
	}{
		{[]string{"a"}, []string{"a"}, true},
		{[]string{"a"}, []string{"a", "b"}, false},
		{[]string{"a", "b"}, []string{"a", "b", "c"}, true},
		{[]string{"a", "z"}, []string{"a", "b", "c"}, false},
		{[]string{"a"}, []string{"a", "a", "b"}, false}, // voters listed twice count once
		{nil, nil, false},
		{[]string{"a", "b"}, []string{"a", "b", "c", "d"}, false},
	}
	for _, tt := range tests {
		if got := majority(tt.acks, tt.voters); got != tt.want {
			t.Errorf("majority(%v, %v) = %v, want %v", tt.acks, tt.voters, got, tt.want)
		}
	}
}
