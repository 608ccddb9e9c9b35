package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// startPprof fetches a Go CPU profile and the allocations of each Buoy
// node (GET /debug/pprof/profile and allocs on its API, served with
// --enable-debug) over the first seconds of a step, into -pprof DIR as
// buoy-put-c64-r1-node2-profile.pprof and so on. Read them with "go tool
// pprof -top FILE" (-sample_index=alloc_space for the allocations). The returned
// function waits for the profiles. Failures are reported; the step runs
// either way.
func startPprof(ctx context.Context, c *buoyCluster, o options, op string, clients, round int, stderr io.Writer) (wait func()) {
	var wg sync.WaitGroup
	for i, base := range c.http {
		for _, kind := range []string{"profile", "allocs"} {
			out := filepath.Join(o.pprofDir, fmt.Sprintf("buoy-%s-c%d-r%d-%s-%s.pprof", op, clients, round+1, c.names[i], kind))
			wg.Go(func() {
				if err := fetchProfile(ctx, base, kind, o.pprofSeconds, out); err != nil {
					fmt.Fprintf(stderr, "pprof %s %s: %v\n", c.names[i], kind, err)
					return
				}
				fmt.Fprintf(stderr, "pprof: %s\n", out)
			})
		}
	}
	return wg.Wait
}

func fetchProfile(ctx context.Context, base, kind string, seconds int, out string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", base, kind, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
