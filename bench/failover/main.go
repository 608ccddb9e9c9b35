// Command failover measures how fast a role moves when its holder is
// killed: a 3-node Buoy cluster in network namespaces (package rolelab,
// the same setup as the e2e test) with one role whose hook scripts log
// their start time, and kill -9 of the holder, many times over, with the
// default timing profile and with "lan". For each it prints the median and
// maximum of (a) the time until the new holder's promote hook has started
// and (b) the time until every surviving node's DNS answers the new
// holder's address. In the same run the same trials go against
// keepalived (VRRP on a bridge between three namespaces, advert_int 1),
// timed until the new master's notify_master script runs.
//
//	sudo go run ./bench/failover -trials 20
//
// It needs root, ip (iproute2), nft (nftables, for netlab) and keepalived
// (-keepalived=false skips it). See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"buoy/bench/failover/rolelab"
	"buoy/bench/internal/labsession"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

type config struct {
	trials     int
	profiles   []string
	keepalived bool
	verbose    bool
	keep       bool
}

// result is one system's trials.
type result struct {
	name          string
	promote, dns  []time.Duration
	failed        int
	targetMedian  time.Duration
	targetMax     time.Duration
	skippedReason string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	trials := fs.Int("trials", 20, "kill -9 trials per system")
	profiles := fs.String("profiles", "default,lan", "Buoy timing profiles to measure")
	keepalived := fs.Bool("keepalived", true, "also measure keepalived")
	verbose := fs.Bool("v", false, "print every trial and the labs' logs")
	keep := fs.Bool("keep", false, "keep the work dir (logs, hook events)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := config{trials: *trials, keepalived: *keepalived, verbose: *verbose, keep: *keep}
	for _, p := range strings.Split(*profiles, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.profiles = append(cfg.profiles, p)
		}
	}
	dir, err := os.MkdirTemp("", "buoy-failover-")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintf(out, "work dir: %s\n", dir)
	}
	bin := filepath.Join(dir, "buoy")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/buoy")
	build.Stdout, build.Stderr = out, out
	if err := build.Run(); err != nil {
		return fmt.Errorf("build ./cmd/buoy (run from the module root): %w", err)
	}

	var results []result
	for _, p := range cfg.profiles {
		fmt.Fprintf(out, "buoy, %s profile: %d trials\n", p, cfg.trials)
		r := measureBuoy(ctx, cfg, bin, filepath.Join(dir, "buoy-"+p), p, out)
		results = append(results, r)
	}
	if cfg.keepalived {
		fmt.Fprintf(out, "keepalived: %d trials\n", cfg.trials)
		results = append(results, measureKeepalived(ctx, cfg, filepath.Join(dir, "keepalived"), out))
	}
	report(out, cfg, results)
	return ctx.Err()
}

// measureBuoy runs the trials on one cluster: each kills the holder,
// times the failover, then restarts the killed node and waits for the
// cluster to be whole again.
func measureBuoy(ctx context.Context, cfg config, bin, dir, profile string, out io.Writer) result {
	r := result{name: "buoy (" + profile + ")"}
	switch profile {
	case "default":
		r.targetMedian, r.targetMax = 1500*time.Millisecond, 3*time.Second
	case "lan":
		r.targetMedian = 500 * time.Millisecond
	}
	s := labsession.New(out, cfg.verbose)
	defer s.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.skippedReason = err.Error()
		return r
	}
	var c *rolelab.Cluster
	if !s.Run(func() {
		c = rolelab.New(s, rolelab.Options{Agent: bin, Dir: dir, Profile: profile})
	}) {
		_, r.skippedReason = s.Skipped()
		if r.skippedReason == "" {
			r.skippedReason = "the cluster did not start"
		}
		return r
	}
	// Steady state first: the bootstrap node leads and holds the role
	// until, a Lease after the others joined, it hands leadership away.
	time.Sleep(settle)
	for trial := range cfg.trials {
		if ctx.Err() != nil {
			break
		}
		var promote, dns time.Duration
		ok := s.Run(func() { promote, dns = buoyTrial(ctx, s, c) })
		if !ok {
			r.failed++
			fmt.Fprintf(out, "  trial %d failed\n", trial+1)
			if c.Nodes[0].Log() != "" && cfg.verbose {
				c.DumpLogs(40)
			}
			continue
		}
		r.promote = append(r.promote, promote)
		r.dns = append(r.dns, dns)
		if cfg.verbose {
			fmt.Fprintf(out, "  trial %d: promote hook after %v, DNS on every survivor after %v\n", trial+1, promote.Round(time.Millisecond), dns.Round(time.Millisecond))
		}
	}
	return r
}

// buoyTrial kills the holder and returns the time until the new holder's
// promote hook started and until every survivor's DNS answered it.
func buoyTrial(ctx context.Context, s *session, c *rolelab.Cluster) (promote, dnsTime time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	old, _, err := c.Holder(wctx, c.Nodes...)
	if err != nil {
		s.Fatalf("no holder before the trial: %v", err)
	}
	survivors := slices.DeleteFunc(slices.Clone(c.Nodes), func(n *rolelab.Node) bool { return n == old })
	killed := time.Now()
	old.Kill()
	// However this trial ends, the next one starts with every node up.
	defer func() {
		if !old.Running() {
			old.Restart()
			_ = c.WaitAlive(wctx, c.Nodes...)
		}
	}()
	// DNS: poll every survivor until all answer one address, not the
	// killed node's; the time is when the last of them first did.
	deadline := killed.Add(30 * time.Second)
	answered := map[string]time.Time{}
	var ip netip.Addr
	for len(answered) < len(survivors) {
		if time.Now().After(deadline) {
			s.Fatalf("DNS does not answer a new holder within 30s")
		}
		for _, n := range survivors {
			at := time.Now()
			_, ips, err := n.Lookup(200 * time.Millisecond)
			if err != nil || len(ips) != 1 || ips[0] == old.IP || ip.IsValid() && ips[0] != ip {
				delete(answered, n.Name)
				continue
			}
			ip = ips[0]
			if _, ok := answered[n.Name]; !ok {
				answered[n.Name] = at
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, at := range answered {
		dnsTime = max(dnsTime, at.Sub(killed))
	}
	holder, _, err := c.Holder(wctx, survivors...)
	if err != nil {
		s.Fatalf("no new holder: %v", err)
	}
	if holder.IP != ip {
		s.Fatalf("DNS answered %s, but the holder is %s (%s)", ip, holder.Name, holder.IP)
	}
	ev, ok := holder.FirstEvent("promote", killed)
	if !ok {
		s.Fatalf("%s holds the role but logged no promote since the kill", holder.Name)
	}
	promote = ev.At.Sub(killed)
	// Back to three nodes, with the restarted one's demote rerun done.
	restarted := time.Now()
	old.Restart()
	if err := c.WaitAlive(wctx, c.Nodes...); err != nil {
		s.Fatalf("cluster does not heal: %v", err)
	}
	for {
		if _, ok := old.FirstEvent("demote", restarted); ok {
			break
		}
		if wctx.Err() != nil {
			s.Fatalf("%s did not rerun its demote hook after the restart", old.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every link is fresh after the restart; let the renewals settle.
	time.Sleep(2 * time.Second)
	return promote, dnsTime
}

func report(out io.Writer, cfg config, results []result) {
	fmt.Fprintf(out, "\nkill -9 of the holder, 3 nodes in network namespaces, %d trials each\n\n", cfg.trials)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "system\tpromote/notify median\tmax\tDNS median\tmax\ttarget\tfailed")
	var keepMedian time.Duration
	for _, r := range results {
		if strings.HasPrefix(r.name, "keepalived") && len(r.promote) > 0 {
			keepMedian = median(r.promote)
		}
	}
	for _, r := range results {
		if r.skippedReason != "" {
			fmt.Fprintf(tw, "%s\tnot run: %s\t\t\t\t\t\n", r.name, r.skippedReason)
			continue
		}
		target := "-"
		switch {
		case r.targetMedian > 0 && r.targetMax > 0:
			target = fmt.Sprintf("median ≤ %v, max ≤ %v", r.targetMedian, r.targetMax)
		case r.targetMedian > 0:
			target = fmt.Sprintf("median ≤ %v", r.targetMedian)
		}
		if strings.HasPrefix(r.name, "buoy") && keepMedian > 0 {
			target += fmt.Sprintf(", below keepalived's %v", keepMedian.Round(time.Millisecond))
		}
		dm, dx := "-", "-"
		if len(r.dns) > 0 {
			dm, dx = fmtD(median(r.dns)), fmtD(slices.Max(r.dns))
		}
		pm, px := "-", "-"
		if len(r.promote) > 0 {
			pm, px = fmtD(median(r.promote)), fmtD(slices.Max(r.promote))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.name, pm, px, dm, dx, target, r.failed)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nevery trial, in order (promote or notify_master / DNS):")
	for _, r := range results {
		var parts []string
		for i, p := range r.promote {
			part := fmtD(p)
			if i < len(r.dns) {
				part += "/" + fmtD(r.dns[i])
			}
			parts = append(parts, part)
		}
		fmt.Fprintf(out, "  %s: %s\n", r.name, strings.Join(parts, " "))
	}
}

func fmtD(d time.Duration) string { return d.Round(time.Millisecond).String() }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// settle is how long a new cluster runs before its first trial.
const settle = 5 * time.Second

var errNoKeepalived = errors.New("keepalived is not installed (apt-get install keepalived)")
