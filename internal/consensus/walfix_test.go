package consensus

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
)

// TestDiskStorageReopensAfterTailTruncation: a follower that drops the
// tail of its log (entries a deposed leader never committed) and then
// restarts must read its whole log again. raft-wal v0.4.0 marks the
// truncated segment sealed without writing its index (hashicorp/raft-wal
// issue 31), and raft.NewRaft panicked on the next start reading it.
func TestDiskStorageReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	entry := func(i, term uint64) *raft.Log {
		return &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "%d@%d", i, term)}
	}
	st, err := OpenDiskStorage(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, entry(i, 1))
	}
	if err := st.Logs.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	// A new leader overwrites entries 8 to 10 with its own.
	if err := st.Logs.DeleteRange(8, 10); err != nil {
		t.Fatalf("DeleteRange(8, 10) = %v", err)
	}
	logs = nil
	for i := uint64(8); i <= 12; i++ {
		logs = append(logs, entry(i, 2))
	}
	if err := st.Logs.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := st.closer.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 { // the repaired segment must also open a second time
		st, err = OpenDiskStorage(dir, log)
		if err != nil {
			t.Fatalf("reopen %d: %v", round, err)
		}
		if last, err := st.Logs.LastIndex(); err != nil || last != 12 {
			t.Errorf("reopen %d: LastIndex() = %d, %v; want 12", round, last, err)
		}
		for i := uint64(1); i <= 12; i++ {
			want := uint64(1)
			if i >= 8 {
				want = 2
			}
			var got raft.Log
			if err := st.Logs.GetLog(i, &got); err != nil {
				t.Errorf("reopen %d: GetLog(%d) = %v", round, i, err)
				continue
			}
			if got.Term != want || string(got.Data) != fmt.Sprintf("%d@%d", i, want) {
				t.Errorf("reopen %d: GetLog(%d) = term %d %q, want term %d", round, i, got.Term, got.Data, want)
			}
		}
		if err := st.closer.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
