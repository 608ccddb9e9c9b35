package kv

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func eventStrings(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%d %s %s=%s", ev.Index, ev.Kind, ev.Entry.Key, ev.Entry.Value))
	}
	return out
}

func TestChanges(t *testing.T) {
	m := runSteps(t, New(Options{}), []step{
		{index: 2, c: Put("app/a", []byte("1"), time.Time{})},
		{index: 3, c: Put("other", []byte("x"), time.Time{})},
		{index: 4, c: Command{Ops: []Op{put("app/b", "2"), put("app/a", "3")}}},
		{index: 5, c: Delete("nothing")}, // changes nothing: no event, no new last change
		{index: 6, c: DeletePrefix("app/")},
	})
	if m.LastChange() != 6 {
		t.Errorf("LastChange() = %d, want 6", m.LastChange())
	}
	tests := []struct {
		after  uint64
		prefix string
		want   []string
	}{
		{0, "", []string{"2 put app/a=1", "3 put other=x", "4 put app/b=2", "4 put app/a=3", "6 delete app/a=", "6 delete app/b="}},
		{0, "app/", []string{"2 put app/a=1", "4 put app/b=2", "4 put app/a=3", "6 delete app/a=", "6 delete app/b="}},
		{2, "app/a", []string{"4 put app/a=3", "6 delete app/a="}},
		{3, "other", nil},
		{4, "", []string{"6 delete app/a=", "6 delete app/b="}},
		{5, "", []string{"6 delete app/a=", "6 delete app/b="}},
		{6, "", nil},
		{100, "", nil},
	}
	for _, tt := range tests {
		got, err := m.Changes(tt.after, tt.prefix)
		if err != nil || !slices.Equal(eventStrings(got), tt.want) {
			t.Errorf("Changes(%d, %q) = %q, %v, want %q", tt.after, tt.prefix, eventStrings(got), err, tt.want)
		}
	}
	evs, _ := m.Changes(5, "")
	if evs[0].Entry.ModifyIndex != 6 || evs[0].Entry.CreateIndex != 2 {
		t.Errorf("delete event entry = %+v, want create 2 modify 6", evs[0].Entry)
	}
}

func TestChangesCompacted(t *testing.T) {
	m := New(Options{LogEvents: 4})
	for i := uint64(1); i <= 100; i++ {
		c := Put(fmt.Sprint("k", i), []byte("v"), time.Time{})
		next, _, err := m.Apply(i, &c)
		if err != nil {
			t.Fatal(err)
		}
		m = next
		// At least LogEvents changes are always there.
		from := max(int64(i)-4, 0)
		evs, err := m.Changes(uint64(from), "")
		if err != nil || uint64(len(evs)) != i-uint64(from) {
			t.Fatalf("after %d puts: Changes(%d) = %d events, %v, want %d", i, from, len(evs), err, i-uint64(from))
		}
	}
	// At most twice that.
	if _, err := m.Changes(100-9, ""); !errors.Is(err, ErrCompacted) {
		t.Errorf("Changes(91) = %v, want %v", err, ErrCompacted)
	}
	if _, err := m.Changes(0, "k1"); !errors.Is(err, ErrCompacted) {
		t.Errorf("Changes(0, k1) = %v, want %v (a prefix filter must not hide the gap)", err, ErrCompacted)
	}
}

func TestChangesCompactedByBytes(t *testing.T) {
	m := New(Options{LogEvents: 1000, LogBytes: 100})
	big := []byte(strings.Repeat("x", 60))
	for i := uint64(1); i <= 10; i++ {
		c := Put("k", big, time.Time{})
		m, _, _ = m.Apply(i, &c)
	}
	// Each event holds 61 bytes: the newest is always kept, at most one more
	// fits in 100 bytes before a cut, and cuts come within 200 bytes.
	if evs, err := m.Changes(9, ""); err != nil || len(evs) != 1 {
		t.Errorf("Changes(9) = %d events, %v, want 1", len(evs), err)
	}
	if _, err := m.Changes(5, ""); !errors.Is(err, ErrCompacted) {
		t.Errorf("Changes(5) = %v, want %v", err, ErrCompacted)
	}
}

// TestChangesConcurrent reads published versions while the writer appends
// and cuts the log (run with -race): readers see either every change they
// ask for or ErrCompacted, never a gap.
func TestChangesConcurrent(t *testing.T) {
	var cur atomic.Pointer[Map]
	cur.Store(New(Options{LogEvents: 8}))
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			for !done.Load() {
				m := cur.Load()
				after := m.LastChange() - min(m.LastChange(), uint64(r*4))
				evs, err := m.Changes(after, "")
				if errors.Is(err, ErrCompacted) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				for i, ev := range evs {
					if ev.Index != after+uint64(i)+1 {
						errs <- fmt.Errorf("Changes(%d) event %d at index %d: gap", after, i, ev.Index)
						return
					}
				}
			}
		})
	}
	m := cur.Load()
	for i := uint64(1); i <= 3000; i++ {
		c := Put(fmt.Sprint("k", i%50), []byte("v"), time.Time{})
		m, _, _ = m.Apply(i, &c)
		cur.Store(m)
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
