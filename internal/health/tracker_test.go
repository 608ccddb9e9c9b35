package health

import "testing"

func TestTracker(t *testing.T) {
	// results: '+' pass, '-' fail. want: the status after each result,
	// 'H' healthy, 'F' failing.
	tests := []struct {
		name       string
		rise, fall int
		results    string
		want       string
	}{
		{"starts failing, rises after rise passes", 2, 2, "++", "FH"},
		{"rise 1 flips at once", 1, 1, "+-+", "HFH"},
		{"blip does not fall", 2, 2, "++-+", "FHHH"},
		{"falls after fall failures", 2, 2, "++--", "FHHF"},
		{"interrupted rise restarts", 3, 1, "++-+++", "FFFFFH"},
		{"interrupted fall restarts", 1, 3, "+--+---", "HHHHHHF"},
		{"failures while failing change nothing", 2, 2, "----++", "FFFFFH"},
		{"long flapping never rises", 2, 2, "+-+-+-+-", "FFFFFFFF"},
		{"fall 3 then recover", 2, 3, "++---++", "FHHHFFH"},
		{"counts below 1 act as 1", 0, -1, "+-", "HF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.rise, tt.fall)
			got := make([]byte, 0, len(tt.results))
			prev := tr.Healthy()
			for i, r := range []byte(tt.results) {
				changed := tr.Observe(r == '+')
				if changed != (tr.Healthy() != prev) {
					t.Fatalf("result %d: Observe = %v, but status went %v -> %v", i, changed, prev, tr.Healthy())
				}
				prev = tr.Healthy()
				if tr.Healthy() {
					got = append(got, 'H')
				} else {
					got = append(got, 'F')
				}
			}
			if string(got) != tt.want {
				t.Errorf("Tracker(rise %d, fall %d) over %q = %s, want %s", tt.rise, tt.fall, tt.results, got, tt.want)
			}
		})
	}
}

func TestTrackerRuns(t *testing.T) {
	tr := NewTracker(5, 5)
	for range 3 {
		tr.Observe(true)
	}
	if tr.Passes() != 3 || tr.Fails() != 0 {
		t.Errorf("after 3 passes: Passes, Fails = %d, %d, want 3, 0", tr.Passes(), tr.Fails())
	}
	tr.Observe(false)
	if tr.Passes() != 0 || tr.Fails() != 1 {
		t.Errorf("after a failure: Passes, Fails = %d, %d, want 0, 1", tr.Passes(), tr.Fails())
	}
}
