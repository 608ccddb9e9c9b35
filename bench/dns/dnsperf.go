package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfResult is what dnsperf reports for one run.
type perfResult struct {
	sent, completed, lost int64
	qps                   float64
	latency               time.Duration // average
	rcodes                map[string]int64
}

var (
	reSent      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reCompleted = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	reLost      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reQPS       = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reLatency   = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	reRcodes    = regexp.MustCompile(`Response codes:\s+(.*)`)
	reRcode     = regexp.MustCompile(`([A-Z]+) (\d+) \(`)
)

// parseDnsperf reads dnsperf's closing statistics.
func parseDnsperf(out string) (perfResult, error) {
	var r perfResult
	num := func(re *regexp.Regexp) (string, error) {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return "", fmt.Errorf("parse dnsperf output: no %q in:\n%s", re.String(), out)
		}
		return m[1], nil
	}
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *int64
	}{{reSent, &r.sent}, {reCompleted, &r.completed}, {reLost, &r.lost}} {
		s, err := num(f.re)
		if err != nil {
			return r, err
		}
		if *f.dst, err = strconv.ParseInt(s, 10, 64); err != nil {
			return r, fmt.Errorf("parse dnsperf %q: %w", s, err)
		}
	}
	s, err := num(reQPS)
	if err != nil {
		return r, err
	}
	if r.qps, err = strconv.ParseFloat(s, 64); err != nil {
		return r, fmt.Errorf("parse dnsperf qps %q: %w", s, err)
	}
	if s, err := num(reLatency); err == nil {
		sec, _ := strconv.ParseFloat(s, 64)
		r.latency = time.Duration(sec * float64(time.Second))
	}
	r.rcodes = map[string]int64{}
	if m := reRcodes.FindStringSubmatch(out); m != nil {
		for _, c := range reRcode.FindAllStringSubmatch(m[1], -1) {
			n, _ := strconv.ParseInt(c[2], 10, 64)
			r.rcodes[c[1]] = n
		}
	}
	return r, nil
}

// perfOpts is how dnsperf is run.
type perfOpts struct {
	cpu         int
	queryFile   string
	clients     int
	outstanding int
	duration    time.Duration
	qps         int // 0: as fast as the server answers
}

// dnsperfGrace is how long dnsperf may run past its -l limit (it waits
// -t 2 s for the last answers) before it is killed.
const dnsperfGrace = 15 * time.Second

// dnsperf runs one dnsperf against addr, pinned to o.cpu, and returns its
// statistics and the CPU time dnsperf itself used.
func dnsperf(ctx context.Context, addr string, port int, o perfOpts) (perfResult, time.Duration, error) {
	args := []string{"-c", strconv.Itoa(o.cpu), "dnsperf",
		"-s", addr, "-p", strconv.Itoa(port), "-d", o.queryFile,
		"-c", strconv.Itoa(o.clients), "-T", "1",
		"-q", strconv.Itoa(o.outstanding),
		"-l", strconv.FormatFloat(o.duration.Seconds(), 'f', -1, 64),
		"-t", "2",
		"-O", "suppress=timeouts,unexpected,congestion",
	}
	if o.qps > 0 {
		args = append(args, "-Q", strconv.Itoa(o.qps))
	}
	// Another user of this shared machine may kill every dnsperf by name;
	// such a run is tried once more. So is a run that does not end in time:
	// dnsperf 2.x was seen spinning at 100% of its core long after its -l
	// limit (a 2 s warm-up still running after 12 minutes), which spoils
	// every measurement that follows.
	for try := 0; ; try++ {
		rctx, cancel := context.WithTimeout(ctx, o.duration+dnsperfGrace)
		cmd := exec.CommandContext(rctx, "taskset", args...)
		out, err := cmd.CombinedOutput()
		hung := rctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if ws, ok := waitStatus(cmd); ok && ws.Signaled() && try == 0 && ctx.Err() == nil {
				continue
			}
			if hung {
				err = fmt.Errorf("still running %s after its -l limit: %w", dnsperfGrace, err)
			}
			return perfResult{}, 0, fmt.Errorf("dnsperf %s: %w\n%s", strings.Join(args[3:], " "), err, out)
		}
		used := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		r, err := parseDnsperf(string(out))
		return r, used, err
	}
}

func waitStatus(cmd *exec.Cmd) (syscall.WaitStatus, bool) {
	if cmd.ProcessState == nil {
		return 0, false
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ws, ok
}
