// Package labsession stands in for *testing.T while a benchmark drives a
// network-namespace lab (netlab, nscluster) outside go test.
package labsession

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
)

// Session is the test context (netlab.TB, nscluster.TB) that one lab
// lives in while a benchmark drives it. Fatalf and Skipf end the goroutine
// that calls them, as they do in a test, so every step runs through Run
// on a goroutine of its own; the cleanups run when the session closes.
type Session struct {
	out     io.Writer
	verbose bool

	// mu guards the following fields.
	mu       sync.Mutex
	failed   bool
	skipped  bool
	errs     []string
	cleanups []func()
}

// New returns a session that prints to out; Logf prints only when verbose
// (or once the session failed).
func New(out io.Writer, verbose bool) *Session {
	return &Session{out: out, verbose: verbose}
}

// Helper does nothing: there are no test frames to hide.
func (s *Session) Helper() {}

// Cleanup registers f to run when the session closes, last first.
func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// Logf prints only when verbose, or once the session failed (so that a
// failed lab's cleanups print its logs).
func (s *Session) Logf(format string, args ...any) {
	s.mu.Lock()
	show := s.verbose || s.failed
	s.mu.Unlock()
	if show {
		fmt.Fprintf(s.out, "    "+format+"\n", args...)
	}
}

// Errorf marks the session failed and records the message.
func (s *Session) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.failed = true
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
	fmt.Fprintf(s.out, "    ERROR: %s\n", msg)
}

// Fatalf is Errorf, then ends the calling goroutine.
func (s *Session) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf records a skip (netlab.New does this without root) and ends the
// calling goroutine.
func (s *Session) Skipf(format string, args ...any) {
	s.mu.Lock()
	s.skipped = true
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
	runtime.Goexit()
}

// Failed reports whether Errorf or Fatalf was called.
func (s *Session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Skipped reports whether Skipf was called, and why.
func (s *Session) Skipped() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.skipped {
		return false, ""
	}
	return true, s.errs[len(s.errs)-1]
}

// LastError is the message of the last Errorf, Fatalf or Skipf, or "".
func (s *Session) LastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return ""
	}
	return s.errs[len(s.errs)-1]
}

// Run calls f on a goroutine of its own and waits for it; it reports
// whether f returned normally (rather than through Fatalf or Skipf).
func (s *Session) Run(f func()) bool {
	done := make(chan bool)
	go func() {
		completed := false
		defer func() { done <- completed }()
		f()
		completed = true
	}()
	return <-done
}

// Close runs the cleanups, last registered first, each through Run so
// that a Fatalf in one does not skip the others.
func (s *Session) Close() {
	s.mu.Lock()
	cs := slices.Clone(s.cleanups)
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		s.Run(cs[i])
	}
}
