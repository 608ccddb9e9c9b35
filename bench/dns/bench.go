package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// bench holds what every measurement shares.
type bench struct {
	cfg       config
	bins      binaries
	tmp       string
	logf      func(string, ...any)
	zone      zone
	zoneFile  string
	queryFile string
}

// sample is one server's figures from one round.
type sample struct {
	maxQPS    float64
	maxBusy   float64 // share of its core the server used at full load
	maxOthers float64 // cores used by other processes meanwhile
	maxLost   int64
	// maxCPUPerQuery is the server's CPU time per query answered at full
	// speed, where it never waits for work.
	maxCPUPerQuery time.Duration

	cpuPerQuery time.Duration // at the fixed offered load
	fixedQPS    float64
	fixedLost   int64
	latency     time.Duration
	fixedOthers float64
	rcodes      map[string]int64
}

// prepare writes the zone and the query file.
func (b *bench) prepare() error {
	b.zone = genZone(zoneSpec{origin: origin, minNames: b.cfg.names, serial: 1, changeAddr: "198.51.100.1"})
	dir := filepath.Join(b.tmp, "zone")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b.zoneFile = filepath.Join(dir, "bench.test.zone")
	if err := os.WriteFile(b.zoneFile, []byte(b.zone.text), 0o644); err != nil {
		return err
	}
	b.queryFile = filepath.Join(b.tmp, "queries.txt")
	f, err := os.Create(b.queryFile)
	if err != nil {
		return err
	}
	if err := writeQueries(f, b.zone, origin, b.cfg.queries, b.cfg.nx, 1); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// running is a started server.
type running struct {
	p    *proc
	addr string
	port int
	l    launch
}

// start starts s in a new folder, serving zoneFile, pinned to the
// server's core, and waits until it serves the whole zone.
func (b *bench) start(ctx context.Context, s server, tag, zoneFile string, z zone) (*running, time.Duration, error) {
	dir := filepath.Join(b.tmp, tag+"-"+s.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	l, err := s.setup(b.bins, dir, port, origin, zoneFile)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	p, err := startProc(s.name, b.cfg.serverCPU, filepath.Join(dir, "log"), l.argv, l.env)
	if err != nil {
		return nil, 0, err
	}
	rs := &running{p: p, addr: "127.0.0.1:" + strconv.Itoa(port), port: port, l: l}
	if err := waitServing(ctx, p, rs.addr, origin, z.probe, 5*time.Minute); err != nil {
		b.stop(rs)
		return nil, 0, err
	}
	return rs, time.Since(t0), nil
}

func (b *bench) stop(rs *running) {
	if err := rs.p.stop(); err != nil {
		b.logf("stop %s: %v", rs.p.name, err)
	}
}

// window measures what happens during f: the server's CPU time, the wall
// time, and the CPU time of every other process on the machine (all busy
// time less the server's and dnsperf's).
func window(pid int, f func() (time.Duration, error)) (server, others time.Duration, wall time.Duration, err error) {
	c0, m0, t0 := cpuTime(pid), machineBusy(), time.Now()
	own, err := f()
	c1, m1, wall := cpuTime(pid), machineBusy(), time.Since(t0)
	server = c1 - c0
	others = max(0, m1-m0-server-own)
	return server, others, wall, err
}

// measure runs one server through a warm-up, a full-speed run and a
// fixed-load run.
func (b *bench) measure(ctx context.Context, s server, round int) (sample, error) {
	rs, _, err := b.start(ctx, s, "r"+strconv.Itoa(round+1), b.zoneFile, b.zone)
	if err != nil {
		return sample{}, err
	}
	defer b.stop(rs)
	o := perfOpts{cpu: b.cfg.clientCPU, queryFile: b.queryFile, clients: b.cfg.clients, outstanding: b.cfg.outstanding, duration: b.cfg.warmup}
	if _, _, err := dnsperf(ctx, "127.0.0.1", rs.port, o); err != nil {
		return sample{}, err
	}

	var sm sample
	o.duration = b.cfg.duration
	var res perfResult
	cpu, others, wall, err := window(rs.p.pid(), func() (time.Duration, error) {
		r, own, err := dnsperf(ctx, "127.0.0.1", rs.port, o)
		res = r
		return own, err
	})
	if err != nil {
		return sm, err
	}
	sm.maxQPS, sm.maxLost = res.qps, res.lost
	if res.completed > 0 {
		sm.maxCPUPerQuery = cpu / time.Duration(res.completed)
	}
	sm.maxBusy = cpu.Seconds() / wall.Seconds()
	sm.maxOthers = others.Seconds() / wall.Seconds()

	o.qps = b.cfg.load
	cpu, others, wall, err = window(rs.p.pid(), func() (time.Duration, error) {
		r, own, err := dnsperf(ctx, "127.0.0.1", rs.port, o)
		res = r
		return own, err
	})
	if err != nil {
		return sm, err
	}
	if res.completed == 0 {
		return sm, fmt.Errorf("no query answered at %d qps", b.cfg.load)
	}
	sm.cpuPerQuery = cpu / time.Duration(res.completed)
	sm.fixedQPS, sm.fixedLost, sm.latency, sm.rcodes = res.qps, res.lost, res.latency, res.rcodes
	sm.fixedOthers = others.Seconds() / wall.Seconds()
	return sm, rs.p.exited()
}
