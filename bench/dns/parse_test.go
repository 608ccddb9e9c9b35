package main

import (
	"strings"
	"testing"
	"time"
)

const dnsperfOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5300 -d q.txt -l 10
[Status] Sending queries (to 127.0.0.1:5300)
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         200010
  Queries completed:    199990 (99.99%)
  Queries lost:         20 (0.01%)

  Response codes:       NOERROR 170015 (85.01%), NXDOMAIN 29975 (14.99%)
  Average packet size:  request 35, response 131
  Run time (s):         10.000060
  Queries per second:   19998.880007

  Average Latency (s):  0.000088 (min 0.000020, max 0.002170)
  Latency StdDev (s):   0.000073

`

func TestParseDnsperf(t *testing.T) {
	r, err := parseDnsperf(dnsperfOutput)
	if err != nil {
		t.Fatalf("parseDnsperf: %v", err)
	}
	if r.sent != 200010 || r.completed != 199990 || r.lost != 20 {
		t.Errorf("parseDnsperf counts = %d sent, %d completed, %d lost, want 200010, 199990, 20", r.sent, r.completed, r.lost)
	}
	if r.qps != 19998.880007 {
		t.Errorf("parseDnsperf qps = %v, want 19998.880007", r.qps)
	}
	if r.latency != 88*time.Microsecond {
		t.Errorf("parseDnsperf latency = %v, want 88µs", r.latency)
	}
	if r.rcodes["NOERROR"] != 170015 || r.rcodes["NXDOMAIN"] != 29975 || len(r.rcodes) != 2 {
		t.Errorf("parseDnsperf rcodes = %v, want NOERROR 170015, NXDOMAIN 29975", r.rcodes)
	}
	for _, cut := range []string{"Queries sent", "Queries completed", "Queries lost", "Queries per second"} {
		broken := strings.Replace(dnsperfOutput, cut, "Something else", 1)
		if _, err := parseDnsperf(broken); err == nil {
			t.Errorf("parseDnsperf without %q: no error", cut)
		}
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line         string
		ppid         int
		utime, stime uint64
		wantErr      bool
	}{
		{"4242 (nsd) S 4241 4242 4242 0 -1 4194560 300 0 0 0 1234 567 0 0 20 0 1 0 100 1000 200", 4241, 1234, 567, false},
		// A name with spaces and parentheses.
		{"17 (a) b (c)) R 1 17 17 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1", 1, 5, 6, false},
		{"17 (short) R 1 2 3", 0, 0, 0, true},
		{"no parenthesis here", 0, 0, 0, true},
		{"17 (x) R notanumber 17 17 0 -1 0 0 0 0 0 5 6 0", 0, 0, 0, true},
	} {
		s, err := parseStat(tc.line)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseStat(%q) error = %v, want error %v", tc.line, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && (s.ppid != tc.ppid || s.utime != tc.utime || s.stime != tc.stime) {
			t.Errorf("parseStat(%q) = %+v, want ppid %d utime %d stime %d", tc.line, s, tc.ppid, tc.utime, tc.stime)
		}
	}
}

func TestParseRollup(t *testing.T) {
	in := "55d0-7ffd [rollup]\nRss:               27648 kB\nPss:               25001 kB\nPss_Anon:          20000 kB\nShared_Clean:       3000 kB\n"
	rss, pss := parseRollup([]byte(in))
	if rss != 27648 || pss != 25001 {
		t.Errorf("parseRollup = %d, %d, want 27648, 25001", rss, pss)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		servers string
		wantErr bool
	}{
		{nil, "buoy,nsd,knot,coredns", false},
		{[]string{"-servers", "nsd, buoy"}, "nsd,buoy", false},
		{[]string{"-servers", "bind"}, "", true},
		{[]string{"-nx", "1"}, "", true},
		{[]string{"-rounds", "0"}, "", true},
		{[]string{"extra"}, "", true},
	} {
		cfg, err := parseFlags(tc.args, &strings.Builder{})
		if (err != nil) != tc.wantErr {
			t.Errorf("parseFlags(%q) error = %v, want error %v", tc.args, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		var names []string
		for _, s := range cfg.servers {
			names = append(names, s.name)
		}
		if got := strings.Join(names, ","); got != tc.servers {
			t.Errorf("parseFlags(%q) servers = %s, want %s", tc.args, got, tc.servers)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("4242 (nsd) S 4241 4242 4242 0 -1 4194560 300 0 0 0 1234 567 0 0 20 0 1 0 100 1000 200")
	f.Add("17 (a) b (c)) R 1 17 17 0 -1 0 0 0 0 0 5 6")
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = parseStat(line)
	})
}

func FuzzParseDnsperf(f *testing.F) {
	f.Add(dnsperfOutput)
	f.Fuzz(func(t *testing.T, out string) {
		r, err := parseDnsperf(out)
		if err == nil && (r.sent < 0 || r.completed < 0 || r.lost < 0) {
			t.Errorf("parseDnsperf(%q) = %+v: negative count", out, r)
		}
	})
}
