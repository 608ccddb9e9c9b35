package kv

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// step is one command of a scripted test: applied at index, it must fail
// with err (nil: succeed) and leave the listed keys as given.
type step struct {
	index uint64
	c     Command
	err   error
	want  []OpResult // compared on Kind, Found, Deleted, Entry.Key/Value/indexes; nil: not checked
}

func put(k, v string) Op { return Op{Kind: OpPut, Key: k, Value: []byte(v)} }

// dump renders m as "key=value@create/modify" lines in key order.
func dump(m *Map) []string {
	var out []string
	for e := range m.Scan("") {
		s := fmt.Sprintf("%s=%s@%d/%d", e.Key, e.Value, e.CreateIndex, e.ModifyIndex)
		if !e.Expires.IsZero() {
			s += fmt.Sprintf("~%d", e.Expires.Unix())
		}
		out = append(out, s)
	}
	return out
}

func runSteps(t *testing.T, m *Map, steps []step) *Map {
	t.Helper()
	for i, s := range steps {
		next, res, err := m.Apply(s.index, &s.c)
		if !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
			t.Fatalf("step %d: Apply(%d, %+v) = %v, want %v", i, s.index, s.c, err, s.err)
		}
		if err != nil {
			if next != m {
				t.Fatalf("step %d: failed Apply returned a new version", i)
			}
			continue
		}
		if s.want != nil {
			if len(res.Ops) != len(s.want) {
				t.Fatalf("step %d: %d results, want %d", i, len(res.Ops), len(s.want))
			}
			for j, w := range s.want {
				g := res.Ops[j]
				if g.Kind != w.Kind || g.Found != w.Found || g.Deleted != w.Deleted || g.Entry.Key != w.Entry.Key ||
					string(g.Entry.Value) != string(w.Entry.Value) || g.Entry.CreateIndex != w.Entry.CreateIndex || g.Entry.ModifyIndex != w.Entry.ModifyIndex {
					t.Errorf("step %d op %d: result %+v, want %+v", i, j, g, w)
				}
			}
		}
		m = next
	}
	return m
}

func TestApply(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name: "put keeps create index",
			steps: []step{
				{index: 5, c: Put("a", []byte("1"), time.Time{}), want: []OpResult{{Kind: OpPut, Entry: Entry{Key: "a", Value: []byte("1"), CreateIndex: 5, ModifyIndex: 5}}}},
				{index: 7, c: Put("a", []byte("2"), time.Time{}), want: []OpResult{{Kind: OpPut, Entry: Entry{Key: "a", Value: []byte("2"), CreateIndex: 5, ModifyIndex: 7}}}},
			},
			want: []string{"a=2@5/7"},
		},
		{
			name: "cas",
			steps: []step{
				{index: 1, c: Command{Checks: []Check{CAS("a", 0)}, Ops: []Op{put("a", "1")}}},
				{index: 2, c: Command{Checks: []Check{CAS("a", 0)}, Ops: []Op{put("a", "x")}}, err: ErrCheckFailed},
				{index: 3, c: Command{Checks: []Check{CAS("a", 9)}, Ops: []Op{put("a", "x")}}, err: ErrCheckFailed},
				{index: 4, c: Command{Checks: []Check{CAS("a", 1)}, Ops: []Op{put("a", "2")}}},
				{index: 5, c: Command{Checks: []Check{CAS("a", 1)}, Ops: []Op{{Kind: OpDelete, Key: "a"}}}, err: ErrCheckFailed},
				{index: 6, c: Command{Checks: []Check{CAS("b", 3)}, Ops: []Op{put("b", "x")}}, err: ErrCheckFailed},
			},
			want: []string{"a=2@1/4"},
		},
		{
			name: "delete",
			steps: []step{
				{index: 1, c: Put("a", []byte("1"), time.Time{})},
				{index: 2, c: Delete("zz"), want: []OpResult{{Kind: OpDelete}}},
				{index: 3, c: Delete("a"), want: []OpResult{{Kind: OpDelete, Deleted: 1, Entry: Entry{Key: "a", Value: []byte("1"), CreateIndex: 1, ModifyIndex: 1}}}},
				{index: 4, c: Delete("a"), want: []OpResult{{Kind: OpDelete}}},
			},
			want: nil,
		},
		{
			name: "delete prefix",
			steps: []step{
				{index: 1, c: Command{Ops: []Op{put("app", "0"), put("app/a", "1"), put("app/b", "2"), put("apple", "3"), put("b", "4"), put("ap", "5")}}},
				{index: 2, c: DeletePrefix("app/"), want: []OpResult{{Kind: OpDeletePrefix, Deleted: 2}}},
				{index: 3, c: DeletePrefix("app"), want: []OpResult{{Kind: OpDeletePrefix, Deleted: 2}}},
			},
			want: []string{"ap=5@1/1", "b=4@1/1"},
		},
		{
			name: "delete prefix all",
			steps: []step{
				{index: 1, c: Command{Ops: []Op{put("x", "0"), put("y", "1")}}},
				{index: 2, c: DeletePrefix(""), want: []OpResult{{Kind: OpDeletePrefix, Deleted: 2}}},
			},
			want: nil,
		},
		{
			name: "txn all or nothing",
			steps: []step{
				{index: 1, c: Command{Ops: []Op{put("a", "1"), put("b", "2")}}},
				{index: 2, c: Command{
					Checks: []Check{{Kind: CheckValue, Key: "a", Value: []byte("1")}, {Kind: CheckNotExists, Key: "b"}},
					Ops:    []Op{put("a", "changed"), {Kind: OpDelete, Key: "b"}},
				}, err: ErrCheckFailed},
				{index: 3, c: Command{
					Checks: []Check{{Kind: CheckValue, Key: "a", Value: []byte("1")}, {Kind: CheckExists, Key: "b"}, {Kind: CheckModifyIndex, Key: "b", Index: 1}},
					Ops:    []Op{put("c", "3"), {Kind: OpGet, Key: "c"}, {Kind: OpDelete, Key: "b"}, {Kind: OpGet, Key: "b"}, put("a", "4")},
				}, want: []OpResult{
					{Kind: OpPut, Entry: Entry{Key: "c", Value: []byte("3"), CreateIndex: 3, ModifyIndex: 3}},
					{Kind: OpGet, Found: true, Entry: Entry{Key: "c", Value: []byte("3"), CreateIndex: 3, ModifyIndex: 3}},
					{Kind: OpDelete, Deleted: 1, Entry: Entry{Key: "b", Value: []byte("2"), CreateIndex: 1, ModifyIndex: 1}},
					{Kind: OpGet},
					{Kind: OpPut, Entry: Entry{Key: "a", Value: []byte("4"), CreateIndex: 1, ModifyIndex: 3}},
				}},
			},
			want: []string{"a=4@1/3", "c=3@3/3"},
		},
		{
			name: "index order",
			steps: []step{
				{index: 4, c: Put("a", []byte("1"), time.Time{})},
				{index: 4, c: Put("a", []byte("2"), time.Time{}), err: ErrIndexOrder},
				{index: 3, c: Put("a", []byte("2"), time.Time{}), err: ErrIndexOrder},
				{index: 0, c: Put("a", []byte("2"), time.Time{}), err: ErrIndexOrder},
			},
			want: []string{"a=1@4/4"},
		},
		{
			name: "invalid command",
			steps: []step{
				{index: 1, c: Put("bad\xff", nil, time.Time{}), err: ErrInvalidKey},
				{index: 2, c: Command{}, err: ErrInvalidCommand},
			},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := runSteps(t, New(Options{}), tt.steps)
			if got := dump(m); !slices.Equal(got, tt.want) {
				t.Errorf("map = %q, want %q", got, tt.want)
			}
			if m.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", m.Len(), len(tt.want))
			}
		})
	}
}

func TestCheckError(t *testing.T) {
	m := runSteps(t, New(Options{}), []step{{index: 3, c: Put("k", []byte("v"), time.Time{})}})
	c := Command{Checks: []Check{CAS("k", 3), CAS("k", 2)}, Ops: []Op{put("k", "w")}}
	_, _, err := m.Apply(4, &c)
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("Apply = %v, want a *CheckError", err)
	}
	want := CheckError{Check: 1, Kind: CheckModifyIndex, Key: "k", Found: true, ModifyIndex: 3}
	if *ce != want {
		t.Errorf("CheckError = %+v, want %+v", *ce, want)
	}
}

// TestVersionsAreImmutable keeps every version and checks each still reads
// as it did when it was made.
func TestVersionsAreImmutable(t *testing.T) {
	m := New(Options{})
	var versions []*Map
	var dumps [][]string
	for i := range 300 {
		var c Command
		switch i % 3 {
		case 0, 1:
			c = Put(fmt.Sprintf("k%03d", i%97), []byte(fmt.Sprint(i)), time.Time{})
		case 2:
			c = Delete(fmt.Sprintf("k%03d", (i*7)%97))
		}
		next, _, err := m.Apply(uint64(i+1), &c)
		if err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
		m = next
		versions = append(versions, m)
		dumps = append(dumps, dump(m))
	}
	for i, v := range versions {
		if got := dump(v); !slices.Equal(got, dumps[i]) {
			t.Fatalf("version %d changed after later applies:\n got %q\nwant %q", i, got, dumps[i])
		}
	}
}

func TestTTL(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := New(Options{})
	m = runSteps(t, m, []step{
		{index: 1, c: Put("short", []byte("s"), t0.Add(time.Second))},
		{index: 2, c: Put("long", []byte("l"), t0.Add(time.Hour))},
		{index: 3, c: Put("forever", []byte("f"), time.Time{})},
		{index: 4, c: Put("cleared", []byte("c"), t0.Add(time.Second))},
		{index: 5, c: Put("cleared", []byte("c2"), time.Time{})}, // a put without TTL drops it
	})
	if got, ok := m.NextExpiry(); !ok || !got.Equal(t0.Add(time.Second)) {
		t.Errorf("NextExpiry() = %v, %v, want %v", got, ok, t0.Add(time.Second))
	}
	tests := []struct {
		now  time.Time
		max  int
		want []string
	}{
		{t0, 0, nil},
		{t0.Add(time.Second), 0, []string{"short@1"}}, // expiry is inclusive
		{t0.Add(2 * time.Hour), 0, []string{"short@1", "long@2"}},
		{t0.Add(2 * time.Hour), 1, []string{"short@1"}},
	}
	for _, tt := range tests {
		var got []string
		for _, e := range m.Expired(tt.now, tt.max) {
			got = append(got, fmt.Sprintf("%s@%d", e.Key, e.ModifyIndex))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Expired(%v, %d) = %q, want %q", tt.now, tt.max, got, tt.want)
		}
	}

	// The leader saw "short" expired at index 1, but it was rewritten
	// before the expiry committed: the expiry must not delete it, even
	// though the new TTL has passed too.
	exp := Expire(t0.Add(2*time.Second), m.Expired(t0.Add(2*time.Second), 0))
	m = runSteps(t, m, []step{
		{index: 6, c: Put("short", []byte("s2"), t0.Add(time.Second))},
		{index: 7, c: exp, want: []OpResult{{Kind: OpExpire}}},
	})
	if _, ok := m.Get("short"); !ok {
		t.Fatal("expire with a stale modify index deleted the key")
	}
	// An expiry the leader's clock has not reached yet does nothing either.
	early := Expire(t0.Add(30*time.Second), []Expiry{{Key: "long", ModifyIndex: 2}})
	m = runSteps(t, m, []step{{index: 8, c: early, want: []OpResult{{Kind: OpExpire}}}})
	if _, ok := m.Get("long"); !ok {
		t.Fatal("expire before the key's expiry deleted it")
	}
	// Nor on a key without TTL.
	noTTL := Expire(t0.Add(time.Hour), []Expiry{{Key: "forever", ModifyIndex: 3}})
	m = runSteps(t, m, []step{{index: 9, c: noTTL, want: []OpResult{{Kind: OpExpire}}}})

	later := t0.Add(2 * time.Hour)
	m = runSteps(t, m, []step{{index: 10, c: Expire(later, m.Expired(later, 0))}})
	if got, want := dump(m), []string{"cleared=c2@4/5", "forever=f@3/3"}; !slices.Equal(got, want) {
		t.Errorf("after expiry: %q, want %q", got, want)
	}
	if len(m.Expired(later.Add(time.Hour), 0)) != 0 {
		t.Errorf("Expired after expiry = %v, want none", m.Expired(later.Add(time.Hour), 0))
	}
	if _, ok := m.NextExpiry(); ok {
		t.Error("NextExpiry() ok with no TTL left")
	}
	evs, err := m.Changes(9, "")
	if err != nil || len(evs) != 2 || evs[0].Kind != EventExpire || evs[1].Kind != EventExpire {
		t.Errorf("Changes(9) = %+v, %v, want two expire events", evs, err)
	}
}
