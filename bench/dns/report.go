package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func pick(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

// typeMix is "A 1200, AAAA 900, ..." in a fixed order.
func typeMix(types map[string]int) string {
	keys := slices.Sorted(maps.Keys(types))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, types[k])
	}
	return strings.Join(parts, ", ")
}

// rcodeMix is "NOERROR 85.1%, NXDOMAIN 14.9%".
func rcodeMix(rc map[string]int64) string {
	var total int64
	for _, n := range rc {
		total += n
	}
	if total == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(rc))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.1f%%", k, float64(rc[k])*100/float64(total))
	}
	return strings.Join(parts, ", ")
}

// ratio is a/b with two decimals, or "-" without a reference.
func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// figures are one server's medians.
type figures struct {
	qps, qpsLo, qpsHi, busy, cpuUS, latUS, others float64
	fullCPUUS                                     float64 // CPU µs per query at full speed
	lost                                          int64
}

func summarize(ss []sample) figures {
	qps := pick(ss, func(s sample) float64 { return s.maxQPS })
	f := figures{
		qps:   median(qps),
		qpsLo: slices.Min(qps), qpsHi: slices.Max(qps),
		busy:      median(pick(ss, func(s sample) float64 { return s.maxBusy })),
		cpuUS:     median(pick(ss, func(s sample) float64 { return s.cpuPerQuery.Seconds() * 1e6 })),
		fullCPUUS: median(pick(ss, func(s sample) float64 { return s.maxCPUPerQuery.Seconds() * 1e6 })),
		latUS:     median(pick(ss, func(s sample) float64 { return s.latency.Seconds() * 1e6 })),
		others:    slices.Max(pick(ss, func(s sample) float64 { return max(s.maxOthers, s.fixedOthers) })),
	}
	for _, s := range ss {
		f.lost += s.maxLost + s.fixedLost
	}
	return f
}

// quiet is the most CPU other processes may use, in cores, during a
// sample's two measurements for it to count as taken on a quiet machine.
const quiet = 0.2

// printResults prints the comparison table over every round and, when
// some rounds ran on a busy machine, again over the quiet rounds only;
// then Buoy against the targets, from the quiet rounds if every
// server has some.
func printResults(w io.Writer, cfg config, samples map[string][]sample) {
	fmt.Fprintf(w, "Median of %d rounds. qps: server pinned to core %d, dnsperf (-c %d -q %d, %v) to core %d.\n",
		cfg.rounds, cfg.serverCPU, cfg.clients, cfg.outstanding, cfg.duration, cfg.clientCPU)
	fmt.Fprintf(w, "CPU/query: the server's utime+stime over queries answered, at %d qps offered for %v.\n", cfg.load, cfg.duration)
	fmt.Fprintf(w, "CPU/query at full speed: the same over the full-speed run, where the server never waits for work.\n")
	fmt.Fprintf(w, "others: CPU time of every other process on the machine during the measurements, in cores (most of any round).\n\n")
	fig := printTable(w, cfg, samples)
	calm := map[string][]sample{}
	dropped, allCalm := 0, true
	for name, ss := range samples {
		for _, s := range ss {
			if max(s.maxOthers, s.fixedOthers) <= quiet {
				calm[name] = append(calm[name], s)
			} else {
				dropped++
			}
		}
		allCalm = allCalm && len(calm[name]) > 0
	}
	switch {
	case dropped > 0 && len(calm) == 0:
		fmt.Fprintf(w, "\nIn no round did other processes use at most %.1f cores: every figure above is from a busy machine.\n", quiet)
	case dropped > 0:
		fmt.Fprintf(w, "\nOnly the rounds where other processes used at most %.1f cores (%d of %d server runs left out):\n\n", quiet, dropped, cfg.rounds*len(cfg.servers))
		calmFig := printTable(w, cfg, calm)
		if allCalm {
			fig = calmFig
		}
	}
	fmt.Fprintln(w)
	for _, s := range cfg.servers {
		if ss := samples[s.name]; len(ss) > 0 {
			fmt.Fprintf(w, "answers from %-8s %s\n", s.name+":", rcodeMix(ss[0].rcodes))
		}
	}
	b, ok := fig["buoy"]
	if !ok {
		return
	}
	from := "all rounds"
	if dropped > 0 && allCalm {
		from = "quiet rounds"
	}
	fmt.Fprintf(w, "\nBuoy against the targets of issue 4 (%s):\n", from)
	nsd, haveNSD := fig["nsd"]
	core, haveCore := fig["coredns"]
	target := func(what string, got, ref float64, want string, pass, have bool) {
		if !have {
			fmt.Fprintf(w, "  %-26s (no reference server in this run)\n", what)
			return
		}
		verdict := "met"
		if !pass {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  %-26s %.2f× (want %s): %s\n", what, got/ref, want, verdict)
	}
	target("qps vs CoreDNS", b.qps, core.qps, "≥ 2×", b.qps >= 2*core.qps, haveCore)
	target("CPU per query vs CoreDNS", b.cpuUS, core.cpuUS, "≤ 0.5×", b.cpuUS <= 0.5*core.cpuUS, haveCore)
	target("qps vs NSD", b.qps, nsd.qps, "≥ 0.8×", b.qps >= 0.8*nsd.qps, haveNSD)
}

// printTable prints one row per server with samples and returns the
// figures it printed.
func printTable(w io.Writer, cfg config, samples map[string][]sample) map[string]figures {
	fig := map[string]figures{}
	for name, ss := range samples {
		if len(ss) > 0 {
			fig[name] = summarize(ss)
		}
	}
	nsd, core := fig["nsd"], fig["coredns"]
	fmt.Fprintln(w, "| server | rounds | qps pinned | range | ×NSD | ×CoreDNS | server core busy | CPU µs/query | ×NSD | ×CoreDNS | latency at load | CPU µs/query at full speed | lost | others |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range cfg.servers {
		f, ok := fig[s.name]
		if !ok {
			fmt.Fprintf(w, "| %s | 0 | | | | | | | | | | | | |\n", s.name)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f–%.0f | %s | %s | %.0f%% | %.1f | %s | %s | %.0f µs | %.1f (%s CoreDNS) | %d | %.2f |\n",
			s.name, len(samples[s.name]), f.qps, f.qpsLo, f.qpsHi, ratio(f.qps, nsd.qps), ratio(f.qps, core.qps), f.busy*100,
			f.cpuUS, ratio(f.cpuUS, nsd.cpuUS), ratio(f.cpuUS, core.cpuUS), f.latUS, f.fullCPUUS, ratio(f.fullCPUUS, core.fullCPUUS), f.lost, f.others)
	}
	return fig
}

// durationMS prints d in milliseconds with a sensible precision.
func durationMS(d time.Duration) string {
	ms := d.Seconds() * 1000
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.2f ms", ms)
}
