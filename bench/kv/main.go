// Command kv measures Buoy's replicated key-value store against etcd in the
// same run: a three-node Buoy cluster (real "buoy agent" processes) and a
// three-member etcd cluster, both on loopback with fsync on, each driven by
// the same closed-loop load generator over its own HTTP API: 256-byte puts
// and linearizable gets with 1, 16, 64 and 256 concurrent clients. It
// prints requests per second and p50/p99 latency for each, and the
// Buoy/etcd ratios next to issue 5's targets.
//
//	go run ./bench/kv                # from the module root; ~3 minutes
//	bench/kv/run.sh -rounds 3        # installs etcd if missing, then the same
//
// Every step is bounded by a request count and a time limit. Both clusters
// run in a temporary folder that is removed at the end, also on Ctrl-C.
// See bench/README.md.
package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the usage is printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/kv:", err)
		os.Exit(1)
	}
}

// Where the load generator sends requests (-target).
const (
	targetAll    = "all"    // each client to one member, spread evenly
	targetLeader = "leader" // every client to the leader
)

// options are the command line.
type options struct {
	clients      []int
	ops          []string
	count        int
	limit        time.Duration
	rounds       int
	target       string
	size         int
	systems      []string
	dir          string
	buoyBin      string
	etcdBin      string
	keep         bool
	perfDir      string
	perfFreq     int
	pprofDir     string
	pprofSeconds int
	getKeys      int
	putKeys      int
	warmCount    int
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench/kv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clients := fs.String("clients", "1,16,64,256", "concurrent clients of each step, comma-separated")
	ops := fs.String("ops", "put,get", "operations to measure: put, get or both")
	systems := fs.String("systems", "buoy,etcd", "systems to run: buoy, etcd or both")
	fs.IntVar(&o.count, "count", 10000, "requests per step (each system, operation and client count)")
	fs.DurationVar(&o.limit, "time", 10*time.Second, "longest a step may run; it stops there even short of -count")
	fs.IntVar(&o.rounds, "rounds", 1, "how many times to run every step; the summary shows medians")
	fs.StringVar(&o.target, "target", targetAll, "where requests go: all (each client to one member, spread over the three) or leader")
	fs.IntVar(&o.size, "size", 256, "value size in bytes")
	fs.StringVar(&o.dir, "dir", "", "parent of the temporary data folder (default $TMPDIR); must be a real disk, not tmpfs, or fsync costs nothing")
	fs.StringVar(&o.buoyBin, "buoy", "", "buoy binary to run (default: go build ./cmd/buoy)")
	fs.StringVar(&o.etcdBin, "etcd", "etcd", "etcd binary to run")
	fs.BoolVar(&o.keep, "keep", false, "keep the data folder and the servers' logs")
	fs.StringVar(&o.perfDir, "perf", "", "folder for \"perf record -g\" profiles of each system's leader during every put step")
	fs.IntVar(&o.perfFreq, "perf-freq", 499, "perf sampling frequency (Hz)")
	fs.StringVar(&o.pprofDir, "pprof", "", "folder for Go CPU profiles of each Buoy node (agents run with --enable-debug) during every step")
	fs.IntVar(&o.pprofSeconds, "pprof-seconds", 5, "length of each Go CPU profile, from the start of its step")
	fs.IntVar(&o.putKeys, "put-keys", 10000, "distinct keys the puts cycle through")
	fs.IntVar(&o.getKeys, "get-keys", 1000, "distinct keys the gets cycle through (written before the first step)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.clients, err = parseCounts(*clients); err != nil {
		return o, fmt.Errorf("-clients: %w", err)
	}
	if o.ops, err = parseSet(*ops, "put", "get"); err != nil {
		return o, fmt.Errorf("-ops: %w", err)
	}
	if o.systems, err = parseSet(*systems, "buoy", "etcd"); err != nil {
		return o, fmt.Errorf("-systems: %w", err)
	}
	switch {
	case o.target != targetAll && o.target != targetLeader:
		return o, fmt.Errorf("-target %q: want all or leader", o.target)
	case o.count < 1 || o.rounds < 1 || o.size < 1 || o.putKeys < 1 || o.getKeys < 1 || o.limit <= 0:
		return o, errors.New("-count, -rounds, -size, -put-keys, -get-keys and -time must be positive")
	}
	o.warmCount = max(o.getKeys, 1000)
	return o, nil
}

// parseCounts parses a comma-separated list of client counts, each from 1
// to 4096.
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("client count %q: not a number", f)
		}
		if n < 1 || n > 4096 {
			return nil, fmt.Errorf("client count %d: want 1 to 4096", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSet parses a comma-separated subset of allowed, keeping allowed's
// order.
func parseSet(s string, allowed ...string) ([]string, error) {
	var picked []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allowed, f) {
			return nil, fmt.Errorf("%q: want one or more of %s", f, strings.Join(allowed, ","))
		}
		picked = append(picked, f)
	}
	var out []string
	for _, a := range allowed {
		if slices.Contains(picked, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp(o.dir, "bench-kv-")
	if err != nil {
		return fmt.Errorf("make data folder: %w", err)
	}
	if o.keep {
		fmt.Fprintf(stderr, "data and logs kept in %s\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return err
		}
	}
	if o.perfDir != "" {
		if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
			return err
		}
	}
	workers := slices.Max(o.clients)

	var systems []system
	defer func() {
		for _, s := range systems {
			s.stop()
		}
	}()
	versions := map[string]string{}
	for _, name := range o.systems {
		fmt.Fprintf(stderr, "starting %s\n", name)
		switch name {
		case "buoy":
			bin, src := o.buoyBin, ""
			if bin == "" {
				if bin, src, err = buildBuoy(ctx, root); err != nil {
					return err
				}
			}
			c, err := retryPorts(stderr, func(try int) (*buoyCluster, error) {
				return startBuoy(ctx, bin, filepath.Join(root, fmt.Sprintf("buoy%d", try)), workers, o.target, o.pprofDir != "")
			})
			if err != nil {
				return err
			}
			systems = append(systems, c)
			versions[name] = buoyVersion(bin, src)
		case "etcd":
			bin, err := exec.LookPath(o.etcdBin)
			if err != nil {
				return fmt.Errorf("etcd: %w (install Debian's etcd-server, or run bench/kv/run.sh)", err)
			}
			c, err := retryPorts(stderr, func(try int) (*etcdCluster, error) {
				return startEtcd(ctx, bin, filepath.Join(root, fmt.Sprintf("etcd%d", try)), workers, o.target)
			})
			if err != nil {
				return err
			}
			systems = append(systems, c)
			versions[name] = etcdVersion(bin)
		}
	}

	value := printable(o.size)
	putKey := func(seq int) string { return fmt.Sprintf("bench/%06d", seq%o.putKeys) }
	getKey := func(seq int) string { return fmt.Sprintf("bench/%06d", seq%o.getKeys) }

	// Warm-up, not measured: opens the connections, lets each leader's
	// first term settle and writes the keys the gets read.
	for _, s := range systems {
		r := runStep(ctx, min(16, workers), o.warmCount, time.Minute, func(ctx context.Context, w, seq int) error {
			return s.put(ctx, w, getKey(seq), value)
		})
		if r.Done < o.warmCount {
			return fmt.Errorf("%s: warm-up: %d of %d puts done: %w", s.name(), r.Done, o.warmCount, firstError(r.FirstErr, ctx.Err()))
		}
	}
	leaders := map[string]string{}
	for _, s := range systems {
		leaders[s.name()], _ = s.leader(ctx)
	}

	res := results{}
	for round := range o.rounds {
		for _, opName := range o.ops {
			for _, clients := range o.clients {
				// Alternate which system goes first, so neither always
				// inherits the other's leftover work (compaction, GC).
				order := slices.Clone(systems)
				if (round+slices.Index(o.clients, clients))%2 == 1 {
					slices.Reverse(order)
				}
				for _, s := range order {
					if err := s.alive(); err != nil {
						return err
					}
					if moved, err := s.follow(ctx); err != nil {
						return fmt.Errorf("%s: find the leader: %w", s.name(), err)
					} else if moved {
						fmt.Fprintf(stderr, "%s: the leader moved; -target leader follows it\n", s.name())
					}
					do := func(ctx context.Context, w, seq int) error { return s.put(ctx, w, putKey(seq), value) }
					if opName == "get" {
						do = func(ctx context.Context, w, seq int) error { return s.get(ctx, w, getKey(seq)) }
					}
					stopPerf := func() {}
					if o.perfDir != "" && opName == "put" {
						stopPerf = startPerf(s, o, clients, round, stderr)
					}
					waitPprof := func() {}
					if bc, ok := s.(*buoyCluster); ok && o.pprofDir != "" {
						waitPprof = startPprof(ctx, bc, o, opName, clients, round, stderr)
					}
					cpu0, cerr := cpuTime(s.pids())
					self0, serr := cpuTime([]int{os.Getpid()})
					r := runStep(ctx, clients, o.count, o.limit, do)
					cpu1, cerr1 := cpuTime(s.pids())
					self1, serr1 := cpuTime([]int{os.Getpid()})
					if cerr == nil && cerr1 == nil {
						r.ServerCPU = cpu1 - cpu0
					}
					if serr == nil && serr1 == nil {
						r.ClientCPU = self1 - self0
					}
					stopPerf()
					waitPprof()
					if ctx.Err() != nil {
						return ctx.Err()
					}
					fmt.Fprintf(stderr, "round %d/%d %-4s %-3s c=%-3d %8.0f/s  p50 %7s  p99 %7s  server CPU %4.0fµs/req  client CPU %4.0fµs/req  n=%d errors=%d  load %s\n",
						round+1, o.rounds, s.name(), opName, clients, r.PerSec(), ms(r.P50), ms(r.P99), us(r.CPUPerReq()), us(perReq(r.ClientCPU, r.Done)), r.Done, r.Errors, loadAvg())
					if r.FirstErr != nil {
						fmt.Fprintf(stderr, "    first error: %v\n", r.FirstErr)
					}
					if r.Done == 0 {
						return fmt.Errorf("%s %s with %d clients: %w: %v", s.name(), opName, clients, errStepFailed, r.FirstErr)
					}
					res.add(s.name(), opName, clients, r)
				}
			}
		}
	}

	moved := ""
	for _, s := range systems {
		if l, _ := s.leader(ctx); l != leaders[s.name()] {
			moved += fmt.Sprintf(" %s's leader moved from %s to %s during the run.", s.name(), leaders[s.name()], l)
		}
	}
	fmt.Fprintf(stdout, "bench/kv: %d rounds, target %s, %d-byte values, %d requests or %v per step; %d cores (%s/%s), load average at end %s\n",
		o.rounds, o.target, o.size, o.count, o.limit, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, loadAvg())
	for _, s := range systems {
		fmt.Fprintf(stdout, "%s: %s, leader %s\n", s.name(), versions[s.name()], leaders[s.name()])
	}
	if moved != "" {
		fmt.Fprintln(stdout, "note:"+moved)
	}
	fmt.Fprintln(stdout)
	res.table(stdout, o.ops, o.clients)
	return nil
}

// retryPorts starts a cluster, and once more with new ports (and a new
// folder) if another process took one of its ports between freePorts and
// the server's listen.
func retryPorts[C any](stderr io.Writer, start func(try int) (C, error)) (C, error) {
	c, err := start(1)
	if err != nil && strings.Contains(err.Error(), "address already in use") {
		fmt.Fprintln(stderr, "a port was taken; starting again with new ports")
		c, err = start(2)
	}
	return c, err
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return errors.New("no error reported")
}

// printable returns n random letters: a value any API carries unchanged,
// whether it sends values raw, as JSON strings or as base64.
func printable(n int) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return b
}

// buoyVersion is the revision the buoy binary was built from: as its build
// information records it, or else (GOFLAGS=-buildvcs=false) as git
// describes src, the module root it was built from ("" if unknown).
func buoyVersion(bin, src string) string {
	if info, err := buildinfo.ReadFile(bin); err == nil {
		rev, dirty := "", ""
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 7:
				rev = s.Value[:7]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
		if rev != "" {
			return "revision " + rev + dirty + ", " + info.GoVersion
		}
	}
	if src != "" {
		if out, err := exec.Command("git", "-C", src, "describe", "--always", "--dirty").Output(); err == nil {
			return "revision " + strings.TrimSpace(string(out))
		}
	}
	return "revision unknown"
}

// loadAvg returns /proc/loadavg's first three fields, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// us is a duration in microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// perReq divides d over n requests (0 for none).
func perReq(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}
