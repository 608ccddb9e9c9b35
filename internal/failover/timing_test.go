package failover

import (
	"errors"
	"testing"
	"time"
)

func TestProfiles(t *testing.T) {
	tests := []struct {
		name string
		want Timing
		err  error
	}{
		{"", DefaultTiming(), nil},
		{"default", DefaultTiming(), nil},
		{"lan", LANTiming(), nil},
		{"LAN", Timing{}, ErrUnknownProfile},
		{"wan", Timing{}, ErrUnknownProfile},
	}
	for _, tt := range tests {
		got, err := Profile(tt.name)
		if got != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("Profile(%q) = %+v, %v, want %+v, %v", tt.name, got, err, tt.want, tt.err)
		}
		if err == nil {
			if err := got.Validate(); err != nil {
				t.Errorf("Profile(%q).Validate() = %v", tt.name, err)
			}
		}
	}
}

// TestProfileArithmetic keeps the numbers in the package documentation
// true: after a kill -9 the role is free Lease+Margin after the last
// acknowledged renewal, which is on average Renew/2 old; add a commit, an
// apply and one renewal round trip (overhead) and the targets hold: default
// median ≤ 1.5s and worst ≤ 3s, lan median ≤ 0.5s. The demote hook has
// Guard+Margin (less drift) before anyone else can be acknowledged, and a
// holder keeps its role through (Lease-Guard)/Renew - 1 lost rounds.
func TestProfileArithmetic(t *testing.T) {
	tests := []struct {
		name           string
		tm             Timing
		overhead       time.Duration // commit + apply + renewal round trip, generous
		median, worst  time.Duration
		lostRounds     int
		demoteHookTime time.Duration
	}{
		{"default", DefaultTiming(), 200 * ms, 1500 * ms, 3 * time.Second, 2, 350 * ms},
		{"lan", LANTiming(), 60 * ms, 500 * ms, time.Second, 2, 140 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := tt.tm
			if m := tm.promise() - tm.Renew/2 + tt.overhead; m > tt.median {
				t.Errorf("expected median failover %v > target %v", m, tt.median)
			}
			if w := tm.promise() + tt.overhead; w > tt.worst {
				t.Errorf("expected worst failover %v > target %v", w, tt.worst)
			}
			if n := int(tm.belief()/tm.Renew) - 1; n < tt.lostRounds {
				t.Errorf("a holder survives %d lost rounds, want at least %d", n, tt.lostRounds)
			}
			drift := time.Duration(tm.MaxDrift * float64(tm.belief()+tm.promise()))
			if d := tm.Guard + tm.Margin - drift; d < tt.demoteHookTime {
				t.Errorf("the demote hook gets %v before a new holder can be acknowledged, want at least %v", d, tt.demoteHookTime)
			}
		})
	}
}

func TestValidateTiming(t *testing.T) {
	mod := func(f func(*Timing)) Timing {
		tm := DefaultTiming()
		f(&tm)
		return tm
	}
	tests := []struct {
		name string
		tm   Timing
		ok   bool
	}{
		{"default", DefaultTiming(), true},
		{"no guard or margin, no drift", mod(func(t *Timing) { t.Guard, t.Margin, t.MaxDrift = 0, 0, 0 }), false},
		{"no guard, a margin for the drift", mod(func(t *Timing) { t.Guard, t.Margin, t.MaxDrift = 0, 30*ms, 0.01 }), true},
		{"margin too small for the drift", mod(func(t *Timing) { t.Guard, t.Margin, t.MaxDrift = 0, 20*ms, 0.01 }), false},
		{"huge drift", mod(func(t *Timing) { t.MaxDrift = 0.3 }), false},
		{"drift out of range", mod(func(t *Timing) { t.MaxDrift = 0.5 }), false},
		{"negative drift", mod(func(t *Timing) { t.MaxDrift = -0.1 }), false},
		{"zero lease", mod(func(t *Timing) { t.Lease = 0 }), false},
		{"zero renew", mod(func(t *Timing) { t.Renew = 0 }), false},
		{"negative guard", mod(func(t *Timing) { t.Guard = -ms }), false},
		{"negative margin", mod(func(t *Timing) { t.Margin = -ms }), false},
		{"retry above renew", mod(func(t *Timing) { t.Retry = t.Renew + 1 }), false},
		{"renew as long as the belief", mod(func(t *Timing) { t.Renew = t.Lease - t.Guard }), false},
	}
	for _, tt := range tests {
		err := tt.tm.Validate()
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, ErrUnsafeTiming) {
			t.Errorf("%s: Validate(%+v) = %v, want ok %v", tt.name, tt.tm, err, tt.ok)
		}
	}
}
