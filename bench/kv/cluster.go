package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// cluster is what the buoy and etcd drivers share: three server processes
// on loopback, their names and HTTP base URLs in node order, and the pool
// of clients that loads them. Each driver embeds it and sets findLeader.
type cluster struct {
	system string // "buoy" or "etcd"
	procs  []*proc
	names  []string
	http   []string // API base URLs, in node order
	pool   *pool
	// findLeader returns the leader's position in names, the one thing
	// the two systems answer differently.
	findLeader func(ctx context.Context) (int, error)
}

func (c *cluster) name() string { return c.system }

// waitFor polls ready every 200 ms until it returns nil, and fails if a
// process exits, ctx ends, or 60 s pass; notReady says what was awaited
// in that last error.
func (c *cluster) waitFor(ctx context.Context, notReady string, ready func(context.Context) error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.alive()
		if err != nil {
			return err
		}
		if err = ready(ctx); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s after 60 s: %w", c.system, notReady, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startPool makes the client pool once the cluster is up. The leader
// comes first: one client talks to the leader on both systems, and more
// clients spread evenly from there; -target leader keeps only it.
func (c *cluster) startPool(ctx context.Context, workers int, target string) error {
	i, err := c.findLeader(ctx)
	if err != nil {
		return err
	}
	endpoints := append(slices.Clone(c.http[i:]), c.http[:i]...)
	if target == targetLeader {
		endpoints = endpoints[:1]
	}
	c.pool = newPool(endpoints, workers)
	return nil
}

func (c *cluster) leader(ctx context.Context) (string, error) {
	i, err := c.findLeader(ctx)
	if err != nil {
		return "", err
	}
	return c.names[i], nil
}

func (c *cluster) follow(ctx context.Context) (bool, error) {
	i, err := c.findLeader(ctx)
	if err != nil {
		return false, err
	}
	return c.pool.retarget(c.http[i]), nil
}

func (c *cluster) pids() []int {
	var ids []int
	for _, p := range c.procs {
		ids = append(ids, p.pid())
	}
	return ids
}

// alive fails if a process has exited.
func (c *cluster) alive() error {
	for _, p := range c.procs {
		if !p.running() {
			return p.exited()
		}
	}
	return nil
}

func (c *cluster) stop() {
	if c.pool != nil {
		c.pool.close()
	}
	stopAll(c.procs)
}
