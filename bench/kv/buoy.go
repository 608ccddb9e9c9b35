package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buoyCluster is three "buoy agent" processes on loopback, each with its
// data dir under the run's folder, with their default settings (fsync on),
// driven through the HTTP API.
type buoyCluster struct {
	cluster
}

// buoyStatus is the part of GET /v1/status the harness reads.
type buoyStatus struct {
	Name   string `json:"name"`
	Leader string `json:"leader"`
	Voters int    `json:"voters"`
}

// buildBuoy runs "go build ./cmd/buoy" from the module root into dir and
// returns the binary and the module root.
func buildBuoy(ctx context.Context, dir string) (bin, src string, err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", "", errors.New("go env GOMOD: not inside the buoy module; run from the repository or pass -buoy")
	}
	src = filepath.Dir(gomod)
	bin = filepath.Join(dir, "buoy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/buoy")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./cmd/buoy: %w\n%s", err, out)
	}
	return bin, src, nil
}

// agentHasFlag reports whether "buoy agent" knows a flag (the line
// protocol's --kv-text-addr is newer than the agent itself).
func agentHasFlag(bin, flag string) bool {
	out, _ := exec.Command(bin, "agent", "-h").CombinedOutput()
	return strings.Contains(string(out), "-"+flag+" ")
}

// startBuoy starts node1 with --bootstrap, makes a join token through its
// API and starts node2 and node3 with it, then waits until all three see
// the same leader and three voters.
func startBuoy(ctx context.Context, bin, dir string, workers int, target string, debug bool) (*buoyCluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	addrs, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	c := &buoyCluster{cluster{system: "buoy"}}
	c.findLeader = c.leaderIndex
	// No DNS: the benchmark does not use it, and one port fewer to race for.
	common := []string{"--dns-addr", "-", "--log-level", "warn"}
	if agentHasFlag(bin, "kv-text-addr") {
		// Three agents on one machine cannot share its default port.
		common = append(common, "--kv-text-addr=")
	}
	if debug {
		common = append(common, "--enable-debug")
	}
	var token string
	for i := range 3 {
		name := fmt.Sprintf("node%d", i+1)
		peer, api := addrs[2*i], addrs[2*i+1]
		c.names = append(c.names, name)
		c.http = append(c.http, "http://"+api)
		args := append([]string{"agent",
			"--name", name,
			"--data-dir", filepath.Join(dir, name),
			"--peer-addr", peer,
			"--http-addr", api,
		}, common...)
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", addrs[0], "--token", token)
		}
		p, err := startProc(name, bin, args, cleanEnv(), filepath.Join(dir, name+".log"))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		if i == 0 {
			if err := c.wait(ctx, 1); err != nil {
				c.stop()
				return nil, err
			}
			var tok struct {
				Token string `json:"token"`
			}
			req := map[string]any{"ttl": "10m", "description": "bench/kv"}
			if err := postJSON(ctx, c.http[0]+"/v1/tokens", req, &tok); err != nil {
				c.stop()
				return nil, fmt.Errorf("buoy: join token: %w", err)
			}
			token = tok.Token
		}
	}
	if err := c.wait(ctx, 3); err != nil {
		c.stop()
		return nil, err
	}
	if err := c.startPool(ctx, workers, target); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// wait polls every started node's status until each reports the same
// leader and the given number of voters.
func (c *buoyCluster) wait(ctx context.Context, voters int) error {
	return c.waitFor(ctx, "cluster not ready", func(ctx context.Context) error { return c.agree(ctx, voters) })
}

func (c *buoyCluster) agree(ctx context.Context, voters int) error {
	leader := ""
	for i := range c.procs {
		var st buoyStatus
		if err := getJSON(ctx, c.http[i]+"/v1/status", &st); err != nil {
			return err
		}
		if st.Leader == "" || st.Voters != voters {
			return fmt.Errorf("%s: leader %q, %d voters", c.names[i], st.Leader, st.Voters)
		}
		if leader != "" && st.Leader != leader {
			return fmt.Errorf("%s sees leader %s, %s sees %s", c.names[0], leader, c.names[i], st.Leader)
		}
		leader = st.Leader
	}
	return nil
}

// leaderIndex returns the leader's position in c.names, as node1 sees it.
func (c *buoyCluster) leaderIndex(ctx context.Context) (int, error) {
	var st buoyStatus
	if err := getJSON(ctx, c.http[0]+"/v1/status", &st); err != nil {
		return -1, err
	}
	for i, n := range c.names {
		if n == st.Leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("buoy: leader %q is not one of %v", st.Leader, c.names)
}

func (c *buoyCluster) put(ctx context.Context, worker int, key string, value []byte) error {
	_, err := c.pool.do(ctx, worker, "PUT", "/v1/kv/"+escapeKey(key), value, "application/octet-stream")
	return err
}

// get is a default read, which the API serves linearizably (read index
// confirmed by the leader).
func (c *buoyCluster) get(ctx context.Context, worker int, key string) error {
	_, err := c.pool.do(ctx, worker, "GET", "/v1/kv/"+escapeKey(key), nil, "")
	return err
}
