package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
)

// session is the test context (nscluster.TB) that one cluster lives in
// while the benchmark drives it: a stand-in for *testing.T outside go
// test. Fatalf ends the goroutine that calls it, as t.Fatalf does, so
// every step runs through run on a goroutine of its own; the cleanups
// (the cluster's, then the lab's) run when the session is closed.
type session struct {
	out     io.Writer
	verbose bool

	// mu guards the following fields.
	mu       sync.Mutex
	failed   bool
	skipped  bool
	errs     []string
	cleanups []func()
}

func newSession(out io.Writer, verbose bool) *session {
	return &session{out: out, verbose: verbose}
}

// Helper does nothing: there are no test frames to hide.
func (s *session) Helper() {}

// Cleanup registers f to run when the session closes, last first.
func (s *session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// Logf prints only with -v, except while a failed session closes, when
// it prints the agents' logs.
func (s *session) Logf(format string, args ...any) {
	s.mu.Lock()
	show := s.verbose || s.failed
	s.mu.Unlock()
	if show {
		fmt.Fprintf(s.out, "    "+format+"\n", args...)
	}
}

// Errorf marks the session failed and records the message.
func (s *session) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.failed = true
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
	fmt.Fprintf(s.out, "    ERROR: %s\n", msg)
}

// Fatalf is Errorf, then ends the calling goroutine.
func (s *session) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf records a skip (netlab.New does this without root) and ends the
// calling goroutine.
func (s *session) Skipf(format string, args ...any) {
	s.mu.Lock()
	s.skipped = true
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
	runtime.Goexit()
}

// Failed reports whether Errorf or Fatalf was called.
func (s *session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Skipped reports whether Skipf was called, and why.
func (s *session) Skipped() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.skipped {
		return false, ""
	}
	return true, s.errs[len(s.errs)-1]
}

// run calls f on a goroutine of its own and waits for it; it reports
// whether f returned normally (rather than through Fatalf or Skipf).
func (s *session) run(f func()) bool {
	done := make(chan bool)
	go func() {
		completed := false
		defer func() { done <- completed }()
		f()
		completed = true
	}()
	return <-done
}

// close runs the cleanups, last registered first, each through run so
// that a Fatalf in one does not skip the others.
func (s *session) close() {
	s.mu.Lock()
	cs := slices.Clone(s.cleanups)
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		s.run(cs[i])
	}
}
