package hooks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wait bounds how long a test waits for something that should happen
// quickly; it only matters when the code under test is broken.
const wait = 30 * time.Second

func needSh(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("hook tests need /bin/sh")
	}
}

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// result waits for a hook's result.
func result(t *testing.T, ch <-chan Result) Result {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(wait):
		t.Fatal("no hook result")
		return Result{}
	}
}

func enqueue(t *testing.T, r *Runner, req Request) <-chan Result {
	t.Helper()
	ch, err := r.Enqueue(req)
	if err != nil {
		t.Fatalf("Enqueue(%+v): %v", req, err)
	}
	return ch
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func TestHookEnvironment(t *testing.T) {
	needSh(t)
	// The agent's own BUOY_* settings must not reach hooks.
	t.Setenv("BUOY_TOKEN", "secret")
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	hook := script(t, dir, "hook", `env | grep -E '^(BUOY_|EXTRA=)' | sort > "$OUT"`+"\n")
	r := New(Options{})
	defer r.Close()

	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{
			name: "promote",
			req: Request{
				Role: "web", Event: Promote, Path: hook, Epoch: 7, Node: "pi1",
				Holder: "pi1", HolderAddr: "192.0.2.1", Previous: "pi2",
				Env: []string{"OUT=" + out, "EXTRA=1", "BUOY_ROLE=not-this"},
			},
			want: []string{
				"BUOY_EPOCH=7", "BUOY_EVENT=promote", "BUOY_HOLDER=pi1", "BUOY_HOLDER_ADDR=192.0.2.1",
				"BUOY_NODE=pi1", "BUOY_PREVIOUS=pi2", "BUOY_ROLE=web", "EXTRA=1",
			},
		},
		{
			name: "change with no holder",
			req:  Request{Role: "db", Event: Change, Path: hook, Epoch: 12, Node: "pi3", Previous: "pi1", Env: []string{"OUT=" + out}},
			want: []string{
				"BUOY_EPOCH=12", "BUOY_EVENT=change", "BUOY_HOLDER=", "BUOY_HOLDER_ADDR=",
				"BUOY_NODE=pi3", "BUOY_PREVIOUS=pi1", "BUOY_ROLE=db",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := result(t, enqueue(t, r, tt.req))
			if !res.OK() || res.ExitCode != 0 {
				t.Fatalf("hook result = %+v, want exit 0", res)
			}
			got := readLines(t, out)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("hook environment = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHookOrderPerRole holds a slow hook of role web open and checks that
// db's hook runs meanwhile while web's next hook waits its turn.
func TestHookOrderPerRole(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	release := filepath.Join(dir, "release")
	slow := script(t, dir, "slow", fmt.Sprintf(`echo "$BUOY_ROLE-$BUOY_EVENT-start" >> %[1]s
while [ ! -e %[2]s ]; do sleep 0.01; done
echo "$BUOY_ROLE-$BUOY_EVENT-end" >> %[1]s
`, log, release))
	quick := script(t, dir, "quick", fmt.Sprintf(`echo "$BUOY_ROLE-$BUOY_EVENT-run" >> %s`+"\n", log))
	r := New(Options{Timeout: wait})
	defer r.Close()

	webDemote := enqueue(t, r, Request{Role: "web", Event: Demote, Path: slow})
	waitFor(t, func() bool { return len(readLines(t, log)) > 0 })
	webPromote := enqueue(t, r, Request{Role: "web", Event: Promote, Path: quick})
	dbPromote := enqueue(t, r, Request{Role: "db", Event: Promote, Path: quick})

	// db is not held up by web's slow hook.
	if res := result(t, dbPromote); !res.OK() {
		t.Fatalf("db promote = %+v, want success", res)
	}
	// web's promote cannot have run: the demote before it still runs.
	select {
	case res := <-webPromote:
		t.Fatalf("web promote finished (%+v) while web demote was still running", res)
	default:
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan Result{webDemote, webPromote} {
		if res := result(t, ch); !res.OK() {
			t.Fatalf("web hook = %+v, want success", res)
		}
	}
	got := strings.Join(readLines(t, log), " ")
	want := "web-demote-start db-promote-run web-demote-end web-promote-run"
	if got != want {
		t.Errorf("hook log = %q, want %q", got, want)
	}
}

// TestHookSequence queues many hooks for one role; each must start after
// the previous ended, in queue order.
func TestHookSequence(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	hook := script(t, dir, "hook", fmt.Sprintf(`echo "start-$N" >> %[1]s
sleep 0.01
echo "end-$N" >> %[1]s
`, log))
	r := New(Options{})
	defer r.Close()
	var chans []<-chan Result
	var want []string
	for i := range 8 {
		chans = append(chans, enqueue(t, r, Request{Role: "web", Event: Change, Path: hook, Env: []string{"N=" + strconv.Itoa(i)}}))
		want = append(want, fmt.Sprintf("start-%d", i), fmt.Sprintf("end-%d", i))
	}
	for _, ch := range chans {
		if res := result(t, ch); !res.OK() {
			t.Fatalf("hook = %+v, want success", res)
		}
	}
	if got := readLines(t, log); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hook log = %q, want %q", got, want)
	}
}

func TestHookTimeoutKillsGroup(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	hang := script(t, dir, "hang", "sleep 60 &\necho $! > "+pidFile+"\nwait\n")
	r := New(Options{})
	defer r.Close()
	res := result(t, enqueue(t, r, Request{Role: "web", Event: Promote, Path: hang, Timeout: 2 * time.Second}))
	if !errors.Is(res.Err, ErrTimeout) || res.ExitCode != -1 || !strings.Contains(res.Err.Error(), "killed after 2s") {
		t.Fatalf("hanging hook = %+v, want ErrTimeout, exit -1, killed after 2s", res)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the hanging hook did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// waitFor polls cond until it holds; hooks are separate processes, so
// there is nothing to block on.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
	}
}

// waitGone waits until pid no longer runs (gone or a zombie nobody reaped).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
				return
			}
		} else if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d of the timed-out hook still runs: its process group was not killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHookFailures(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noShebang := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(noShebang, []byte("exit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		wantErr  error
		wantMsg  string
		wantCode int
	}{
		{"missing file", filepath.Join(dir, "nope"), ErrNotFound, "no such file", -1},
		{"not executable", plain, ErrNotExecutable, "permission denied", -1},
		{"directory", dir, ErrNotExecutable, "permission denied", -1},
		{"no #! line", noShebang, ErrNotExecutable, "exec format error", -1},
		{"not in PATH", "buoy-no-such-hook", ErrNotFound, "not found", -1},
		{"no path", "", ErrNotFound, "no path", -1},
		{"exit 3", script(t, dir, "exit3", "echo 'cannot bind 192.0.2.1' >&2\nexit 3\n"), ErrExit, "exit status 3: cannot bind 192.0.2.1", 3},
		{"killed by a signal", script(t, dir, "suicide", "kill -9 $$\n"), ErrKilled, "by signal killed", -1},
	}
	r := New(Options{})
	defer r.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := result(t, enqueue(t, r, Request{Role: "web", Event: Promote, Path: tt.path}))
			t.Log(res.Err)
			if !errors.Is(res.Err, tt.wantErr) || !strings.Contains(res.Err.Error(), tt.wantMsg) || res.ExitCode != tt.wantCode || res.OK() {
				t.Errorf("hook %q = %+v, want %v saying %q, exit %d", tt.path, res, tt.wantErr, tt.wantMsg, tt.wantCode)
			}
			if !strings.HasPrefix(res.Err.Error(), "promote hook "+tt.path) {
				t.Errorf("hook error %q does not start by naming the event and path", res.Err)
			}
		})
	}
}

func TestHookOutputBounded(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	chatty := script(t, dir, "chatty", `i=0
while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done
echo "the end" >&2
`)
	r := New(Options{OutputLimit: 1000})
	defer r.Close()
	res := result(t, enqueue(t, r, Request{Role: "web", Event: Change, Path: chatty}))
	if !res.OK() {
		t.Fatalf("chatty hook = %+v, want success", res)
	}
	out := string(res.Output)
	if res.OutputDropped <= 0 || len(out) > 1000+64 {
		t.Errorf("output of %d bytes with %d dropped, want at most ~1000 kept and some dropped", len(out), res.OutputDropped)
	}
	if !strings.HasPrefix(out, "line 0\n") || !strings.HasSuffix(out, "line 1999\nthe end\n") || !strings.Contains(out, "bytes dropped") {
		t.Errorf("output = %q, want its start, a drop marker and its end", out)
	}
}

func TestShutdownKillsAndFailsQueued(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	hang := script(t, dir, "hang", "touch "+started+"\nsleep 60\n")
	r := New(Options{Timeout: time.Minute})
	running := enqueue(t, r, Request{Role: "web", Event: Promote, Path: hang})
	queued := enqueue(t, r, Request{Role: "web", Event: Demote, Path: hang})
	waitFor(t, func() bool { _, err := os.Stat(started); return err == nil })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown(short deadline) = %v, want DeadlineExceeded", err)
	}
	if res := result(t, running); !errors.Is(res.Err, ErrKilled) {
		t.Errorf("running hook = %+v, want ErrKilled", res)
	}
	if res := result(t, queued); !errors.Is(res.Err, ErrClosed) || res.ExitCode != -1 {
		t.Errorf("queued hook = %+v, want ErrClosed and exit -1", res)
	}
	if _, err := r.Enqueue(Request{Role: "web", Event: Promote, Path: hang}); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Shutdown = %v, want ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after Shutdown = %v", err)
	}
}

func TestShutdownWaitsForQueued(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	hook := script(t, dir, "hook", "sleep 0.05\necho $BUOY_EVENT >> "+log+"\n")
	r := New(Options{})
	a := enqueue(t, r, Request{Role: "web", Event: Demote, Path: hook})
	b := enqueue(t, r, Request{Role: "web", Event: Promote, Path: hook})
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	for _, ch := range []<-chan Result{a, b} {
		select {
		case res := <-ch:
			if !res.OK() {
				t.Errorf("hook = %+v, want success", res)
			}
		default:
			t.Error("Shutdown returned before a queued hook finished")
		}
	}
	if got := strings.Join(readLines(t, log), " "); got != "demote promote" {
		t.Errorf("hook log = %q, want %q", got, "demote promote")
	}
}

func TestRunWaitsForResult(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	hook := script(t, dir, "hook", "echo hi\nexit 1\n")
	r := New(Options{})
	defer r.Close()
	res, err := r.Run(t.Context(), Request{Role: "web", Event: Promote, Path: hook})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !errors.Is(res.Err, ErrExit) || res.ExitCode != 1 || string(res.Output) != "hi\n" {
		t.Errorf("Run = %+v, want exit 1 with output hi", res)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Run(ctx, Request{Role: "web", Event: Promote, Path: hook}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := r.Enqueue(Request{Event: Promote, Path: hook}); err == nil {
		t.Error("Enqueue without role = nil error, want one")
	}
}

func TestQueueLimit(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	started := filepath.Join(dir, "started")
	slow := script(t, dir, "slow", fmt.Sprintf("touch %s\nwhile [ ! -e %s ]; do sleep 0.01; done\n", started, release))
	r := New(Options{QueueLimit: 1, Timeout: wait})
	defer r.Close()
	first := enqueue(t, r, Request{Role: "web", Event: Promote, Path: slow})
	waitFor(t, func() bool { _, err := os.Stat(started); return err == nil })
	second := enqueue(t, r, Request{Role: "web", Event: Demote, Path: slow})
	if _, err := r.Enqueue(Request{Role: "web", Event: Change, Path: slow}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third Enqueue with QueueLimit 1 = %v, want ErrQueueFull", err)
	}
	if _, err := r.Enqueue(Request{Role: "db", Event: Change, Path: filepath.Join(dir, "nope")}); err != nil {
		t.Errorf("Enqueue for another role = %v, want nil: the limit is per role", err)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	result(t, first)
	result(t, second)
}

func TestRunnerWritesAudit(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	hook := script(t, dir, "hook", "echo promoted\n")
	audit, err := OpenAudit(filepath.Join(dir, "audit"), AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	r := New(Options{Audit: audit})
	defer r.Close()
	if err := audit.Append(Entry{Kind: KindTransition, Role: "web", Event: Promote, Epoch: 3, Node: "pi1", Holder: "pi1", Reason: "holder lease lost"}); err != nil {
		t.Fatal(err)
	}
	res := result(t, enqueue(t, r, Request{Role: "web", Event: Promote, Path: hook, Epoch: 3}))
	if !res.OK() {
		t.Fatalf("hook = %+v", res)
	}
	entries, err := audit.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("audit entries = %+v, want a transition and a hook run", entries)
	}
	h := entries[1]
	if h.Kind != KindHook || h.Role != "web" || h.Event != Promote || h.Epoch != 3 || h.Path != hook ||
		h.ExitCode == nil || *h.ExitCode != 0 || h.Output != "promoted\n" || h.Error != "" || h.Duration <= 0 {
		t.Errorf("hook audit entry = %+v, want web promote epoch 3 exit 0 with its output", h)
	}
}
