package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
)

// session stands in for *testing.T (netlab.TB) while the benchmark drives
// a lab outside go test. Fatalf and Skipf end the calling goroutine, as
// they do in a test, so every step runs through run; the cleanups run
// when the session closes.
type session struct {
	out     io.Writer
	verbose bool

	// mu guards the following fields.
	mu       sync.Mutex
	failed   bool
	skipped  string
	cleanups []func()
}

// Helper does nothing: there are no test frames to hide.
func (s *session) Helper() {}

// Cleanup registers f to run when the session closes, last first.
func (s *session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// Logf prints only with -v.
func (s *session) Logf(format string, args ...any) {
	if s.verbose {
		fmt.Fprintf(s.out, "    "+format+"\n", args...)
	}
}

// Errorf marks the session failed and prints the message.
func (s *session) Errorf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	fmt.Fprintf(s.out, "    ERROR: "+format+"\n", args...)
}

// Fatalf is Errorf, then ends the calling goroutine.
func (s *session) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf records why the lab cannot run (no root, no ip command) and ends
// the calling goroutine.
func (s *session) Skipf(format string, args ...any) {
	s.mu.Lock()
	s.skipped = fmt.Sprintf(format, args...)
	s.mu.Unlock()
	runtime.Goexit()
}

// Failed reports whether Errorf or Fatalf was called.
func (s *session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// run calls f on a goroutine of its own and waits for it; it reports
// whether f returned normally rather than through Fatalf or Skipf.
func (s *session) run(f func()) bool {
	done := make(chan bool)
	go func() {
		ok := false
		defer func() { done <- ok }()
		f()
		ok = true
	}()
	return <-done
}

// close runs the cleanups, last registered first.
func (s *session) close() {
	s.mu.Lock()
	cs := slices.Clone(s.cleanups)
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		s.run(cs[i])
	}
}
