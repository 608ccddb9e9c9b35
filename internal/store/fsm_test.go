package store

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func entry(t *testing.T, index uint64, c Command) *raft.Log {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: b}
}

func applyAll(t *testing.T, f *FSM, cmds ...Command) []any {
	t.Helper()
	var logs []*raft.Log
	base := f.View().Index
	for i, c := range cmds {
		logs = append(logs, entry(t, base+uint64(i)+1, c))
	}
	return f.ApplyBatch(logs)
}

func bootstrapped(t *testing.T) *FSM {
	t.Helper()
	f := NewFSM(nil)
	res := applyAll(t, f,
		Command{Op: OpClusterInit, At: t0, Cluster: &Cluster{Name: "c", CACertPEM: []byte("cert"), CAKeyPEM: []byte("key")}},
		Command{Op: OpMemberJoin, At: t0, Member: &Member{Name: "pi1", Address: "192.0.2.1:7300"}},
		Command{Op: OpTokenCreate, At: t0, Token: &Token{ID: "tok1", SecretHash: "h", Created: t0, Expires: t0.Add(time.Hour), MaxUses: 2}},
	)
	for i, r := range res {
		if r != nil {
			t.Fatalf("bootstrap command %d: %v", i, r)
		}
	}
	return f
}

func TestJoinRules(t *testing.T) {
	tests := []struct {
		name string
		cmds []Command
		want []error // per command; nil = success
	}{
		{"token join", []Command{
			{Op: OpMemberJoin, At: t0.Add(time.Minute), TokenID: "tok1", Member: &Member{Name: "pi2"}},
		}, []error{nil}},
		{"second member without token", []Command{
			{Op: OpMemberJoin, At: t0, Member: &Member{Name: "pi2"}},
		}, []error{ErrFirstMember}},
		{"expired token", []Command{
			{Op: OpMemberJoin, At: t0.Add(time.Hour), TokenID: "tok1", Member: &Member{Name: "pi2"}},
		}, []error{ErrTokenExpired}},
		{"unknown token", []Command{
			{Op: OpMemberJoin, At: t0, TokenID: "nope", Member: &Member{Name: "pi2"}},
		}, []error{ErrTokenUnknown}},
		{"revoked token", []Command{
			{Op: OpTokenRevoke, At: t0, ID: "tok1"},
			{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi2"}},
		}, []error{nil, ErrTokenRevoked}},
		{"uses run out", []Command{
			{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi2"}},
			{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi3"}},
			{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi4"}},
		}, []error{nil, nil, ErrTokenUsedUp}},
		{"name taken", []Command{
			{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi1"}},
		}, []error{ErrNameTaken}},
		{"rejoin after leave", []Command{
			{Op: OpMemberLeave, At: t0, Name: "pi1", Reason: "removed"},
			{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi1"}},
		}, []error{nil, nil}},
		{"second init", []Command{
			{Op: OpClusterInit, At: t0, Cluster: &Cluster{Name: "x", CACertPEM: []byte("a"), CAKeyPEM: []byte("b")}},
		}, []error{ErrAlreadyInit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := bootstrapped(t)
			res := applyAll(t, f, tt.cmds...)
			for i, r := range res {
				err, _ := r.(error)
				if !errors.Is(err, tt.want[i]) || (tt.want[i] == nil && err != nil) {
					t.Errorf("command %d (%s) = %v, want %v", i, tt.cmds[i].Op, err, tt.want[i])
				}
			}
		})
	}
}

func TestViewsAreImmutable(t *testing.T) {
	f := bootstrapped(t)
	before := f.View()
	next := before.Next()
	applyAll(t, f, Command{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi2"}})
	select {
	case <-next:
	default:
		t.Fatal("Next() of the old view was not closed by an apply")
	}
	if before.IsMember("pi2") {
		t.Error("old view changed by a later apply")
	}
	if !f.View().IsMember("pi2") {
		t.Error("new view lacks pi2")
	}
	if got := f.View().Tokens["tok1"].Uses; got != 1 {
		t.Errorf("token uses = %d, want 1", got)
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestSnapshotRestore(t *testing.T) {
	f := bootstrapped(t)
	applyAll(t, f,
		Command{Op: OpMemberJoin, At: t0, TokenID: "tok1", Member: &Member{Name: "pi2", Address: "198.51.100.7:7300"}},
		Command{Op: OpMemberLeave, At: t0, Name: "pi2", Reason: "left"},
	)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	a, b := f.View(), g.View()
	if a.Index != b.Index || len(a.Members) != len(b.Members) || b.Members["pi2"].Address != "198.51.100.7:7300" || !b.Members["pi2"].Left || b.IsMember("pi2") {
		t.Errorf("restored view differs: %+v vs %+v", b.Members, a.Members)
	}
	if string(b.Cluster.CAKeyPEM) != "key" || b.Tokens["tok1"].Uses != 1 {
		t.Errorf("restored cluster/tokens differ: %+v %+v", b.Cluster, b.Tokens)
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte(`{"version":99}`)))); err == nil {
		t.Error("Restore accepted an unknown snapshot version")
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte("garbage")))); err == nil {
		t.Error("Restore accepted garbage")
	}
	if !g.View().IsMember("pi1") {
		t.Error("a failed restore changed the state")
	}
}

func TestBadEntriesDoNotStopTheLog(t *testing.T) {
	f := bootstrapped(t)
	idx := f.View().Index
	res := f.ApplyBatch([]*raft.Log{
		{Index: idx + 1, Type: raft.LogCommand, Data: []byte("not json")},
		{Index: idx + 2, Type: raft.LogCommand, Data: []byte(`{"v":1,"op":"nope"}`)},
		entry(t, idx+3, Command{Op: OpTokenRevoke, At: t0, ID: "tok1"}),
	})
	for i := range 2 {
		if err, _ := res[i].(error); !errors.Is(err, ErrBadCommand) {
			t.Errorf("entry %d = %v, want ErrBadCommand", i, res[i])
		}
	}
	if res[2] != nil || !f.View().Tokens["tok1"].Revoked || f.View().Index != idx+3 {
		t.Errorf("good entry after bad ones not applied: %v", res[2])
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	for e := range codes {
		got := FromCode(Code(e), e.Error())
		if !errors.Is(got, e) {
			t.Errorf("FromCode(Code(%v)) = %v, not the same sentinel", e, got)
		}
	}
	wrapped := FromCode(Code(ErrTokenExpired), "join token expired: at 12:00")
	if !errors.Is(wrapped, ErrTokenExpired) || wrapped.Error() != "join token expired: at 12:00" {
		t.Errorf("wrapped remote error = %v", wrapped)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{Op: OpMemberJoin, Member: &Member{Name: "a"}, TokenID: "x"},
		{Op: OpTokenRevoke, ID: "x"},
		{Op: OpClusterInit, Cluster: &Cluster{CACertPEM: []byte("a"), CAKeyPEM: []byte("b")}},
	} {
		b, _ := c.Encode()
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// Whatever decodes must apply without panicking.
		s := emptyState()
		_ = s.apply(1, c)
		if _, err := c.Encode(); err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
	})
}
