package main

import (
	"bytes"
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

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture Buoy targets).
const userHZ = 100

// procStat is what the benchmark reads from /proc/PID/stat.
type procStat struct {
	ppid         int
	utime, stime uint64 // in 1/userHZ s
}

// parseStat reads a /proc/PID/stat line. The command name is in
// parentheses and may itself hold spaces and parentheses, so the fields
// are counted from the last ')'.
func parseStat(line string) (procStat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse stat %q: no ')'", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("parse stat %q: %d fields after the name, want at least 13", line, len(f))
	}
	var s procStat
	var err error
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("parse stat ppid: %w", err)
	}
	if s.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("parse stat utime: %w", err)
	}
	if s.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("parse stat stime: %w", err)
	}
	return s, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// tree returns pid and all its descendants that are alive now.
func tree(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(p)
		if err != nil {
			continue // gone meanwhile
		}
		children[s.ppid] = append(children[s.ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuTime is the CPU time (user and system) used so far by pid and its
// live descendants (NSD serves from forked children).
func cpuTime(pid int) time.Duration {
	var ticks uint64
	for _, p := range tree(pid) {
		if s, err := readStat(p); err == nil {
			ticks += s.utime + s.stime
		}
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// memory is a process tree's memory: RSS adds up every process's resident
// pages (shared ones counted once per process); PSS shares them out.
type memory struct {
	rssKiB, pssKiB int64
}

// treeMemory reads VmRSS and Pss of pid and its descendants.
func treeMemory(pid int) (memory, error) {
	var m memory
	for _, p := range tree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			return m, fmt.Errorf("read memory of %d: %w", p, err)
		}
		r, ps := parseRollup(b)
		m.rssKiB += r
		m.pssKiB += ps
	}
	return m, nil
}

// parseRollup returns the Rss and Pss lines of /proc/PID/smaps_rollup, in
// KiB.
func parseRollup(b []byte) (rss, pss int64) {
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss
}

// machineBusy is the CPU time all processes have used so far, from the
// "cpu" line of /proc/stat (user, nice, system, irq, softirq, steal).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks uint64
	for i, v := range f {
		// cpu user nice system idle iowait irq softirq steal ...
		if i == 0 || i == 4 || i == 5 || i > 8 {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// proc is a server process the benchmark started; stop ends it and every
// process it forked, by PID.
type proc struct {
	name string
	exe  string // the program's base name
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when cmd.Wait returns
	err  error         // cmd.Wait's result, set before done closes
}

// startProc starts argv on cpu (taskset execs it, so the PID is the
// server's), its output going to logPath.
func startProc(name string, cpu int, logPath string, argv []string, env []string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-c", strconv.Itoa(cpu)}, argv...)
	cmd := exec.Command("taskset", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, exe: filepath.Base(argv[0]), cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { // ends when the process does; stop waits for it
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports, without blocking, whether the process has ended.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v (log %s)", p.name, p.err, p.log.Name())
	default:
		return nil
	}
}

// stop sends SIGTERM to the process, waits up to 10 s, then SIGKILLs it;
// descendants still alive afterwards are killed by PID too.
func (p *proc) stop() error {
	defer p.log.Close()
	kids := tree(p.pid())[1:]
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	var errs []error
	for _, k := range kids {
		// A forked child that outlived its parent: it is reparented, so
		// check it is still the same program before killing it.
		if s, err := readStat(k); err == nil && s.ppid != p.pid() {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", k)); filepath.Base(exe) == p.exe {
				errs = append(errs, syscall.Kill(k, syscall.SIGKILL))
			}
		}
	}
	return errors.Join(errs...)
}

// runCmd runs a short command and returns its combined output.
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return out, nil
}
