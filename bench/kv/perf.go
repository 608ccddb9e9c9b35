package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// startPerf runs "perf record -g" on s's server processes (all three: a
// write costs CPU on the followers too) for one step and
// returns the function that ends it (SIGINT, so perf writes its file) and
// waits for it. The profile shows where the leader spends its CPU: read it
// with "perf report -i FILE --no-children --sort pid,sym" (the leader is
// named in the run's header). Any failure is reported and
// the step runs unprofiled.
func startPerf(s system, o options, clients, round int, stderr io.Writer) (stop func()) {
	var pids []string
	for _, p := range s.pids() {
		pids = append(pids, strconv.Itoa(p))
	}
	out := filepath.Join(o.perfDir, fmt.Sprintf("%s-put-c%d-r%d.data", s.name(), clients, round+1))
	cmd := exec.Command("perf", "record", "-q", "-g", "-F", strconv.Itoa(o.perfFreq), "-p", strings.Join(pids, ","), "-o", out)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "perf: %v\n", err)
		return func() {}
	}
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			// perf exits with the signal's status when interrupted.
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
				fmt.Fprintf(stderr, "perf: %v\n", err)
			}
		}
		fmt.Fprintf(stderr, "perf: %s\n", out)
	}
}
