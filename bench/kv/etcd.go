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
	"strings"
)

// etcdCluster is three etcd members on loopback, each with its data dir
// under the run's folder, driven through etcd's v3 HTTP/JSON gateway (the
// gRPC gateway every member serves on its client URL), so the benchmark
// needs no etcd Go module.
type etcdCluster struct {
	cluster
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
	c := &etcdCluster{cluster{system: "etcd"}}
	c.findLeader = c.leaderIndex
	var initial []string
	for i := range 3 {
		name := fmt.Sprintf("etcd%d", i+1)
		c.names = append(c.names, name)
		c.http = append(c.http, "http://"+addrs[2*i])
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
			"--listen-client-urls", c.http[i],
			"--advertise-client-urls", c.http[i],
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
	if err := c.waitFor(ctx, "no leader", func(ctx context.Context) error {
		_, err := c.leaderIndex(ctx)
		return err
	}); err != nil {
		c.stop()
		return nil, err
	}
	if err := c.startPool(ctx, workers, target); err != nil {
		c.stop()
		return nil, err
	}
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
	for _, u := range c.http {
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
