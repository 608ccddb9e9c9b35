package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// etcdCluster is three etcd members on loopback, each with its data dir
// under the run's folder, driven through etcd's v3 HTTP/JSON gateway (the
// gRPC gateway every member serves on its client URL), so the benchmark
// needs no etcd Go module.
type etcdCluster struct {
	procs   []*proc
	clients []string // client URLs, in member order
	names   []string
	pool    *pool
}

// etcdVersion returns the first line of "etcd --version".
func etcdVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(strings.TrimSpace(first), "etcd Version: ")
}

// startEtcd starts the three members with a static initial cluster and
// waits until they have elected a leader. fsync is on: etcd's default,
// nothing here turns it off.
func startEtcd(ctx context.Context, bin, dir string, workers int, target string) (*etcdCluster, error) {
	addrs, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{}
	var initial []string
	for i := range 3 {
		name := fmt.Sprintf("etcd%d", i+1)
		c.names = append(c.names, name)
		c.clients = append(c.clients, "http://"+addrs[2*i])
		initial = append(initial, name+"=http://"+addrs[2*i+1])
	}
	for i, name := range c.names {
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			c.stop()
			return nil, err
		}
		peer := "http://" + addrs[2*i+1]
		args := []string{
			"--name", name,
			"--data-dir", data,
			"--listen-client-urls", c.clients[i],
			"--advertise-client-urls", c.clients[i],
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "bench-kv",
			"--logger", "zap",
			"--log-level", "warn",
		}
		p, err := startProc(name, bin, args, cleanEnv(), filepath.Join(dir, name+".log"))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	if err := c.waitLeader(ctx); err != nil {
		c.stop()
		return nil, err
	}
	// The leader first: one client talks to the leader on both systems,
	// and more clients spread evenly from there.
	i, err := c.leaderIndex(ctx)
	if err != nil {
		c.stop()
		return nil, err
	}
	endpoints := append(slices.Clone(c.clients[i:]), c.clients[:i]...)
	if target == targetLeader {
		endpoints = endpoints[:1]
	}
	c.pool = newPool(endpoints, workers)
	return c, nil
}

// etcdStatus is the part of /v3/maintenance/status the harness reads. The
// gateway writes 64-bit integers as strings.
type etcdStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader string `json:"leader"`
}

// leaderIndex returns the leader's position in c.names.
func (c *etcdCluster) leaderIndex(ctx context.Context) (int, error) {
	var ids []string
	var leader string
	for _, u := range c.clients {
		var st etcdStatus
		if err := postJSON(ctx, u+"/v3/maintenance/status", struct{}{}, &st); err != nil {
			return -1, err
		}
		ids = append(ids, st.Header.MemberID)
		if st.Leader != "" && st.Leader != "0" {
			leader = st.Leader
		}
	}
	for i, id := range ids {
		if id == leader {
			return i, nil
		}
	}
	return -1, errors.New("etcd: no leader")
}

func (c *etcdCluster) waitLeader(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, p := range c.procs {
			if !p.running() {
				return p.exited()
			}
		}
		_, err := c.leaderIndex(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd: no leader after 60 s: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *etcdCluster) name() string { return "etcd" }

// etcdKV is the body of /v3/kv/put and /v3/kv/range; []byte fields travel
// as base64, as the gateway wants.
type etcdKV struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value,omitempty"`
}

func (c *etcdCluster) put(ctx context.Context, worker int, key string, value []byte) error {
	b, err := json.Marshal(etcdKV{Key: []byte(key), Value: value})
	if err != nil {
		return err
	}
	_, err = c.pool.do(ctx, worker, "POST", "/v3/kv/put", b, "application/json")
	return err
}

// get is a range request for one key. etcd serves it linearizably unless
// "serializable" is set, which it is not.
func (c *etcdCluster) get(ctx context.Context, worker int, key string) error {
	b, err := json.Marshal(etcdKV{Key: []byte(key)})
	if err != nil {
		return err
	}
	out, err := c.pool.do(ctx, worker, "POST", "/v3/kv/range", b, "application/json")
	if err != nil {
		return err
	}
	if !bytes.Contains(out, []byte(`"kvs"`)) {
		return fmt.Errorf("etcd range %s: no such key: %.200s", key, out)
	}
	return nil
}

func (c *etcdCluster) leader(ctx context.Context) (string, error) {
	i, err := c.leaderIndex(ctx)
	if err != nil {
		return "", err
	}
	return c.names[i], nil
}

func (c *etcdCluster) follow(ctx context.Context) (bool, error) {
	i, err := c.leaderIndex(ctx)
	if err != nil {
		return false, err
	}
	return c.pool.retarget(c.clients[i]), nil
}

func (c *etcdCluster) pids() []int {
	var ids []int
	for _, p := range c.procs {
		ids = append(ids, p.pid())
	}
	return ids
}

// alive fails if a member has exited.
func (c *etcdCluster) alive() error {
	for _, p := range c.procs {
		if !p.running() {
			return p.exited()
		}
	}
	return nil
}

func (c *etcdCluster) stop() {
	if c.pool != nil {
		c.pool.close()
	}
	stopAll(c.procs)
}
