// Command dns compares Buoy's authoritative DNS server with NSD, Knot and
// CoreDNS (file plugin) in one run: the same generated zone (mixed types,
// a query mix with NXDOMAIN), each server in turn, several rounds, driven
// by dnsperf. It prints queries per second with the server and dnsperf
// pinned to one core each, the server's CPU time per query at a fixed
// offered load, each as a ratio to NSD and to CoreDNS, and then Buoy's
// memory with a 100k-record zone and how long a one-record change to that
// zone takes to be served.
//
//	bench/dns/run.sh            # installs nsd, knot, dnsperf if missing, then:
//	go run ./bench/dns -rounds 3
//
// Everything listens on 127.0.0.1 only. Every process it starts is stopped
// by PID, and its temporary folder is removed, also on Ctrl-C. See
// bench/README.md.
package main

import (
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
	"time"
)

// origin is the zone every server serves.
const origin = "bench.test."

// corednsVersion is the CoreDNS release compared, built from the Go module
// proxy into bench/dns/.cache.
const corednsVersion = "v1.14.7"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dns bench:", err)
		}
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	clients      int
	outstanding  int
	load         int
	names        int
	queries      int
	nx           float64
	servers      []server
	serverCPU    int
	clientCPU    int
	bigRecords   int
	changeTrials int
	perfOut      string
	keep         bool
	buoyBin      string
}

func parseFlags(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("dns", flag.ContinueOnError)
	fs.SetOutput(out)
	var c config
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; each runs every server once, in a rotating order")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured dnsperf run")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured dnsperf run before the measured ones")
	fs.IntVar(&c.clients, "clients", 16, "dnsperf -c: client sockets")
	fs.IntVar(&c.outstanding, "outstanding", 200, "dnsperf -q: queries in flight at most")
	fs.IntVar(&c.load, "load", 20000, "offered queries per second for the CPU-per-query run")
	fs.IntVar(&c.names, "names", 2000, "owner names in the zone (at least 1000 for the issue)")
	fs.IntVar(&c.queries, "queries", 20000, "lines in the dnsperf query file")
	fs.Float64Var(&c.nx, "nx", 0.15, "share of queries for names that do not exist")
	list := fs.String("servers", "buoy,nsd,knot,coredns", "servers to compare, comma-separated")
	fs.IntVar(&c.serverCPU, "server-cpu", 1, "core the server is pinned to")
	fs.IntVar(&c.clientCPU, "client-cpu", 0, "core dnsperf is pinned to")
	fs.IntVar(&c.bigRecords, "big-records", 100000, "records in the zone for the memory and change test (0: skip)")
	fs.IntVar(&c.changeTrials, "change-trials", 5, "one-record changes timed per method")
	fs.StringVar(&c.perfOut, "perf", "", "write a perf profile report of Buoy at full load to this file")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary folder (configs, logs, zone)")
	fs.StringVar(&c.buoyBin, "buoy-bin", "", "run this buoy binary instead of building ./cmd/buoy (to compare two builds)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.rounds < 1 || c.names < 1 || c.queries < 1 || c.nx < 0 || c.nx >= 1 || c.load < 1 {
		return c, errors.New("-rounds, -names, -queries and -load must be positive and -nx in [0, 1)")
	}
	all := servers()
	for _, name := range strings.Split(*list, ",") {
		found := false
		for _, s := range all {
			if s.name == strings.TrimSpace(name) {
				c.servers = append(c.servers, s)
				found = true
			}
		}
		if !found {
			return c, fmt.Errorf("-servers: unknown server %q (buoy, nsd, knot, coredns)", name)
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if err := checkTools(cfg); err != nil {
		return err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "buoy-dnsbench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(stderr, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	var bins binaries
	if cfg.buoyBin != "" {
		if bins.buoy, err = filepath.Abs(cfg.buoyBin); err != nil {
			return err
		}
	} else {
		bins.buoy = filepath.Join(tmp, "buoy")
		logf("building ./cmd/buoy")
		if _, err := runCmd(ctx, root, nil, "go", "build", "-o", bins.buoy, "./cmd/buoy"); err != nil {
			return err
		}
	}
	if hasServer(cfg, "coredns") {
		if bins.coredns, err = coreDNS(ctx, root, tmp, logf); err != nil {
			return err
		}
	}

	b := &bench{cfg: cfg, bins: bins, tmp: tmp, logf: logf}
	if err := b.prepare(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "zone %s: %d names, %d records (%s); %d queries, %.0f%% NXDOMAIN names\n",
		origin, b.zone.names, b.zone.records, typeMix(b.zone.types), cfg.queries, cfg.nx*100)
	fmt.Fprintf(stdout, "host: %d cores; server on core %d, dnsperf on core %d; load average before: %s\n\n",
		numCPU(), cfg.serverCPU, cfg.clientCPU, loadAvg())

	samples := map[string][]sample{}
	for r := range cfg.rounds {
		n := len(cfg.servers)
		for i := range n {
			s := cfg.servers[(i+r)%n]
			logf("round %d/%d: %s", r+1, cfg.rounds, s.name)
			sm, err := b.measure(ctx, s, r)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, s.name, err)
			}
			logf("  %.0f qps (server core %.0f%% busy, others %.2f cores), %.1f µs CPU/query at %d qps (others %.2f cores)",
				sm.maxQPS, sm.maxBusy*100, sm.maxOthers, sm.cpuPerQuery.Seconds()*1e6, cfg.load, sm.fixedOthers)
			samples[s.name] = append(samples[s.name], sm)
		}
	}
	printResults(stdout, cfg, samples)
	fmt.Fprintf(stdout, "load average after: %s\n", loadAvg())

	if cfg.perfOut != "" && hasServer(cfg, "buoy") {
		if err := b.profile(ctx, cfg.perfOut); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		fmt.Fprintf(stdout, "\nperf report of Buoy at full load written to %s\n", cfg.perfOut)
	}
	if cfg.bigRecords > 0 {
		if err := b.big(ctx, stdout); err != nil {
			return fmt.Errorf("%d-record zone: %w", cfg.bigRecords, err)
		}
	}
	return nil
}

func hasServer(cfg config, name string) bool {
	for _, s := range cfg.servers {
		if s.name == name {
			return true
		}
	}
	return false
}

// checkTools fails early, with what to install, when a program is missing.
func checkTools(cfg config) error {
	need := map[string]string{"taskset": "util-linux", "dnsperf": "dnsperf", "go": "Go"}
	if cfg.bigRecords > 0 && hasServer(cfg, "buoy") {
		need["nsupdate"] = "dnsutils"
	}
	if cfg.perfOut != "" {
		need["perf"] = "linux-perf"
	}
	for _, s := range cfg.servers {
		switch s.name {
		case "nsd":
			need["nsd"] = "nsd"
		case "knot":
			need["knotd"] = "knot"
		}
	}
	var missing []string
	for prog, pkg := range need {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", prog, pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run bench/dns/run.sh, which installs the Debian packages", strings.Join(missing, ", "))
	}
	if numCPU() < 2 {
		return errors.New("needs at least 2 cores: one for the server, one for dnsperf")
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := runCmd(ctx, "", nil, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the buoy module (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// coreDNS returns the cached CoreDNS binary, building it first with go
// install into a temporary GOBIN if it is not cached yet.
func coreDNS(ctx context.Context, root, tmp string, logf func(string, ...any)) (string, error) {
	cache := filepath.Join(root, "bench", "dns", ".cache")
	bin := filepath.Join(cache, "coredns-"+corednsVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	logf("building CoreDNS %s (once; cached in %s)", corednsVersion, cache)
	gobin := filepath.Join(tmp, "gobin")
	if err := os.MkdirAll(gobin, 0o755); err != nil {
		return "", err
	}
	// From tmp, outside the buoy module, so its go.mod plays no part.
	if _, err := runCmd(ctx, tmp, []string{"GOBIN=" + gobin}, "go", "install", "github.com/coredns/coredns@"+corednsVersion); err != nil {
		return "", err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(gobin, "coredns"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(bin+".tmp", data, 0o755); err != nil {
		return "", err
	}
	return bin, os.Rename(bin+".tmp", bin)
}

func numCPU() int { return runtime.NumCPU() }

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
