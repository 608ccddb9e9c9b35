// Command convergence measures how fast a Buoy cluster follows address
// changes: real "buoy agent" processes in network namespaces (package
// e2e/nscluster, the same topologies as the e2e tests) go through the
// same change many times, and for each scenario the program prints the
// median and maximum time from the `ip addr` change to the moment every
// node reports every new address through "buoy members --json", next to
// the targets of issue 3 and the seed protocol's figures.
//
//	sudo go run ./bench/convergence -trials 10
//
// It needs root (network namespaces, nftables) and removes everything it
// made when it ends, also on Ctrl-C. See bench/README.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"buoy/bench/internal/labsession"
	"buoy/e2e/nscluster"
)

// scenario is one topology and the change each trial makes in it.
type scenario struct {
	name  string // as given to -scenarios
	title string
	build func(s *session, opts nscluster.Options, nodes int) *nscluster.Cluster
	// step makes trial's change (numbered from 0) and waits for the
	// cluster to follow.
	step func(c *nscluster.Cluster, trial int) nscluster.Change
	// Issue 3's targets; zero: none.
	targetMedian, targetMax time.Duration
	// The seed protocol's time for the same change, for scale: seedLo to
	// seedHi; zero: not comparable.
	seedLo, seedHi time.Duration
	seedWhy        string
}

func scenarios() []scenario {
	flat := func(s *session, opts nscluster.Options, nodes int) *nscluster.Cluster {
		return nscluster.Flat(s, opts, nodes)
	}
	return []scenario{
		{
			name: "one", title: "one node changes",
			build: flat,
			// Each node in turn, the leader included.
			step: func(c *nscluster.Cluster, trial int) nscluster.Change {
				ns := c.Nodes()
				return c.ReplaceAddrs(ns[trial%len(ns)])
			},
			targetMedian: 1500 * time.Millisecond, targetMax: 3 * time.Second,
			seedLo: 10 * time.Second, seedHi: 10 * time.Second, seedWhy: "one heartbeat cycle",
		},
		{
			name: "many", title: "N-1 of N change at once",
			build: flat,
			// Every node but one; the one left alone rotates.
			step: func(c *nscluster.Cluster, trial int) nscluster.Change {
				ns := c.Nodes()
				return c.ReplaceAddrs(c.Except(ns[trial%len(ns)])...)
			},
			targetMedian: 3 * time.Second,
			seedLo:       30 * time.Second, seedHi: 40 * time.Second, seedWhy: "three failed cycles plus a sync",
		},
		{
			name: "nat", title: "NAT router's WAN address changes",
			build: func(s *session, opts nscluster.Options, _ int) *nscluster.Cluster {
				return nscluster.NAT(s, opts)
			},
			step: func(c *nscluster.Cluster, _ int) nscluster.Change { return c.ReplaceWAN() },
			// Two nodes move at once, as in a simultaneous change.
			seedLo: 30 * time.Second, seedHi: 40 * time.Second, seedWhy: "two nodes move at once",
		},
		{
			name: "restart", title: "a node restarts on a new address",
			build: flat,
			step: func(c *nscluster.Cluster, trial int) nscluster.Change {
				ns := c.Nodes()
				return c.RestartOnNewAddr(ns[trial%len(ns)])
			},
		},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "convergence:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	trials    int
	nodes     int
	scenarios []scenario
	settle    time.Duration
	logLevel  string
	keep      bool
	verbose   bool
	poll      time.Duration
}

func parseFlags(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("convergence", flag.ContinueOnError)
	fs.SetOutput(out)
	trials := fs.Int("trials", 10, "trials per scenario (at least 10 for the figures in bench/README.md)")
	nodes := fs.Int("nodes", 4, "nodes in the flat topology (2 to 5)")
	names := fs.String("scenarios", "one,many,nat", "comma-separated scenarios: one, many, nat, restart")
	settle := fs.Duration("settle", 12*time.Second, "pause between trials, so that links are older than the dialer's longest backoff (10 s) as they would be in a real network, where addresses change hours apart")
	logLevel := fs.String("log-level", "info", "the agents' --log-level")
	keep := fs.Bool("keep", false, "keep the agents' data dirs and logs (a failed trial's are always kept)")
	verbose := fs.Bool("v", false, "print what the clusters do")
	poll := fs.Duration("poll", 50*time.Millisecond, "pause between two `buoy members` calls to one node")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := config{trials: *trials, nodes: *nodes, settle: *settle, logLevel: *logLevel, keep: *keep, verbose: *verbose, poll: *poll}
	if cfg.trials < 1 {
		return config{}, fmt.Errorf("-trials %d: want at least 1", cfg.trials)
	}
	if cfg.nodes < 2 || cfg.nodes > 5 {
		return config{}, fmt.Errorf("-nodes %d: want 2 to 5", cfg.nodes)
	}
	all := scenarios()
	for name := range strings.SplitSeq(*names, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, sc := range all {
			if sc.name == name {
				cfg.scenarios = append(cfg.scenarios, sc)
				found = true
			}
		}
		if !found {
			return config{}, fmt.Errorf("-scenarios: unknown scenario %q (want one, many, nat or restart)", name)
		}
	}
	return cfg, nil
}

// result is one scenario's outcome.
type result struct {
	sc     scenario
	times  []time.Duration
	failed []string // why each failed trial failed
}

func run(ctx context.Context, out io.Writer) error {
	cfg, err := parseFlags(os.Args[1:], out)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root for network namespaces (run it with sudo)")
	}
	bindir, err := os.MkdirTemp("", "buoy-convergence-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bindir)
	bin, err := nscluster.BuildBinary(filepath.Join(bindir, "buoy"), false)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "buoy %s, %s, %d CPUs, load average %s at start\n", revision(), runtime.Version(), runtime.NumCPU(), loadavg())
	fmt.Fprintf(out, "%d trials per scenario, %d nodes in the flat topology, default agent settings (heartbeat 1s), %v between trials\n\n", cfg.trials, cfg.nodes, cfg.settle)

	var results []result
	for _, sc := range cfg.scenarios {
		r, err := runScenario(ctx, out, cfg, bin, sc)
		results = append(results, r)
		if err != nil {
			report(out, results)
			return err
		}
	}
	report(out, results)
	return nil
}

// runScenario runs cfg.trials trials of sc. The cluster is built once and
// reused from trial to trial, each trial moving nodes to fresh addresses;
// after a failed trial it is torn down and built anew.
func runScenario(ctx context.Context, out io.Writer, cfg config, bin string, sc scenario) (result, error) {
	r := result{sc: sc}
	fmt.Fprintf(out, "== %s (%s)\n", sc.title, sc.name)
	var (
		s   *session
		c   *nscluster.Cluster
		dir string
	)
	closeSession := func(keep bool) {
		s.Close()
		if keep {
			fmt.Fprintf(out, "   logs kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
		s, c = nil, nil
	}
	defer func() {
		if s != nil {
			closeSession(cfg.keep)
		}
	}()
	for trial := 0; trial < cfg.trials; trial++ {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		if c == nil {
			var err error
			if dir, err = os.MkdirTemp("", "buoy-convergence-"+sc.name+"-"); err != nil {
				return r, err
			}
			s = labsession.New(out, cfg.verbose)
			opts := nscluster.Options{Agent: bin, Dir: dir, LogLevel: cfg.logLevel, Poll: cfg.poll}
			built := runCtx(ctx, s, func() { c = sc.build(s, opts, cfg.nodes) })
			if skipped, why := s.Skipped(); skipped {
				return r, errors.New(why)
			}
			if !built {
				r.failed = append(r.failed, fmt.Sprintf("trial %d: cluster did not form", trial+1))
				fmt.Fprintf(out, "   trial %2d: FAILED: the cluster did not form\n", trial+1)
				closeSession(true)
				continue
			}
		} else {
			select {
			case <-time.After(cfg.settle):
			case <-ctx.Done():
				return r, ctx.Err()
			}
		}
		var ch nscluster.Change
		if !runCtx(ctx, s, func() { ch = sc.step(c, trial) }) || s.Failed() {
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			r.failed = append(r.failed, fmt.Sprintf("trial %d: %s", trial+1, lastError(s)))
			fmt.Fprintf(out, "   trial %2d: FAILED\n", trial+1)
			closeSession(true)
			continue
		}
		r.times = append(r.times, ch.Converged)
		fmt.Fprintf(out, "   trial %2d: %6.2fs  %s\n", trial+1, ch.Converged.Seconds(), ch.What)
	}
	// Other jobs on a shared machine slow the agents down: say how busy
	// it was, next to the figures.
	fmt.Fprintf(out, "   load average %s at the end\n", loadavg())
	return r, nil
}

// lastError is the last error the session recorded.
func lastError(s *session) string {
	if e := s.LastError(); e != "" {
		return e
	}
	return "no error recorded"
}

// runCtx is Session.Run that gives up waiting when ctx ends (Ctrl-C); the caller
// then closes the session, which stops the agents and removes the lab
// under the abandoned goroutine, ending it.
func runCtx(ctx context.Context, s *session, f func()) bool {
	done := make(chan bool, 1)
	go func() { done <- s.Run(f) }()
	select {
	case ok := <-done:
		return ok
	case <-ctx.Done():
		return false
	}
}

// report prints the summary table.
func report(out io.Writer, results []result) {
	fmt.Fprintln(out, "\n== summary (time from the `ip addr` change until every node shows every new address)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tok\tfailed\tmedian\tmax\ttarget (issue 3)\tseed protocol (median faster by)")
	for _, r := range results {
		s := summarize(r.times)
		med, mx := "-", "-"
		if s.n > 0 {
			med, mx = fmt.Sprintf("%.2fs", s.median.Seconds()), fmt.Sprintf("%.2fs", s.max.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.sc.title, s.n, len(r.failed), med, mx, verdict(r.sc, s), seed(r.sc, s))
	}
	tw.Flush()
	for _, r := range results {
		for _, f := range r.failed {
			fmt.Fprintf(out, "%s: %s\n", r.sc.name, f)
		}
	}
}

// verdict compares a summary with the scenario's targets.
func verdict(sc scenario, s summary) string {
	if sc.targetMedian == 0 && sc.targetMax == 0 {
		return "none"
	}
	var parts []string
	met := s.n > 0
	if sc.targetMedian > 0 {
		parts = append(parts, fmt.Sprintf("median <= %v", sc.targetMedian))
		met = met && s.median <= sc.targetMedian
	}
	if sc.targetMax > 0 {
		parts = append(parts, fmt.Sprintf("max <= %v", sc.targetMax))
		met = met && s.max <= sc.targetMax
	}
	word := "MISSED"
	if met {
		word = "met"
	}
	return strings.Join(parts, ", ") + ": " + word
}

// seed compares a summary's median with the seed protocol's figure.
func seed(sc scenario, s summary) string {
	if sc.seedLo == 0 {
		return "no figure"
	}
	if s.n == 0 {
		return fmt.Sprintf("%v", sc.seedLo)
	}
	if sc.seedLo == sc.seedHi {
		return fmt.Sprintf("%v (%s): %.1fx", sc.seedLo, sc.seedWhy, ratio(sc.seedLo, s.median))
	}
	return fmt.Sprintf("%v-%v (%s): %.1fx-%.1fx", sc.seedLo, sc.seedHi, sc.seedWhy, ratio(sc.seedLo, s.median), ratio(sc.seedHi, s.median))
}

// revision names the source the agents were built from: the commit, with
// "+changes" if tracked files differ from it (read-only git commands in the
// module, which the benchmark runs from).
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "(unknown revision)"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "+changes"
	}
	return rev
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
