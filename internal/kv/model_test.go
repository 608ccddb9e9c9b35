package kv

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// model is the obvious implementation the Map must agree with.
type model map[string]Entry

func (md model) clone() model { return maps.Clone(md) }

func (md model) apply(index uint64, c *Command) (model, []OpResult, bool) {
	for _, ck := range c.Checks {
		e, ok := md[ck.Key]
		pass := map[CheckKind]bool{
			CheckExists:      ok,
			CheckNotExists:   !ok,
			CheckModifyIndex: ok && e.ModifyIndex == ck.Index,
			CheckValue:       ok && string(e.Value) == string(ck.Value),
		}[ck.Kind]
		if !pass {
			return md, nil, false
		}
	}
	md = md.clone()
	var res []OpResult
	for _, op := range c.Ops {
		r := OpResult{Kind: op.Kind}
		switch op.Kind {
		case OpPut:
			e := Entry{Key: op.Key, Value: op.Value, CreateIndex: index, ModifyIndex: index, Expires: op.Expires}
			if old, ok := md[op.Key]; ok {
				e.CreateIndex = old.CreateIndex
			}
			md[op.Key] = e
			r.Entry = e
		case OpDelete:
			if old, ok := md[op.Key]; ok {
				delete(md, op.Key)
				r.Entry, r.Deleted = old, 1
			}
		case OpDeletePrefix:
			for k := range md {
				if strings.HasPrefix(k, op.Key) {
					delete(md, k)
					r.Deleted++
				}
			}
		case OpGet:
			r.Entry, r.Found = md[op.Key]
		case OpExpire:
			if old, ok := md[op.Key]; ok && old.ModifyIndex == op.Index && !old.Expires.IsZero() && !old.Expires.After(c.At) {
				delete(md, op.Key)
				r.Entry, r.Deleted = old, 1
			}
		}
		res = append(res, r)
	}
	return md, res, true
}

func (md model) dump() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(md)) {
		e := md[k]
		s := fmt.Sprintf("%s=%s@%d/%d", e.Key, e.Value, e.CreateIndex, e.ModifyIndex)
		if !e.Expires.IsZero() {
			s += fmt.Sprintf("~%d", e.Expires.Unix())
		}
		out = append(out, s)
	}
	return out
}

// replay applies events to md as a watcher would.
func (md model) replay(evs []Event) model {
	md = md.clone()
	for _, ev := range evs {
		if ev.Kind == EventPut {
			md[ev.Entry.Key] = ev.Entry
		} else {
			delete(md, ev.Entry.Key)
		}
	}
	return md
}

type randCmds struct {
	r  *rand.Rand
	t0 time.Time
}

func (g randCmds) key() string {
	// A small key space with shared prefixes, so prefixes and CAS collide.
	return fmt.Sprintf("%c/%d", "abc"[g.r.IntN(3)], g.r.IntN(12))
}

func (g randCmds) command(md model, now time.Time) Command {
	var c Command
	for range g.r.IntN(3) {
		k := g.key()
		switch g.r.IntN(4) {
		case 0:
			c.Checks = append(c.Checks, Check{Kind: CheckExists, Key: k})
		case 1:
			c.Checks = append(c.Checks, Check{Kind: CheckNotExists, Key: k})
		case 2:
			idx := uint64(g.r.IntN(50) + 1)
			if e, ok := md[k]; ok && g.r.IntN(2) == 0 {
				idx = e.ModifyIndex
			}
			c.Checks = append(c.Checks, Check{Kind: CheckModifyIndex, Key: k, Index: idx})
		case 3:
			c.Checks = append(c.Checks, Check{Kind: CheckValue, Key: k, Value: []byte(fmt.Sprint(g.r.IntN(3)))})
		}
	}
	for range g.r.IntN(4) + 1 {
		k := g.key()
		switch n := g.r.IntN(20); {
		case n < 9:
			op := Op{Kind: OpPut, Key: k, Value: []byte(fmt.Sprint(g.r.IntN(3)))}
			if g.r.IntN(3) == 0 {
				op.Expires = g.t0.Add(time.Duration(g.r.IntN(100)) * time.Second)
			}
			c.Ops = append(c.Ops, op)
		case n < 13:
			c.Ops = append(c.Ops, Op{Kind: OpDelete, Key: k})
		case n < 14:
			c.Ops = append(c.Ops, Op{Kind: OpDeletePrefix, Key: k[:g.r.IntN(3)]})
		case n < 17:
			c.Ops = append(c.Ops, Op{Kind: OpGet, Key: k})
		default:
			c.At = now
			idx := uint64(g.r.IntN(50) + 1)
			if e, ok := md[k]; ok && g.r.IntN(4) != 0 {
				idx = e.ModifyIndex
			}
			c.Ops = append(c.Ops, Op{Kind: OpExpire, Key: k, Index: idx})
		}
	}
	return c
}

// TestModel applies random commands to a Map and to the model and compares
// results, contents, expiries, old versions, and the change log (replaying
// a version's changes onto its model must give the newest model).
func TestModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			g := randCmds{r: rand.New(rand.NewPCG(seed, 1)), t0: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}
			m := New(Options{LogEvents: 64})
			md := model{}
			type version struct {
				m  *Map
				md model
			}
			var versions []version
			for i := uint64(1); i <= 400; i++ {
				now := g.t0.Add(time.Duration(i/4) * time.Second)
				c := g.command(md, now)
				next, res, err := m.Apply(i, &c)
				wantMd, wantRes, ok := md.apply(i, &c)
				if ok != (err == nil) {
					t.Fatalf("index %d: Apply(%+v) = %v, model ok=%v", i, c, err, ok)
				}
				if err != nil && !errors.Is(err, ErrCheckFailed) {
					t.Fatalf("index %d: Apply = %v, want nil or %v", i, err, ErrCheckFailed)
				}
				if ok {
					for j := range wantRes {
						g, w := res.Ops[j], wantRes[j]
						if g.Kind != w.Kind || g.Found != w.Found || g.Deleted != w.Deleted || g.Entry.Key != w.Entry.Key || g.Entry.ModifyIndex != w.Entry.ModifyIndex {
							t.Fatalf("index %d op %d (%+v): result %+v, want %+v", i, j, c.Ops[j], g, w)
						}
					}
				}
				m, md = next, wantMd
				if got, want := dump(m), md.dump(); !slices.Equal(got, want) {
					t.Fatalf("index %d: map\n %q\nwant\n %q", i, got, want)
				}
				var wantExp []string
				for _, k := range slices.Sorted(maps.Keys(md)) {
					if e := md[k]; !e.Expires.IsZero() && !e.Expires.After(now) {
						wantExp = append(wantExp, k)
					}
				}
				var gotExp []string
				for _, e := range m.Expired(now, 0) {
					gotExp = append(gotExp, e.Key)
				}
				slices.Sort(gotExp)
				if !slices.Equal(gotExp, wantExp) {
					t.Fatalf("index %d: Expired(%v) = %q, want %q", i, now, gotExp, wantExp)
				}
				versions = append(versions, version{m, md})
			}
			for vi, v := range versions {
				if got, want := dump(v.m), v.md.dump(); !slices.Equal(got, want) {
					t.Fatalf("version %d changed: %q, want %q", vi, got, want)
				}
				evs, err := m.Changes(v.m.LastChange(), "")
				if errors.Is(err, ErrCompacted) {
					continue
				}
				if err != nil {
					t.Fatalf("Changes(%d) = %v", v.m.LastChange(), err)
				}
				if got, want := v.md.replay(evs).dump(), md.dump(); !slices.Equal(got, want) {
					t.Fatalf("replaying changes after %d:\n %q\nwant\n %q", v.m.LastChange(), got, want)
				}
			}
		})
	}
}
