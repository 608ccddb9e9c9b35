package netlab_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"buoy/e2e/netlab"
)

// fakeTB stands in for a test that fails or panics, which a real subtest
// cannot do without failing its parent. It runs its cleanups the way the
// testing package does: after the body returns, calls Fatalf or panics.
type fakeTB struct {
	t *testing.T // the real test, for logs

	mu       sync.Mutex
	cleanups []func()
	errors   []string
	fatals   []string
	skips    []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeTB) Logf(format string, args ...any) { f.t.Logf("fake: "+format, args...) }

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skips = append(f.skips, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

// runFake runs body as a test on its own goroutine, recovers a panic, then
// runs the cleanups in reverse order, and returns the recovered value.
func runFake(t *testing.T, body func(tb *fakeTB)) (f *fakeTB, panicked any) {
	f = &fakeTB{t: t}
	done := make(chan struct{})
	// Exits when body has returned, failed or panicked, and the cleanups
	// have run.
	go func() {
		defer close(done)
		defer func() {
			f.mu.Lock()
			cleanups := f.cleanups
			f.mu.Unlock()
			for _, fn := range slices.Backward(cleanups) {
				fn()
			}
		}()
		defer func() { panicked = recover() }()
		body(f)
	}()
	<-done
	return f, panicked
}

// skipWithFake skips t when New skipped the fake test before making a lab
// (outside CI, without root), as it would have skipped t.
func skipWithFake(t *testing.T, f *fakeTB, prefix string) {
	t.Helper()
	if len(f.skips) > 0 && prefix == "" {
		t.Skip(f.skips[0])
	}
}

// buildSome makes a small lab with a running process and returns the
// process.
func buildSome(t *testing.T, lab *netlab.Lab) *netlab.Proc {
	sw := lab.Switch("lan")
	wan := lab.Switch("wan")
	h := lab.Host("h1")
	h.Attach(sw, "192.0.2.11/24")
	lab.Router("r1", wan, "203.0.113.2/24", sw, "192.0.2.1/24")
	p, err := lab.Start(h.Command(context.Background(), "sleep", "600"))
	if err != nil {
		t.Errorf("start sleep: %v", err)
		return nil
	}
	return p
}

// checkGone fails t if a namespace with prefix is left or p still runs.
func checkGone(t *testing.T, prefix string, p *netlab.Proc) {
	t.Helper()
	left, err := netlab.Namespaces(context.Background(), prefix)
	if err != nil {
		t.Fatalf("Namespaces(%q): %v", prefix, err)
	}
	if len(left) != 0 {
		t.Errorf("Namespaces(%q) after the lab's test = %v, want none", prefix, left)
		// Leave the machine clean even when the lab did not.
		if err := netlab.Sweep(context.Background(), prefix); err != nil {
			t.Errorf("Sweep(%q): %v", prefix, err)
		}
	}
	if p == nil {
		t.Errorf("no process was started")
		return
	}
	select {
	case <-p.Done():
	default:
		t.Errorf("process %d still running after the lab's test", p.PID())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", p.PID())); err == nil {
		t.Errorf("process %d still exists after the lab's test", p.PID())
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()

	t.Run("passing subtest", func(t *testing.T) {
		var prefix string
		var p *netlab.Proc
		t.Run("lab", func(t *testing.T) {
			lab := netlab.New(t)
			prefix = lab.Prefix()
			p = buildSome(t, lab)
			if left, _ := netlab.Namespaces(context.Background(), prefix); len(left) != 4 {
				t.Errorf("Namespaces(%q) during the test = %v, want 4 (2 switches, a host, a router)", prefix, left)
			}
		})
		if prefix == "" {
			t.Skip("the lab's subtest made no lab")
		}
		checkGone(t, prefix, p)
	})

	// The lab's test fails (Fatalf from the lab itself on a bad address) or
	// panics; either way the cleanup runs and leaves nothing.
	failures := []struct {
		name      string
		fail      func(lab *netlab.Lab)
		wantFatal bool
		wantPanic bool
	}{
		{"fatal", func(lab *netlab.Lab) { lab.Host("bad").Attach(lab.Switch("lan2"), "10.0.0.1/24") }, true, false},
		{"panic", func(*netlab.Lab) { panic("boom") }, false, true},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			var prefix string
			var p *netlab.Proc
			f, panicked := runFake(t, func(tb *fakeTB) {
				lab := netlab.New(tb)
				prefix = lab.Prefix()
				p = buildSome(t, lab)
				tt.fail(lab)
			})
			skipWithFake(t, f, prefix)
			if got := len(f.fatals) > 0; got != tt.wantFatal {
				t.Errorf("the lab's test failed: %v (%q), want %v", got, f.fatals, tt.wantFatal)
			}
			if got := panicked != nil; got != tt.wantPanic {
				t.Errorf("the lab's test panicked: %v (%v), want %v", got, panicked, tt.wantPanic)
			}
			if len(f.errors) > 0 {
				t.Errorf("cleanup reported errors: %q", f.errors)
			}
			if prefix == "" {
				t.Fatalf("no lab was made (skips: %q)", f.skips)
			}
			checkGone(t, prefix, p)
		})
	}

	t.Run("sweep", func(t *testing.T) {
		lab := netlab.New(t)
		buildSome(t, lab)
		ctx := context.Background()
		if err := netlab.Sweep(ctx, lab.Prefix()); err != nil {
			t.Fatalf("Sweep(%q): %v", lab.Prefix(), err)
		}
		if left, err := netlab.Namespaces(ctx, lab.Prefix()); err != nil || len(left) != 0 {
			t.Errorf("Namespaces(%q) after Sweep = %v, %v; want none", lab.Prefix(), left, err)
		}
		// The lab's own cleanup must cope with what Sweep already removed;
		// any error it reports fails this subtest.
	})

	t.Run("start after close", func(t *testing.T) {
		var lab *netlab.Lab
		var h *netlab.Host
		f, _ := runFake(t, func(tb *fakeTB) {
			lab = netlab.New(tb)
			h = lab.Host("h1")
		})
		skipWithFake(t, f, "")
		if lab == nil {
			t.Fatalf("no lab was made (skips: %q, fatals: %q)", f.skips, f.fatals)
		}
		p, err := lab.Start(h.Command(context.Background(), "sleep", "600"))
		if !errors.Is(err, netlab.ErrClosed) {
			t.Errorf("Start after the lab's test = %v, %v; want ErrClosed", p, err)
			if p != nil {
				_ = p.Stop(context.Background())
			}
		}
	})
}

func TestProcStop(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	h := lab.Host("h1")
	ctx := testContext(t)
	p, err := lab.Start(h.Command(ctx, "sh", "-c", `trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done`))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := p.WaitOutput(ctx, "ready"); err != nil {
		t.Fatalf("WaitOutput(ready): %v", err)
	}
	if got := p.Err(); got != nil {
		t.Errorf("Err() while running = %v, want nil", got)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = p.Stop(stopCtx)
	var exitErr interface{ ExitCode() int }
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("Stop() = %v, want exit status 3 from the TERM trap", err)
	}
	if got := p.Output(); got != "ready\ngot TERM\n" {
		t.Errorf("Output() = %q, want %q", got, "ready\ngot TERM\n")
	}
	if err := p.WaitOutput(ctx, "never printed"); !errors.Is(err, netlab.ErrExited) {
		t.Errorf("WaitOutput after exit = %v, want ErrExited", err)
	}
	// The process ran inside the host's namespace: its loopback is the
	// only interface there.
	out, err := h.Run(ctx, "cat", "/proc/net/dev")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := countInterfaces(string(out)); got != 1 {
		t.Errorf("interfaces in a fresh host = %d (%q), want 1 (lo)", got, out)
	}
	if _, err := h.Run(ctx, "sh", "-c", "echo oops >&2; exit 4"); err == nil {
		t.Errorf("Run of a failing command = nil error, want one")
	} else if msg := err.Error(); !contains(msg, "oops") || !contains(msg, "exit status 4") {
		t.Errorf("Run error = %q, want the stderr and the exit status", msg)
	}
}
