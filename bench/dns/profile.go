package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profile runs Buoy as in the measurements, at full speed and then at the
// fixed offered load, each time under perf record (call graphs, every
// thread of the node, kernel included), and writes perf report's views of
// both to out.
func (b *bench) profile(ctx context.Context, out string) error {
	var buoy server
	for _, s := range b.cfg.servers {
		if s.name == "buoy" {
			buoy = s
		}
	}
	rs, _, err := b.start(ctx, buoy, "perf", b.zoneFile, b.zone)
	if err != nil {
		return err
	}
	defer b.stop(rs)
	o := perfOpts{cpu: b.cfg.clientCPU, queryFile: b.queryFile, clients: b.cfg.clients, outstanding: b.cfg.outstanding, duration: b.cfg.warmup}
	if _, _, err := dnsperf(ctx, "127.0.0.1", rs.port, o); err != nil {
		return err
	}
	var text strings.Builder
	o.duration = b.cfg.duration
	for _, qps := range []int{0, b.cfg.load} {
		o.qps = qps
		data := filepath.Join(b.tmp, fmt.Sprintf("perf-%d.data", qps))
		res, cpu, err := b.record(ctx, rs, data, o)
		if err != nil {
			return err
		}
		what := "full speed"
		if qps > 0 {
			what = fmt.Sprintf("%d qps offered", qps)
		}
		fmt.Fprintf(&text, "######## Buoy under dnsperf at %s: %.0f qps answered while recorded, %.1f µs CPU per query (perf adds some)\n\n",
			what, res.qps, cpu.Seconds()*1e6/float64(max(res.completed, 1)))
		for _, view := range []struct {
			title string
			args  []string
		}{
			{"user space (the buoy binary) against the kernel", []string{"--no-children", "--sort", "dso", "-g", "none"}},
			{"self time by symbol", []string{"--no-children", "--sort", "dso,symbol", "--percent-limit", "0.5", "-g", "none"}},
			{"time including callees, by symbol", []string{"--children", "--sort", "symbol", "--percent-limit", "1.5", "-g", "none"}},
		} {
			rep, err := runCmd(ctx, b.tmp, nil, "perf", append([]string{"report", "-i", data, "--stdio", "--quiet"}, view.args...)...)
			if err != nil {
				return err
			}
			fmt.Fprintf(&text, "==== %s\n\n%s\n", view.title, rep)
		}
	}
	return os.WriteFile(out, []byte(text.String()), 0o644)
}

// record runs dnsperf with o against rs while perf records the server.
func (b *bench) record(ctx context.Context, rs *running, data string, o perfOpts) (perfResult, time.Duration, error) {
	rec := exec.Command("perf", "record", "-g", "-F", "999", "-o", data, "-p", strconv.Itoa(rs.p.pid()))
	recLog, err := os.Create(data + ".log")
	if err != nil {
		return perfResult{}, 0, err
	}
	defer recLog.Close()
	rec.Stdout, rec.Stderr = recLog, recLog
	if err := rec.Start(); err != nil {
		return perfResult{}, 0, fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // perf attaches
	var res perfResult
	cpu, _, _, perr := window(rs.p.pid(), func() (time.Duration, error) {
		r, own, err := dnsperf(ctx, "127.0.0.1", rs.port, o)
		res = r
		return own, err
	})
	// perf record writes its file when interrupted, and then exits with
	// that signal's status.
	_ = rec.Process.Signal(syscall.SIGINT)
	err = rec.Wait()
	var exit *exec.ExitError
	if ws, ok := waitStatus(rec); err != nil && !(errors.As(err, &exit) && ok && ws.Signaled()) {
		return res, cpu, fmt.Errorf("perf record: %w (see %s)", err, recLog.Name())
	}
	return res, cpu, perr
}
