package main

import (
	"strings"
	"testing"
	"time"
)

func TestPrintResults(t *testing.T) {
	cfg, err := parseFlags([]string{"-servers", "buoy,nsd,coredns", "-rounds", "2"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	s := func(qps float64, cpuUS int, others float64) sample {
		return sample{maxQPS: qps, maxBusy: 1, cpuPerQuery: time.Duration(cpuUS) * time.Microsecond, maxOthers: others, rcodes: map[string]int64{"NOERROR": 85, "NXDOMAIN": 15}}
	}
	for _, tc := range []struct {
		name    string
		samples map[string][]sample
		want    []string
		notWant []string
	}{
		{
			name: "quiet machine, targets met",
			samples: map[string][]sample{
				"buoy":    {s(120000, 10, 0), s(120000, 10, 0)},
				"nsd":     {s(140000, 8, 0), s(140000, 8, 0)},
				"coredns": {s(40000, 30, 0), s(40000, 30, 0)},
			},
			want:    []string{"qps vs CoreDNS             3.00× (want ≥ 2×): met", "CPU per query vs CoreDNS   0.33× (want ≤ 0.5×): met", "qps vs NSD                 0.86× (want ≥ 0.8×): met", "NXDOMAIN 15.0%"},
			notWant: []string{"Only the rounds", "MISSED"},
		},
		{
			// The busy round of each server is left out of the verdict.
			name: "busy rounds left out",
			samples: map[string][]sample{
				"buoy":    {s(100000, 20, 0), s(10000, 90, 1.5)},
				"nsd":     {s(140000, 8, 0.1), s(20000, 50, 1.5)},
				"coredns": {s(40000, 30, 0), s(5000, 99, 1.5)},
			},
			want: []string{"Only the rounds", "3 of 6 server runs left out", "(quiet rounds)", "qps vs CoreDNS             2.50× (want ≥ 2×): met",
				"CPU per query vs CoreDNS   0.67× (want ≤ 0.5×): MISSED", "qps vs NSD                 0.71× (want ≥ 0.8×): MISSED"},
		},
		{
			name: "no quiet round",
			samples: map[string][]sample{
				"buoy":    {s(100000, 20, 1)},
				"nsd":     {s(140000, 8, 1)},
				"coredns": {s(40000, 30, 1)},
			},
			want:    []string{"In no round", "(all rounds)"},
			notWant: []string{"Only the rounds"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printResults(&b, cfg, tc.samples)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("printResults output lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("printResults output has %q:\n%s", w, b.String())
				}
			}
		})
	}
}
