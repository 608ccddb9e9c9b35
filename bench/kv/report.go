package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// stepKey names one measured step.
type stepKey struct {
	system, op string
	clients    int
}

// results holds every round's result of every step.
type results map[stepKey][]stepResult

func (r results) add(system, op string, clients int, s stepResult) {
	k := stepKey{system, op, clients}
	r[k] = append(r[k], s)
}

// summary is the median over rounds of each figure of a step, taken
// separately (as benchstat does).
type summary struct {
	perSec   float64
	p50, p99 time.Duration
	cpu      time.Duration // servers' CPU time per request
	errors   int
	ok       bool // the step was run
}

func (r results) summary(system, op string, clients int) summary {
	rs := r[stepKey{system, op, clients}]
	if len(rs) == 0 {
		return summary{}
	}
	var rates []float64
	var p50s, p99s, cpus []time.Duration
	errs := 0
	for _, s := range rs {
		rates = append(rates, s.PerSec())
		p50s = append(p50s, s.P50)
		p99s = append(p99s, s.P99)
		cpus = append(cpus, s.CPUPerReq())
		errs += s.Errors
	}
	return summary{perSec: median(rates), p50: median(p50s), p99: median(p99s), cpu: median(cpus), errors: errs, ok: true}
}

// median returns the middle value (the mean of the two middle ones for an
// even count) of a non-empty list.
func median[T ~int64 | ~float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Issue 5's targets for puts: at least this many times etcd's throughput
// from targetFrom clients up, and a p99 no worse than etcd's everywhere.
const (
	targetRatio = 1.5
	targetFrom  = 64
)

// table prints one Markdown table row per operation and client count, with
// Buoy's and etcd's figures, their ratios and, for puts, whether issue 5's
// targets are met.
func (r results) table(w io.Writer, ops []string, clients []int) {
	fmt.Fprintln(w, "| op | clients | buoy req/s | p50 | p99 | CPU/req | etcd req/s | p50 | p99 | CPU/req | req/s buoy/etcd | p99 buoy/etcd | CPU/req buoy/etcd | target |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, op := range ops {
		for _, c := range clients {
			b, e := r.summary("buoy", op, c), r.summary("etcd", op, c)
			both := b.ok && e.ok
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", op, c,
				rate(b), lat(b, b.p50), lat(b, b.p99), cpu(b),
				rate(e), lat(e, e.p50), lat(e, e.p99), cpu(e),
				ratio(both, b.perSec, e.perSec), ratio(both, float64(b.p99), float64(e.p99)), ratio(both, float64(b.cpu), float64(e.cpu)),
				verdict(op, c, b, e))
		}
	}
	r.pairedTable(w, ops, clients)
	var errs []string
	for _, op := range ops {
		for _, c := range clients {
			for _, sys := range []string{"buoy", "etcd"} {
				if s := r.summary(sys, op, c); s.errors > 0 {
					errs = append(errs, fmt.Sprintf("%s %s c=%d: %d", sys, op, c, s.errors))
				}
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nfailed requests (not counted in the figures): %v\n", errs)
	}
}

// paired returns Buoy's figure over etcd's in each round that ran both
// (f picks the figure). Within a round the two systems ran one right
// after the other, so each ratio compares them under about the same load
// from the rest of the machine, which the medians of the main table mix
// across rounds.
func (r results) paired(op string, clients int, f func(stepResult) float64) []float64 {
	b, e := r[stepKey{"buoy", op, clients}], r[stepKey{"etcd", op, clients}]
	var out []float64
	for i := range min(len(b), len(e)) {
		if d := f(e[i]); d > 0 {
			out = append(out, f(b[i])/d)
		}
	}
	return out
}

// pairedTable prints the per-round ratios of throughput and p99 with
// their medians, when more than one round ran both systems.
func (r results) pairedTable(w io.Writer, ops []string, clients []int) {
	perSec := func(s stepResult) float64 { return s.PerSec() }
	p99 := func(s stepResult) float64 { return float64(s.P99) }
	header := false
	for _, op := range ops {
		for _, c := range clients {
			rates, tails := r.paired(op, c, perSec), r.paired(op, c, p99)
			if len(rates) < 2 {
				continue
			}
			if !header {
				fmt.Fprintln(w, "\nBuoy/etcd round by round (the two systems ran back to back in each round):")
				fmt.Fprintln(w)
				fmt.Fprintln(w, "| op | clients | req/s ratio per round | median | p99 ratio per round | median |")
				fmt.Fprintln(w, "|---|---:|---|---:|---|---:|")
				header = true
			}
			fmt.Fprintf(w, "| %s | %d | %s | %.2f | %s | %.2f |\n", op, c, ratios(rates), median(rates), ratios(tails), median(tails))
		}
	}
}

func ratios(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}

// verdict says whether a put step meets issue 5's targets.
func verdict(op string, clients int, b, e summary) string {
	if op != "put" || !b.ok || !e.ok {
		return ""
	}
	var missed []string
	if clients >= targetFrom && b.perSec < targetRatio*e.perSec {
		missed = append(missed, fmt.Sprintf("req/s < %.1f×", targetRatio))
	}
	if b.p99 > e.p99 {
		missed = append(missed, "p99 > etcd")
	}
	if len(missed) == 0 {
		return "met"
	}
	return fmt.Sprintf("**missed** (%s)", strings.Join(missed, ", "))
}

func rate(s summary) string {
	if !s.ok {
		return "-"
	}
	return fmt.Sprintf("%.0f", s.perSec)
}

func lat(s summary, d time.Duration) string {
	if !s.ok {
		return "-"
	}
	return ms(d)
}

func cpu(s summary) string {
	if !s.ok {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", us(s.cpu))
}

func ratio(ok bool, a, b float64) string {
	if !ok || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
