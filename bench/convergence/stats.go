package main

import (
	"slices"
	"time"
)

// summary is what the benchmark reports for one scenario.
type summary struct {
	n           int
	median, max time.Duration
}

// summarize returns the median (the mean of the middle two for an even
// count) and the maximum of ds; the zero summary for none.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	mid := len(s) / 2
	med := s[mid]
	if len(s)%2 == 0 {
		med = (s[mid-1] + s[mid]) / 2
	}
	return summary{n: len(s), median: med, max: s[len(s)-1]}
}

// ratio returns how many times faster d is than ref ("6.7x"), or how many
// times slower ("0.5x" reads as twice as slow).
func ratio(ref, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(ref) / float64(d)
}
