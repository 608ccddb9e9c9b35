package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"buoy"
)

// runDev starts three nodes in this process on loopback, each with its own
// data dir under a temporary folder, and runs until interrupted.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("buoy dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 3, "how many nodes to run")
	keep := fs.Bool("keep", false, "keep the data dirs after shutdown")
	level := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return fmt.Errorf("%w: --nodes must be 1 to 9", errUsage)
	}
	lvl, err := parseLevel(*level)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	root, err := os.MkdirTemp("", "buoy-dev-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(root)
	}
	demoZone := filepath.Join(root, "demo.test.zone")
	if err := os.WriteFile(demoZone, []byte(demoZoneText), 0o644); err != nil {
		return err
	}

	var running []*buoy.Node
	defer func() {
		for i := len(running) - 1; i >= 0; i-- {
			running[i].Close()
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var token string
	for i := range *nodes {
		name := fmt.Sprintf("node%d", i+1)
		peerL, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		httpL, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			peerL.Close()
			return err
		}
		cfg := buoy.Config{
			Name:         name,
			DataDir:      filepath.Join(root, name),
			PeerListener: peerL,
			HTTPListener: httpL,
			DNSAddr:      "127.0.0.1:0",
			KVTextAddr:   "127.0.0.1:0",
			Logger:       log,
		}
		if i == 0 {
			cfg.Bootstrap = true
			cfg.ZoneFiles = []string{demoZone}
			// A demo failover role: every node a candidate, no checks.
			cfg.Roles = []buoy.RoleDef{{Name: "web", TTL: 5 * time.Second}}
		} else {
			cfg.Join = []string{running[0].ListenAddr().String()}
			cfg.Token = token
		}
		n, err := buoy.New(cfg)
		if err != nil {
			peerL.Close()
			httpL.Close()
			return err
		}
		if err := n.Start(startCtx); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		running = append(running, n)
		if err := n.WaitReady(startCtx); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		if i == 0 {
			t, err := n.CreateToken(startCtx, buoy.TokenRequest{TTL: "1h", Description: "buoy dev"})
			if err != nil {
				return err
			}
			token = t.Token
		}
	}

	if err := running[0].LoadZoneFiles(startCtx); err != nil {
		return fmt.Errorf("demo zone: %w", err)
	}
	// The printed commands move the demo role: wait until it has a holder
	// and the leader sees every node alive and healthy, or the first
	// "roles move" typed quickly is refused with "not alive".
	if err := waitDemoRole(startCtx, running); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "Buoy dev cluster: %d nodes on loopback, data under %s\n\n", len(running), root)
	for _, n := range running {
		fmt.Fprintf(stdout, "  %-6s peer %-21s http %-21s dns %s\n", n.Name(), n.ListenAddr(), n.HTTPAddr(), n.DNSAddr())
	}
	_, dnsPort, _ := net.SplitHostPort(running[len(running)-1].DNSAddr().String())
	fmt.Fprintf(stdout, `
DNS (every node answers the same; the demo zone %s is in the replicated state):
  dig @127.0.0.1 -p %s node2.nodes.buoy.internal A +norec
  dig @127.0.0.1 -p %s leader.buoy.internal A +norec
  dig @127.0.0.1 -p %s www.demo.test A +norec
  dig @127.0.0.1 -p %s demo.test MX +norec
  dig @127.0.0.1 -p %s web.buoy.internal A +norec       (the holder of the demo role "web")
`, demoZone, dnsPort, dnsPort, dnsPort, dnsPort, dnsPort)
	first := running[0].HTTPAddr().String()
	_, kvPort, _ := net.SplitHostPort(running[len(running)-1].KVTextAddr().String())
	fmt.Fprintf(stdout, `
Try, in another terminal:
  export BUOY_HTTP_ADDR=%s
  go run ./cmd/buoy members
  go run ./cmd/buoy status
  go run ./cmd/buoy token create --ttl 10m
  go run ./cmd/buoy members --json --http-addr %s
  go run ./cmd/buoy zone list
  go run ./cmd/buoy zone show demo.test
  go run ./cmd/buoy kv put greeting hello && go run ./cmd/buoy kv get greeting
  echo "kv get greeting" | nc -q1 127.0.0.1 %s
  go run ./cmd/buoy roles
  go run ./cmd/buoy roles move web node3 && go run ./cmd/buoy roles history

Ctrl-C stops the cluster%s.
`, first, running[len(running)-1].HTTPAddr(), kvPort, map[bool]string{false: " and removes its data", true: ""}[*keep])

	// Nodes stop on their own only when they leave or are removed.
	done := make(chan *buoy.Node, len(running))
	for _, n := range running {
		go func() {
			select {
			case <-n.Done():
				done <- n
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "\nshutting down")
			return nil
		case n := <-done:
			fmt.Fprintf(stdout, "%s stopped: %v\n", n.Name(), n.Err())
			if errors.Is(n.Err(), buoy.ErrLeft) {
				continue
			}
		}
	}
}

// waitDemoRole waits until every node reports the demo role "web" held by
// someone, with all its candidates alive and healthy in the leader's view.
func waitDemoRole(ctx context.Context, nodes []*buoy.Node) error {
	ready := func() bool {
		for _, n := range nodes {
			var web *buoy.RoleInfo
			for _, r := range n.Roles() {
				if r.Name == "web" {
					web = &r
				}
			}
			if web == nil || web.Holder == "" || len(web.Candidates) != len(nodes) {
				return false
			}
			for _, c := range web.Candidates {
				if c.Alive != "yes" || c.Health != "passing" {
					return false
				}
			}
		}
		return true
	}
	for !ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo role web: no holder with every node alive: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// demoZoneText is the zone "buoy dev" loads, to have something to query.
const demoZoneText = `$ORIGIN demo.test.
$TTL 300
@       IN SOA  node1.nodes.buoy.internal. hostmaster.demo.test. 1 3600 600 86400 60
@       IN NS   node1.nodes.buoy.internal.
@       IN NS   node2.nodes.buoy.internal.
@       IN MX   10 mail
www     IN A    192.0.2.80
www     IN AAAA 2001:db8::80
mail    IN A    192.0.2.25
api     IN CNAME www
*.apps  IN A    192.0.2.81
@       IN TXT  "buoy dev demo zone"
`
