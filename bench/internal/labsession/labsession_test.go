package labsession

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestSession(t *testing.T) {
	var out bytes.Buffer
	s := New(&out, false)
	if !s.Run(func() {}) {
		t.Error("Run(returns normally) = false, want true")
	}
	if s.Run(func() { s.Fatalf("boom %d", 1) }) {
		t.Error("Run(Fatalf) = true, want false")
	}
	if !s.Failed() || s.LastError() != "boom 1" || !strings.Contains(out.String(), "ERROR: boom 1") {
		t.Errorf("after Fatalf: Failed %v, LastError %q, out %q", s.Failed(), s.LastError(), out.String())
	}
	if s.Run(func() { s.Skipf("no %s", "root") }) {
		t.Error("Run(Skipf) = true, want false")
	}
	if skipped, why := s.Skipped(); !skipped || why != "no root" {
		t.Errorf("Skipped() = %v, %q; want true, \"no root\"", skipped, why)
	}
	var order []int
	s.Cleanup(func() { order = append(order, 1) })
	s.Cleanup(func() { order = append(order, 2); s.Fatalf("cleanup 2 fails") })
	s.Cleanup(func() { order = append(order, 3) })
	s.Close()
	if !slices.Equal(order, []int{3, 2, 1}) {
		t.Errorf("cleanups ran in order %v, want [3 2 1] (a failing one must not stop the rest)", order)
	}
}

func TestLogfOnlyVerboseOrFailed(t *testing.T) {
	var out bytes.Buffer
	s := New(&out, false)
	s.Logf("quiet")
	if out.Len() != 0 {
		t.Errorf("Logf on a quiet session printed %q", out.String())
	}
	s.Errorf("bad")
	s.Logf("now shown")
	if !strings.Contains(out.String(), "now shown") {
		t.Errorf("Logf after a failure did not print: %q", out.String())
	}
}
