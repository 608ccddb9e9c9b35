package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for user space on every architecture.
const userHZ = 100

// cpuTime returns the CPU time (user and system, all threads) the processes
// have used so far. On a shared machine a server's throughput depends on
// the CPU it gets, but its CPU time per request does not: that figure
// compares two systems even when other work competes for the cores.
func cpuTime(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
		}
		d, err := parseStat(b)
		if err != nil {
			return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
		}
		total += d
	}
	return total, nil
}

var errBadStat = errors.New("malformed /proc/PID/stat")

// parseStat reads utime and stime (fields 14 and 15) from the contents of
// /proc/PID/stat. The command name (field 2) is in parentheses and may
// hold spaces and parentheses itself, so fields are counted from the last
// ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errBadStat
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errBadStat
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(string(s), 10, 63)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errBadStat, err)
		}
		ticks += n
	}
	if ticks > uint64(1<<62)/uint64(time.Second/userHZ) {
		return 0, fmt.Errorf("%w: %d ticks", errBadStat, ticks)
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}
