package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func intp(i int) *int { return &i }

func sampleEntries() []Entry {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []Entry{
		{Time: t0, Kind: KindTransition, Role: "web", Event: Demote, Epoch: 4, Node: "pi1", Holder: "", Previous: "pi1", Reason: "lease lost"},
		{Time: t0.Add(time.Second), Kind: KindHook, Role: "web", Event: Demote, Epoch: 4, Path: "/etc/buoy/web-demote", ExitCode: intp(0), Duration: 150 * time.Millisecond, Output: "stopped\n"},
		{Time: t0.Add(2 * time.Second), Kind: KindTransition, Role: "web", Event: Change, Epoch: 5, Node: "pi1", Holder: "pi2", HolderAddr: "192.0.2.2", Previous: "pi1"},
		{Time: t0.Add(3 * time.Second), Kind: KindHook, Role: "web", Event: Change, Epoch: 5, Path: "/etc/buoy/web-change", ExitCode: intp(-1), Duration: 30 * time.Second, Error: "change hook /etc/buoy/web-change for web: hook timed out: killed after 30s"},
	}
}

func openAudit(t *testing.T, dir string, opts AuditOptions) *AuditLog {
	t.Helper()
	a, err := OpenAudit(dir, opts)
	if err != nil {
		t.Fatalf("OpenAudit(%s): %v", dir, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// sameEntries compares entries by their JSON form (time zones and
// pointers differ after a round trip; the log's content must not).
func sameEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("entries =\n%s\nwant\n%s", g, w)
	}
}

func TestAuditRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	a := openAudit(t, dir, AuditOptions{})
	want := sampleEntries()
	for _, e := range want {
		if err := a.Append(e); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	got, err := a.Entries()
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	sameEntries(t, got, want)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(want[0]); err == nil {
		t.Error("Append after Close = nil, want an error")
	}
	// Reopening appends after what is there.
	b := openAudit(t, dir, AuditOptions{})
	if err := b.Append(want[0]); err != nil {
		t.Fatal(err)
	}
	got, err = ReadAudit(dir)
	if err != nil {
		t.Fatalf("ReadAudit: %v", err)
	}
	sameEntries(t, got, append(want, want[0]))
	if st, err := os.Stat(filepath.Join(dir, auditName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode = %v, %v, want 0600", st.Mode().Perm(), err)
	}
}

func TestAuditStampsTime(t *testing.T) {
	dir := t.TempDir()
	a := openAudit(t, dir, AuditOptions{})
	if err := a.Append(Entry{Kind: KindTransition, Role: "web"}); err != nil {
		t.Fatal(err)
	}
	got, err := a.Entries()
	if err != nil || len(got) != 1 || got[0].Time.IsZero() {
		t.Errorf("Entries() = %+v, %v, want one entry with its time set", got, err)
	}
}

func TestAuditRotation(t *testing.T) {
	dir := t.TempDir()
	const maxBytes, keep = 400, 2
	a := openAudit(t, dir, AuditOptions{MaxBytes: maxBytes, Keep: keep})
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var all []Entry
	for i := range 40 {
		e := Entry{Time: t0.Add(time.Duration(i) * time.Second), Kind: KindTransition, Role: "web", Epoch: uint64(i + 1), Holder: fmt.Sprintf("pi%d", i%3)}
		all = append(all, e)
		if err := a.Append(e); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxBytes {
			t.Errorf("%s is %d bytes, over MaxBytes %d", n, st.Size(), maxBytes)
		}
		total += st.Size()
	}
	if len(names) != keep+1 {
		t.Errorf("files after rotation = %v, want the current one and %d rotated", names, keep)
	}
	got, err := a.Entries()
	if err != nil {
		t.Fatal(err)
	}
	// What is left is the newest entries, consecutive, in order.
	if len(got) == 0 || len(got) >= len(all) {
		t.Fatalf("kept %d of %d entries, want some but not all", len(got), len(all))
	}
	sameEntries(t, got, all[len(all)-len(got):])
	if total > (keep+1)*maxBytes {
		t.Errorf("log takes %d bytes, over (Keep+1)*MaxBytes", total)
	}
}

func TestAuditCutsTornTail(t *testing.T) {
	dir := t.TempDir()
	want := sampleEntries()
	var buf []byte
	for _, e := range want[:2] {
		b, _ := json.Marshal(e)
		buf = append(append(buf, b...), '\n')
	}
	torn := append(buf, `{"time":"2026-03-01T12:00:09Z","kind":"hook","ro`...)
	if err := os.WriteFile(filepath.Join(dir, auditName), torn, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader skips the unfinished line (an append may be in progress).
	got, err := ReadAudit(dir)
	if err != nil {
		t.Fatalf("ReadAudit with a torn tail: %v", err)
	}
	sameEntries(t, got, want[:2])
	// The writer cuts it off and appends on a fresh line.
	a := openAudit(t, dir, AuditOptions{})
	if err := a.Append(want[2]); err != nil {
		t.Fatal(err)
	}
	got, err = ReadAudit(dir)
	if err != nil {
		t.Fatalf("ReadAudit after reopening: %v", err)
	}
	sameEntries(t, got, want[:3])
}

func TestAuditCorruptLine(t *testing.T) {
	dir := t.TempDir()
	want := sampleEntries()
	var buf []byte
	for i, e := range want {
		b, _ := json.Marshal(e)
		buf = append(append(buf, b...), '\n')
		if i == 1 {
			buf = append(buf, "not json\n{\"kind\":\"\"}\n"...)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, auditName), buf, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAudit(dir)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "2 unreadable lines") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("ReadAudit(corrupt) error = %v, want ErrCorrupt: 2 unreadable lines, first line 3", err)
	}
	sameEntries(t, got, want)
}

func TestReadAuditMissing(t *testing.T) {
	got, err := ReadAudit(filepath.Join(t.TempDir(), "none"))
	if err != nil || len(got) != 0 {
		t.Errorf("ReadAudit(missing dir) = %v, %v, want nothing", got, err)
	}
}

func TestHookEntry(t *testing.T) {
	res := Result{
		Role: "web", Event: Promote, Path: "/x", Epoch: 9, Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Duration: time.Second, ExitCode: 2, Output: []byte(strings.Repeat("a", 5000) + "\xff end"),
		Err: fmt.Errorf("promote hook /x for web: %w: exit status 2", ErrExit),
	}
	e := HookEntry(res)
	if e.Kind != KindHook || *e.ExitCode != 2 || e.Error != res.Err.Error() || len(e.Output) > auditOutputLimit+3 || !strings.HasSuffix(e.Output, "\uFFFD end") {
		t.Errorf("HookEntry = %+v, want a hook entry with exit 2, the error, and the last 1 KiB of output as valid UTF-8", e)
	}
}
