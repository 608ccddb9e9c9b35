package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"one value", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"median of even takes lower", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100", hundred, 0.99, 99 * time.Millisecond},
		{"p50 of 100", hundred, 0.50, 50 * time.Millisecond},
		{"max", hundred, 1, 100 * time.Millisecond},
		{"tiny p", ms(5, 6), 0.001, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestRunStep(t *testing.T) {
	t.Run("every request once", func(t *testing.T) {
		var mu sync.Mutex
		seen := map[int]int{}
		workers := map[int]bool{}
		r := runStep(t.Context(), 8, 500, time.Minute, func(_ context.Context, w, seq int) error {
			mu.Lock()
			seen[seq]++
			workers[w] = true
			mu.Unlock()
			return nil
		})
		if r.Done != 500 || r.Errors != 0 {
			t.Fatalf("runStep(8 clients, 500) = %d done, %d errors, want 500, 0", r.Done, r.Errors)
		}
		for seq := range 500 {
			if seen[seq] != 1 {
				t.Errorf("request %d sent %d times, want once", seq, seen[seq])
			}
		}
		for w := range workers {
			if w < 0 || w >= 8 {
				t.Errorf("worker number %d, want 0 to 7", w)
			}
		}
		if r.Clients != 8 || r.Elapsed <= 0 || r.PerSec() <= 0 {
			t.Errorf("runStep = %+v, want 8 clients and a positive rate", r)
		}
	})
	t.Run("failures counted, not timed", func(t *testing.T) {
		boom := errors.New("boom")
		r := runStep(t.Context(), 4, 200, time.Minute, func(_ context.Context, _, seq int) error {
			if seq%4 == 0 {
				return boom
			}
			return nil
		})
		if r.Done != 150 || r.Errors != 50 || !errors.Is(r.FirstErr, boom) {
			t.Errorf("runStep = %d done, %d errors, first %v; want 150, 50, boom", r.Done, r.Errors, r.FirstErr)
		}
	})
	t.Run("stops after too many failures", func(t *testing.T) {
		var calls atomic.Int64
		r := runStep(t.Context(), 2, 100000, time.Minute, func(context.Context, int, int) error {
			calls.Add(1)
			return errors.New("down")
		})
		if r.Done != 0 || calls.Load() >= 100000 {
			t.Errorf("runStep against a failing system: %d done after %d calls, want 0 done and an early stop", r.Done, calls.Load())
		}
		if r.Errors < maxErrors(100000) {
			t.Errorf("runStep stopped after %d errors, want at least %d", r.Errors, maxErrors(100000))
		}
	})
	t.Run("time limit cuts the step", func(t *testing.T) {
		// Requests block until the step's context ends: none completes, and
		// those cut off are not failures.
		r := runStep(t.Context(), 3, 1000, 50*time.Millisecond, func(ctx context.Context, _, _ int) error {
			<-ctx.Done()
			return ctx.Err()
		})
		if r.Done != 0 || r.Errors != 0 {
			t.Errorf("runStep cut by its limit = %d done, %d errors, want 0, 0", r.Done, r.Errors)
		}
	})
	t.Run("latency percentiles", func(t *testing.T) {
		r := runStep(t.Context(), 1, 20, time.Minute, func(_ context.Context, _, seq int) error {
			if seq == 19 {
				time.Sleep(20 * time.Millisecond)
			}
			return nil
		})
		// One slow request of 20: the median is fast, p99 is the slow one.
		if r.P99 < 20*time.Millisecond || r.P50 >= 20*time.Millisecond {
			t.Errorf("runStep p50 %v, p99 %v; want p50 < 20ms <= p99", r.P50, r.P99)
		}
	})
}

func TestParseCounts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1,16,64,256", []int{1, 16, 64, 256}, false},
		{" 4 , 8", []int{4, 8}, false},
		{"1", []int{1}, false},
		{"", nil, true},
		{"0", nil, true},
		{"5000", nil, true},
		{"1,,2", nil, true},
		{"x", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCounts(tt.in)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("parseCounts(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseCounts(f *testing.F) {
	for _, s := range []string{"1,16,64,256", "0", "", "-1", "4096,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseCounts(s)
		if err != nil {
			return
		}
		if len(got) != strings.Count(s, ",")+1 {
			t.Errorf("parseCounts(%q) = %v: %d counts from %d fields", s, got, len(got), strings.Count(s, ",")+1)
		}
		for _, n := range got {
			if n < 1 || n > 4096 {
				t.Errorf("parseCounts(%q) = %v: %d out of range", s, got, n)
			}
		}
	})
}

func TestParseSet(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"put,get", []string{"put", "get"}, false},
		{"get,put", []string{"put", "get"}, false},
		{"get", []string{"get"}, false},
		{"get,get", []string{"get"}, false},
		{"del", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSet(tt.in, "put", "get")
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("parseSet(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestPairedTable: ratios are taken round by round, and the table is
// left out when fewer than two rounds ran both systems.
func TestPairedTable(t *testing.T) {
	step := func(done int, p99 time.Duration) stepResult {
		return stepResult{Done: done, Elapsed: time.Second, P99: p99}
	}
	r := results{}
	for i, pair := range [][2]int{{300, 100}, {100, 100}, {1000, 500}} {
		r.add("buoy", "put", 64, step(pair[0], time.Duration(i+1)*time.Millisecond))
		r.add("etcd", "put", 64, step(pair[1], 2*time.Millisecond))
	}
	r.add("buoy", "put", 1, step(10, time.Millisecond)) // one round only
	r.add("etcd", "put", 1, step(10, time.Millisecond))
	var b strings.Builder
	r.pairedTable(&b, []string{"put"}, []int{1, 64})
	want := "| put | 64 | 3.00 1.00 2.00 | 2.00 | 0.50 1.00 1.50 | 1.00 |\n"
	if got := b.String(); !strings.HasSuffix(got, "|---|---:|---|---:|---|---:|\n"+want) {
		t.Errorf("pairedTable =\n%s\nwant only the row\n%s", got, want)
	}
}

func TestVerdict(t *testing.T) {
	etcd := summary{perSec: 1000, p99: 10 * time.Millisecond, ok: true}
	tests := []struct {
		name    string
		op      string
		clients int
		buoy    summary
		want    string
	}{
		{"fast enough", "put", 64, summary{perSec: 1500, p99: 10 * time.Millisecond, ok: true}, "met"},
		{"too slow at 64", "put", 64, summary{perSec: 1499, p99: 5 * time.Millisecond, ok: true}, "**missed** (req/s < 1.5×)"},
		{"ratio not asked below 64", "put", 16, summary{perSec: 900, p99: 5 * time.Millisecond, ok: true}, "met"},
		{"p99 worse", "put", 1, summary{perSec: 5000, p99: 11 * time.Millisecond, ok: true}, "**missed** (p99 > etcd)"},
		{"both", "put", 256, summary{perSec: 100, p99: time.Second, ok: true}, "**missed** (req/s < 1.5×, p99 > etcd)"},
		{"gets have no target", "get", 64, summary{perSec: 1, p99: time.Second, ok: true}, ""},
		{"not run", "put", 64, summary{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verdict(tt.op, tt.clients, tt.buoy, etcd); got != tt.want {
				t.Errorf("verdict(%s, %d, %+v) = %q, want %q", tt.op, tt.clients, tt.buoy, got, tt.want)
			}
		})
	}
}

// TestPool checks that workers spread over the endpoints, each keeps one
// connection, and a non-200 answer is an error.
func TestPool(t *testing.T) {
	var conns [2]atomic.Int64
	var hits [2]atomic.Int64
	var srvs []*httptest.Server
	for i := range 2 {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			b, _ := io.ReadAll(r.Body)
			if string(b) == "bad" {
				http.Error(w, "refused", http.StatusConflict)
				return
			}
			w.Write(b)
		}))
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns[i].Add(1)
			}
		}
		s.Start()
		defer s.Close()
		srvs = append(srvs, s)
	}
	p := newPool([]string{srvs[0].URL, srvs[1].URL}, 4)
	defer p.close()
	for range 5 {
		for w := range 4 {
			got, err := p.do(t.Context(), w, "PUT", "/v1/kv/a", []byte("v"), "")
			if err != nil || string(got) != "v" {
				t.Fatalf("do(worker %d) = %q, %v; want \"v\", nil", w, got, err)
			}
		}
	}
	for i := range 2 {
		if hits[i].Load() != 10 || conns[i].Load() != 2 {
			t.Errorf("server %d: %d requests on %d connections, want 10 on 2", i, hits[i].Load(), conns[i].Load())
		}
	}
	if _, err := p.do(t.Context(), 0, "PUT", "/v1/kv/a", []byte("bad"), ""); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("do() with a 409 answer = %v, want an error naming 409", err)
	}
}

func TestParseStat(t *testing.T) {
	// Fields after the command: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime ...
	const rest = " S 1 2 3 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 9 0 12345 1000 200"
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"1234 (buoy)" + rest, 3800 * time.Millisecond, false},
		{"1234 (a (b) c)" + rest, 3800 * time.Millisecond, false},
		{"1234 (buoy) S 1 2", 0, true},
		{"1234 buoy" + rest, 0, true},
		{"1234 (buoy) S 1 2 3 0 -1 4194560 100 0 0 0 x 130", 0, true},
		{"1234 (buoy) S 1 2 3 0 -1 4194560 100 0 0 0 -5 130", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStat(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (buoy) S 1 2 3 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 9 0 12345 1000 200"))
	f.Add([]byte("1 ()) R 0 0 0 0 0 0 0 0 0 0 18446744073709551615 1"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseStat(b)
		if err != nil {
			return
		}
		if d < 0 || d%(time.Second/userHZ) != 0 {
			t.Errorf("parseStat(%q) = %v, want a non-negative multiple of %v", b, d, time.Second/userHZ)
		}
	})
}

func TestCPUTimeOfSelf(t *testing.T) {
	// Burn CPU until the count, at 10 ms resolution, moves; a process that
	// spins for 10 s without being charged any CPU time is a bug.
	start, err := cpuTime([]int{os.Getpid()})
	if err != nil {
		t.Fatalf("cpuTime(self) = %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for x := 0; x < 1e6; x++ {
			_ = x * x
		}
		d, err := cpuTime([]int{os.Getpid()})
		if err != nil {
			t.Fatalf("cpuTime(self) = %v", err)
		}
		if d > start {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpuTime(self) stayed at %v while spinning", d)
		}
	}
	if _, err := cpuTime([]int{-1}); err == nil {
		t.Error("cpuTime(-1) = nil error, want one")
	}
}
