package puritytest

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// recorder stands in for the test handed to Check, so that a test can see
// Check fail without failing itself.
type recorder struct {
	testing.TB
	failures []string
	fatal    bool
}

func (r *recorder) Helper() {}

func (r *recorder) Error(args ...any) { r.failures = append(r.failures, fmt.Sprint(args...)) }

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// Fatal and Fatalf end the goroutine as testing.T's do; check runs Check
// on a goroutine of its own for that.
func (r *recorder) Fatal(args ...any) {
	r.Error(args...)
	r.fatal = true
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.fatal = true
	runtime.Goexit()
}

// check runs Check(rules) against a recorder and returns what it reported.
func check(t *testing.T, rules Rules) *recorder {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Check(rec, rules)
	}()
	<-done
	return rec
}

func TestCheck(t *testing.T) {
	const impure = "buoy/internal/puritytest/testdata/impure"
	tests := []struct {
		name  string
		rules Rules
		want  []string // substrings of the failures, in order
		fatal bool
	}{
		{"pure enough", Rules{Pkg: "buoy/internal/puritytest", Denied: []string{"net", "time"}, Seen: "go/ast"}, nil, false},
		{"every rule broken", Rules{Pkg: impure, Denied: []string{"os", "net"}, Seen: "time"}, []string{
			"depends on buoy/internal/wire",
			`imports "os"`,
			"impure.go:20:2: starts a goroutine",
			"impure.go:21:9: uses time.Now",
		}, false},
		{"allowed and not denied", Rules{Pkg: impure, Allowed: []string{"buoy/internal/wire"}, Denied: []string{"net"}, Seen: "os"}, []string{
			"starts a goroutine",
			"uses time.Now",
		}, false},
		{"listing not seen", Rules{Pkg: impure, Allowed: []string{"buoy/internal/wire"}, Seen: "net/netip"}, []string{
			"want it to see net/netip",
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := check(t, tt.rules)
			if len(rec.failures) != len(tt.want) || rec.fatal != tt.fatal {
				t.Fatalf("Check(%+v) reported %q (fatal %v), want %d failures like %q (fatal %v)",
					tt.rules, rec.failures, rec.fatal, len(tt.want), tt.want, tt.fatal)
			}
			for i, got := range rec.failures {
				if !strings.Contains(got, tt.want[i]) {
					t.Errorf("Check(%+v) failure %d = %q, want it to contain %q", tt.rules, i, got, tt.want[i])
				}
			}
		})
	}
}

func TestImpureCallsSeesViolations(t *testing.T) {
	src := `package p
import clock "time"
func f() { go f(); _ = clock.Now(); _ = clock.Since(clock.Time{}) }
func g(now clock.Time) clock.Duration { return now.Sub(now) }`
	got, err := impureCalls("p.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p.go:3:12: starts a goroutine", "p.go:3:24: uses time.Now", "p.go:3:41: uses time.Since"}
	if len(got) != len(want) || !slices.EqualFunc(got, want, strings.HasPrefix) {
		t.Errorf("impureCalls = %q, want %q", got, want)
	}
}
