package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// big loads a zone of cfg.bigRecords records into every server in turn
// and reports how long each took to serve it all and its memory; on the
// Buoy node it then times one-record changes.
func (b *bench) big(ctx context.Context, w io.Writer) error {
	spec := zoneSpec{origin: origin, minRecords: b.cfg.bigRecords, serial: 1, changeAddr: "198.51.100.1"}
	z := genZone(spec)
	dir := filepath.Join(b.tmp, "bigzone")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := filepath.Join(dir, "bench.test.zone")
	if err := os.WriteFile(file, []byte(z.text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nZone of %d records (%d names, %d bytes), loaded from the file at start:\n\n", z.records, z.names, len(z.text))
	fmt.Fprintln(w, "| server | start to serving | RSS | PSS |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	var changes []changeResult
	for _, s := range b.cfg.servers {
		b.logf("%d-record zone: %s", z.records, s.name)
		rs, took, err := b.start(ctx, s, "big", file, z)
		if err != nil {
			return err
		}
		// Let loaders finish freeing what they parsed with.
		time.Sleep(2 * time.Second)
		m, err := treeMemory(rs.p.pid())
		if err == nil && s.name == "buoy" {
			changes, err = b.changes(ctx, rs, spec, file)
		}
		b.stop(rs)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "| %s | %s | %.0f MiB | %.0f MiB |\n", s.name, durationMS(took), float64(m.rssKiB)/1024, float64(m.pssKiB)/1024)
	}
	if len(changes) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nBuoy, one record changed in the %d-record zone, until a query to the node sees it (%d trials each):\n\n", z.records, b.cfg.changeTrials)
	fmt.Fprintln(w, "| how | median | min | max | command returned after (median) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, c := range changes {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", c.method, durationMS(med(c.seen)), durationMS(slices.Min(c.seen)), durationMS(slices.Max(c.seen)), cmdMS(c.returned))
	}
	return nil
}

func med(ds []time.Duration) time.Duration {
	f := make([]float64, len(ds))
	for i, d := range ds {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

func cmdMS(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return durationMS(med(ds))
}

// changeResult is the timings of one way of changing a record.
type changeResult struct {
	method   string
	seen     []time.Duration // from the start of the change until a query sees it
	returned []time.Duration // until the command that made it returned
}

// changes times a one-record change (change.<origin> A gets a new address)
// made three ways: "buoy zone load" of the edited file, SIGHUP after
// editing the --zone-file, and an RFC 2136 UPDATE signed with TSIG sent by
// nsupdate. The clock starts after the file is written, just before the
// command or signal, and stops when a UDP query to the node returns the
// new address (asked every millisecond).
func (b *bench) changes(ctx context.Context, rs *running, spec zoneSpec, file string) ([]changeResult, error) {
	out := []changeResult{{method: "buoy zone load FILE"}, {method: "SIGHUP (agent reloads --zone-file)"}, {method: "nsupdate (TSIG), one record"}}
	next := 0
	newAddr := func() string {
		next++
		return fmt.Sprintf("198.51.100.%d", 10+next)
	}
	writeZone := func(addr string) error {
		s := spec
		s.serial, s.changeAddr = spec.serial+uint32(next), addr
		tmp := file + ".new"
		if err := os.WriteFile(tmp, []byte(genZone(s).text), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, file)
	}
	target := "change." + origin
	for range b.cfg.changeTrials {
		for i := range out {
			addr := newAddr()
			// Bounds a command that hangs; timeChange waits for it.
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			var cmd *exec.Cmd
			switch i {
			case 0:
				if err := writeZone(addr); err != nil {
					cancel()
					return nil, err
				}
				cmd = exec.CommandContext(cctx, b.bins.buoy, "zone", "load", "--http-addr", rs.l.httpAddr, file)
			case 1:
				if err := writeZone(addr); err != nil {
					cancel()
					return nil, err
				}
			case 2:
				cmd = exec.CommandContext(cctx, "nsupdate", "-y", "hmac-sha256:"+strings.TrimSuffix(tsigName, ".")+":"+tsigSecret)
				cmd.Stdin = strings.NewReader(fmt.Sprintf("server 127.0.0.1 %d\nzone %s\nupdate delete %s A\nupdate add %s 60 A %s\nsend\n",
					rs.port, origin, target, target, addr))
			}
			seen, returned, err := timeChange(ctx, rs, cmd, i == 1, target, addr)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", out[i].method, err)
			}
			out[i].seen = append(out[i].seen, seen)
			if cmd != nil {
				out[i].returned = append(out[i].returned, returned)
			}
		}
	}
	return out, nil
}

// timeChange starts cmd (or sends SIGHUP to the server) and polls the
// server until target A is addr. returned is when cmd exited.
func timeChange(ctx context.Context, rs *running, cmd *exec.Cmd, hup bool, target, addr string) (seen, returned time.Duration, err error) {
	type exit struct {
		after time.Duration
		err   error
	}
	var outBuf strings.Builder
	done := make(chan exit, 1)
	t0 := time.Now()
	if hup {
		if err := rs.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return 0, 0, err
		}
		done <- exit{}
	} else {
		cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		go func() { // ends with the command; awaited below
			err := cmd.Wait()
			done <- exit{time.Since(t0), err}
		}()
	}
	deadline := t0.Add(time.Minute)
	for {
		got, _ := answerA(ctx, rs.addr, target)
		if got == addr {
			seen = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			e := <-done
			return 0, 0, fmt.Errorf("%s A is still %q after a minute, want %s (command: %v) %s", target, got, addr, e.err, outBuf.String())
		}
		time.Sleep(time.Millisecond)
	}
	e := <-done
	if e.err != nil {
		return 0, 0, fmt.Errorf("%v: %w\n%s", cmd.Args, e.err, outBuf.String())
	}
	return seen, e.after, nil
}
