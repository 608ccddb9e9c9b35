package failover

import (
	"errors"
	"testing"
	"time"
)

func TestWitnessRenew(t *testing.T) {
	tm := DefaultTiming()
	promise := tm.Lease + tm.Margin
	e3 := Assignment{Role: "web", Holder: "b", Epoch: 3}
	e4 := Assignment{Role: "web", Holder: "c", Epoch: 4}
	var seq uint64 // each renewal is a new round
	ren := func(a Assignment, session uint64) Renewal {
		seq++
		return Renewal{Role: a.Role, Epoch: a.Epoch, Node: a.Holder, Session: session, Seq: seq}
	}
	type step struct {
		r    Renewal
		cur  Assignment
		now  time.Duration
		want error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"acknowledges the holder its state names", []step{{ren(e3, 1), e3, 0, nil}}},
		{"refuses another node", []step{{Renewal{Role: "web", Epoch: 3, Node: "c", Session: 1}, e3, 0, ErrStaleEpoch}}},
		{"refuses an older epoch", []step{{ren(e3, 1), e4, 0, ErrStaleEpoch}}},
		{"refuses a newer epoch than applied", []step{{ren(e4, 1), e3, 0, ErrStaleEpoch}}},
		{"refuses another role", []step{{ren(e3, 1), Assignment{Role: "db", Holder: "b", Epoch: 3}, 0, ErrStaleEpoch}}},
		{"refuses epoch 0", []step{{Renewal{Role: "web", Node: "b"}, Assignment{Role: "web", Holder: "b"}, 0, ErrStaleEpoch}}},
		{"bound to the older holder for Lease+Margin", []step{
			{ren(e3, 1), e3, 0, nil},
			{ren(e3, 1), e3, 500 * ms, nil},
			{ren(e4, 1), e4, 500*ms + promise - 1, ErrBound},
			{ren(e4, 1), e4, 500*ms + promise, nil},
			{ren(e4, 1), e4, 500*ms + promise + time.Hour, nil},
		}},
		{"the holder's renewals keep coming after the newer epoch applied", []step{
			{ren(e3, 1), e3, 0, nil},
			{ren(e3, 1), e4, 100 * ms, ErrStaleEpoch},
			{ren(e4, 1), e4, promise, nil},
		}},
		{"an earlier session of the holder is refused", []step{
			{ren(e3, 5), e3, 0, nil},
			{ren(e3, 4), e3, 10 * ms, ErrStaleEpoch},
			{ren(e3, 6), e3, 20 * ms, nil},
		}},
		{"a round older than one acknowledged is refused", []step{
			{Renewal{Role: "web", Epoch: 3, Node: "b", Session: 1, Seq: 90}, e3, 0, nil},
			{Renewal{Role: "web", Epoch: 3, Node: "b", Session: 1, Seq: 89}, e3, 10 * ms, ErrStaleEpoch},
			{Renewal{Role: "web", Epoch: 3, Node: "b", Session: 1, Seq: 90}, e3, 10 * ms, ErrStaleEpoch},
			{Renewal{Role: "web", Epoch: 3, Node: "b", Session: 2, Seq: 1}, e3, 20 * ms, nil},
		}},
		{"a restarted witness waits from its start", []step{
			// The witness started at 0 (see below): it may have promised
			// anything before, so epoch 3 waits until the promise is out.
			{ren(e3, 1), e3, promise - 1, ErrBound},
			{ren(e3, 1), e3, promise, nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := at(-time.Hour)
			if tt.name == "a restarted witness waits from its start" {
				start = at(0)
			}
			w := NewWitness("w", tm, start)
			for i, s := range tt.steps {
				ack, err := w.Renew(s.r, s.cur, at(s.now))
				if !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
					t.Fatalf("step %d: Renew(%+v, %+v, %v) = %v, want %v", i, s.r, s.cur, s.now, err, s.want)
				}
				if want := (Ack{Role: s.r.Role, Epoch: s.r.Epoch, Session: s.r.Session, Seq: s.r.Seq, From: "w"}); err == nil && ack != want {
					t.Fatalf("step %d: Renew() = %+v, want %+v", i, ack, want)
				}
			}
		})
	}
}

func TestWitnessFirstEpochIsFree(t *testing.T) {
	tm := DefaultTiming()
	w := NewWitness("w", tm, at(0)) // just started: epoch 1 has no earlier holder to protect
	e1 := Assignment{Role: "web", Holder: "b", Epoch: 1}
	if _, err := w.Renew(Renewal{Role: "web", Epoch: 1, Node: "b", Session: 1}, e1, at(0)); err != nil {
		t.Fatalf("Renew(epoch 1) on a fresh witness = %v, want nil", err)
	}
	if f := w.FreeAt("db", 1); !f.IsZero() {
		t.Errorf("FreeAt(db, 1) = %v, want zero", f)
	}
	if f := w.FreeAt("db", 2); !f.Equal(at(tm.Lease + tm.Margin)) {
		t.Errorf("FreeAt(db, 2) = %v, want start+Lease+Margin", f.Sub(t0))
	}
}

func TestWitnessRelease(t *testing.T) {
	tm := DefaultTiming()
	e3 := Assignment{Role: "web", Holder: "b", Epoch: 3}
	e5 := Assignment{Role: "web", Holder: "c", Epoch: 5}
	tests := []struct {
		name     string
		sessions []uint64 // sessions of b's acknowledged renewals, in order
		release  Release
		free     bool
	}{
		{"from the holder's session", []uint64{2}, Release{Role: "web", Epoch: 3, Node: "b", Session: 2}, true},
		{"from an earlier session, delayed", []uint64{1, 2}, Release{Role: "web", Epoch: 3, Node: "b", Session: 1}, false},
		{"of another epoch", []uint64{2}, Release{Role: "web", Epoch: 2, Node: "b", Session: 2}, false},
		{"by another node", []uint64{2}, Release{Role: "web", Epoch: 3, Node: "c", Session: 2}, false},
		{"of another role", []uint64{2}, Release{Role: "db", Epoch: 3, Node: "b", Session: 2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWitness("w", tm, at(-time.Hour))
			for _, s := range tt.sessions {
				if _, err := w.Renew(Renewal{Role: "web", Epoch: 3, Node: "b", Session: s}, e3, at(0)); err != nil {
					t.Fatal(err)
				}
			}
			w.Release(tt.release)
			_, err := w.Renew(Renewal{Role: "web", Epoch: 5, Node: "c", Session: 9}, e5, at(10*ms))
			if tt.free && err != nil || !tt.free && !errors.Is(err, ErrBound) {
				t.Fatalf("after Release(%+v): Renew(newer holder) = %v, want free %v", tt.release, err, tt.free)
			}
			if tt.free {
				// A released epoch is never renewed again, even by a later run.
				if _, err := w.Renew(Renewal{Role: "web", Epoch: 3, Node: "b", Session: 3}, e3, at(20*ms)); !errors.Is(err, ErrStaleEpoch) {
					t.Errorf("Renew(released epoch) after the newer one = %v, want ErrStaleEpoch", err)
				}
			}
		})
	}
	t.Run("released epoch refused", func(t *testing.T) {
		w := NewWitness("w", tm, at(-time.Hour))
		if _, err := w.Renew(Renewal{Role: "web", Epoch: 3, Node: "b", Session: 2}, e3, at(0)); err != nil {
			t.Fatal(err)
		}
		w.Release(Release{Role: "web", Epoch: 3, Node: "b", Session: 2})
		if _, err := w.Renew(Renewal{Role: "web", Epoch: 3, Node: "b", Session: 3}, e3, at(ms)); !errors.Is(err, ErrReleased) {
			t.Fatalf("Renew(released epoch) = %v, want ErrReleased", err)
		}
	})
}
