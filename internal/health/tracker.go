package health

// Tracker turns a sequence of probe results into a status with hysteresis.
// It starts failing; rise consecutive passes make it healthy and fall
// consecutive failures make it failing again. A result that agrees with the
// current status resets the run of the other kind, so "pass, fail, pass"
// with rise 2 never becomes healthy. The zero value is not usable; use
// NewTracker. A Tracker is not safe for concurrent use.
type Tracker struct {
	rise, fall int
	healthy    bool
	// passes and fails count the current run of consecutive results;
	// at most one of them is non-zero.
	passes, fails int
}

// NewTracker returns a failing tracker. Counts below 1 are taken as 1.
func NewTracker(rise, fall int) Tracker {
	return Tracker{rise: max(rise, 1), fall: max(fall, 1)}
}

// Observe records one probe result and reports whether the status changed.
func (t *Tracker) Observe(pass bool) (changed bool) {
	if pass {
		t.fails = 0
		t.passes++
		if !t.healthy && t.passes >= t.rise {
			t.healthy = true
			return true
		}
		return false
	}
	t.passes = 0
	t.fails++
	if t.healthy && t.fails >= t.fall {
		t.healthy = false
		return true
	}
	return false
}

// Healthy reports the current status.
func (t *Tracker) Healthy() bool { return t.healthy }

// Passes is the number of consecutive passes ending with the latest result.
func (t *Tracker) Passes() int { return t.passes }

// Fails is the number of consecutive failures ending with the latest result.
func (t *Tracker) Fails() int { return t.fails }
