package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// system is a cluster under test as the load generator drives it.
type system interface {
	// name is how the tables call it: "buoy" or "etcd".
	name() string
	// put writes value under key, as client number worker, and returns
	// once the write is committed.
	put(ctx context.Context, worker int, key string, value []byte) error
	// get reads key linearizably and fails if it is absent.
	get(ctx context.Context, worker int, key string) error
	// leader names the current leader, for the report.
	leader(ctx context.Context) (string, error)
	// follow points the load at the current leader again when it goes
	// only to the leader (-target leader), and says whether it moved.
	follow(ctx context.Context) (moved bool, err error)
	// pids are the server processes' ids, for their CPU time.
	pids() []int
	// alive fails if a server process has exited.
	alive() error
	// stop ends every server process and waits for it.
	stop()
}

// pool gives each load worker its own HTTP client holding one keep-alive
// connection to one endpoint: worker i talks to endpoints[i mod len], as
// independent clients spread over a cluster's members would.
type pool struct {
	// endpoints are base URLs (http://host:port), the leader's first; only
	// changed between steps.
	endpoints []string
	clients   []*http.Client
}

// newPool makes clients for up to workers concurrent workers.
func newPool(endpoints []string, workers int) *pool {
	p := &pool{endpoints: endpoints}
	for range workers {
		p.clients = append(p.clients, &http.Client{
			Transport: &http.Transport{
				Proxy:               nil, // loopback only, whatever the environment says
				MaxIdleConnsPerHost: 1,
				DisableCompression:  true,
				IdleConnTimeout:     5 * time.Minute,
			},
			Timeout: 30 * time.Second,
		})
	}
	return p
}

// do sends one request as worker and returns the answer's body if its
// status is 200.
func (p *pool) do(ctx context.Context, worker int, method, path string, body []byte, ctype string) ([]byte, error) {
	base := p.endpoints[worker%len(p.endpoints)]
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := p.clients[worker%len(p.clients)].Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %.200s", method, base+path, resp.Status, b)
	}
	return b, nil
}

// retarget points every worker at base instead, if it goes to one
// endpoint (-target leader); it reports whether that changed anything.
func (p *pool) retarget(base string) bool {
	if len(p.endpoints) != 1 || p.endpoints[0] == base {
		return false
	}
	p.endpoints[0] = base
	return true
}

// close drops every idle connection.
func (p *pool) close() {
	for _, c := range p.clients {
		c.CloseIdleConnections()
	}
}

// getJSON and postJSON are the harness's own calls (setup, status), made
// outside the measured load.
func getJSON(ctx context.Context, url string, v any) error {
	return callJSON(ctx, http.MethodGet, url, nil, v)
}

func postJSON(ctx context.Context, url string, in, v any) error {
	return callJSON(ctx, http.MethodPost, url, in, v)
}

// setupClient is for the harness's own calls; no proxy, short timeout.
var setupClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}

func callJSON(ctx context.Context, method, url string, in, v any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := setupClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %.300s", method, url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: decoding %.200q: %w", method, url, b, err)
	}
	return nil
}

// escapeKey makes a key safe in a URL path, keeping its slashes.
func escapeKey(key string) string {
	return (&url.URL{Path: key}).EscapedPath()
}
