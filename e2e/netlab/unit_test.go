package netlab_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"buoy/e2e/netlab"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// countInterfaces counts the interface lines of /proc/net/dev (after its
// two header lines).
func countInterfaces(procNetDev string) int {
	n := 0
	for i, line := range strings.Split(strings.TrimSpace(procNetDev), "\n") {
		if i >= 2 && strings.Contains(line, ":") {
			n++
		}
	}
	return n
}

func TestSweepRefusesForeignPrefix(t *testing.T) {
	for _, prefix := range []string{"", "nl", "nl1-", "nl1-abcdef", "x1-abcdef-", "nl12-ABCDEF-", "nl12-abcdef-x", "nl-abcdef-"} {
		if err := netlab.Sweep(context.Background(), prefix); !errors.Is(err, netlab.ErrBadPrefix) {
			t.Errorf("Sweep(%q) = %v, want ErrBadPrefix", prefix, err)
		}
	}
}

func TestNATModeString(t *testing.T) {
	tests := []struct {
		m    netlab.NATMode
		want string
	}{
		{netlab.Cone, "cone"},
		{netlab.Symmetric, "symmetric"},
		{netlab.NATMode(7), "NATMode(7)"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("NATMode(%d).String() = %q, want %q", int(tt.m), got, tt.want)
		}
	}
}

// TestNewWithoutTools checks the gate: outside CI a lab that cannot run
// skips with the documented message, in CI it fails.
func TestNewWithoutTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no ip, no nft
	tests := []struct {
		ci        string
		wantSkip  bool
		wantFatal bool
	}{
		{"", true, false},
		{"false", true, false},
		{"true", false, true},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			f, _ := runFake(t, func(tb *fakeTB) { netlab.New(tb) })
			if got := len(f.skips) > 0; got != tt.wantSkip {
				t.Errorf("New with CI=%q skipped: %v (%q), want %v", tt.ci, got, f.skips, tt.wantSkip)
			}
			if got := len(f.fatals) > 0; got != tt.wantFatal {
				t.Errorf("New with CI=%q failed: %v (%q), want %v", tt.ci, got, f.fatals, tt.wantFatal)
			}
			for _, msg := range f.skips {
				if !strings.Contains(msg, netlab.SkipMessage) {
					t.Errorf("skip message %q does not contain %q", msg, netlab.SkipMessage)
				}
			}
			if len(f.cleanups) != 0 {
				t.Errorf("New registered %d cleanups before giving up, want 0", len(f.cleanups))
			}
		})
	}
}
