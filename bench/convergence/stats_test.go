package main

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"none", nil, summary{}},
		{"one", []time.Duration{2 * s}, summary{n: 1, median: 2 * s, max: 2 * s}},
		{"odd, unsorted", []time.Duration{3 * s, 1 * s, 2 * s}, summary{n: 3, median: 2 * s, max: 3 * s}},
		{"even: mean of the middle two", []time.Duration{4 * s, 1 * s, 2 * s, 3 * s}, summary{n: 4, median: 2500 * time.Millisecond, max: 4 * s}},
		{"outlier moves the max only", []time.Duration{s, s, s, 30 * s, s}, summary{n: 5, median: s, max: 30 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSummarizeKeepsInput(t *testing.T) {
	in := []time.Duration{3, 1, 2}
	summarize(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("summarize reordered its input: %v", in)
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		ref, d time.Duration
		want   float64
	}{
		{10 * time.Second, 2 * time.Second, 5},
		{10 * time.Second, 20 * time.Second, 0.5},
		{10 * time.Second, 0, 0},
	}
	for _, tt := range tests {
		if got := ratio(tt.ref, tt.d); got != tt.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", tt.ref, tt.d, got, tt.want)
		}
	}
}
