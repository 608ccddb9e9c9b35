// Command buoy runs a Buoy node ("buoy agent") and talks to a running one
// through its HTTP API ("buoy members", "buoy token create", ...). "buoy
// dev" starts a local three-node cluster to try things out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `buoy — a cluster for machines on dynamic addresses

Usage:
  buoy agent [flags]            run a node (see "buoy agent -h")
  buoy dev                      run a local 3-node cluster on loopback
  buoy members [--json]         list members
  buoy status [--json]          show this node's view of the cluster
  buoy token create [--ttl 1h] [--uses N] [--description TEXT] [--json]
  buoy token list [--json]
  buoy token revoke ID
  buoy zone list|show ZONE|load FILE|drop ZONE|reload
  buoy kv get KEY [--stale] [--json]
  buoy kv put KEY [VALUE] [--cas N] [--ttl 30s]   (VALUE from stdin if omitted)
  buoy kv del KEY [--cas N] | buoy kv del --prefix PREFIX
  buoy kv list [PREFIX] [--stale] [--json]
  buoy kv watch [PREFIX] [--index N] [--json]
  buoy roles [--json]           failover roles; also roles show|move|history|put|delete
  buoy cert [renew] [--json]    this node's certificate; renew it now
  buoy leave                    make the node leave the cluster and stop
  buoy remove NAME              remove a member (from any node)

Client commands reach the agent at --http-addr (or BUOY_HTTP_ADDR, default
127.0.0.1:7380) with --http-token (or BUOY_HTTP_TOKEN) if the agent has one.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "buoy:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsage marks a mistake in the command line.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "agent":
		return runAgent(ctx, rest, stderr)
	case "dev":
		return runDev(ctx, rest, stdout, stderr)
	case "kv":
		return runKV(ctx, rest, os.Stdin, stdout, stderr)
	case "roles":
		return runRoles(ctx, rest, stdout, stderr, os.Stdin)
	case "cert":
		return runCert(ctx, rest, stdout, stderr)
	case "members", "status", "token", "zone", "leave", "remove":
		return runClient(ctx, cmd, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}
