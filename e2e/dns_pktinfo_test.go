package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"buoy/e2e/netlab"
)

// TestDNSReplySource runs a real agent with "--dns-addr 0.0.0.0:53" on a
// host with two addresses on one interface, 192.0.2.10/24 and a secondary
// 192.0.2.11/24, and asks it with dig from a second host, 192.0.2.20. For
// that client the kernel's own choice of source address is the primary,
// .10; an answer to a query sent to .11 must still come from .11, which
// dig checks: it ignores a reply from any other address ("reply from
// unexpected source") and times out. Both a fast-path query (the cluster
// zone's SOA) and one the fast path hands to the slow path (TYPE253,
// MAILA: NOTIMP) are asked at both addresses.
func TestDNSReplySource(t *testing.T) {
	digPath := tool(t, "dig")
	lab := netlab.New(t) // skips without root outside CI, fails under CI=true
	lan := lab.Switch("lan")
	srv := lab.Host("srv")
	srv.Attach(lan, "192.0.2.10/24")
	cli := lab.Host("cli")
	cli.Attach(lan, "192.0.2.20/24")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The second address of the same subnet is a secondary: the kernel
	// never picks it as a source by itself.
	if _, err := srv.Run(ctx, "ip", "addr", "add", "192.0.2.11/24", "dev", srv.Ifname(lan)); err != nil {
		t.Fatalf("add the second address: %v", err)
	}

	dir := t.TempDir()
	args := []string{"agent",
		"--name", "ns1",
		"--data-dir", filepath.Join(dir, "data"),
		"--bootstrap",
		"--dns-addr", "0.0.0.0:53",
		"--log-level", "debug",
	}
	cmd := srv.Command(ctx, agentBin, args...)
	cmd.Env = env()
	cmd.SysProcAttr = agentProcAttr()
	p, err := lab.Start(cmd)
	if err != nil {
		t.Fatalf("start the agent: %v", err)
	}
	// Registered after the lab's cleanup, so it runs first: SIGTERM, so
	// that a race-built agent reports its races, then the lab removes the
	// namespaces (and kills the agent if it is still there).
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer scancel()
		_ = p.Stop(sctx)
		out := p.Output()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("the agent reported a data race; its log:\n%s", out)
		} else if t.Failed() {
			t.Logf("--- the agent's log ---\n%s", tailString(out, 40))
		}
	})

	ask := func(server, qtype string) (reply, error) {
		dctx, dcancel := context.WithTimeout(ctx, dnsToolTimeout)
		defer dcancel()
		digArgs := []string{"@" + server, "buoy.internal", qtype,
			"+norec", "+time=2", "+tries=2", "+noall", "+comments", "+answer", "+authority"}
		out, err := cli.Run(dctx, digPath, digArgs...)
		if err != nil {
			return reply{}, fmt.Errorf("%w\n%s", err, out)
		}
		r := parseDig(string(out))
		if r.status == "" {
			return r, fmt.Errorf("dig %s: no answer in:\n%s", strings.Join(digArgs, " "), out)
		}
		return r, nil
	}

	// The primary address answers as soon as the agent serves the zone.
	deadline := time.Now().Add(60 * time.Second) // a race-built agent starts slowly
	for {
		r, err := ask("192.0.2.10", "SOA")
		if err == nil && r.status == "NOERROR" && len(r.answer) == 1 {
			break
		}
		select {
		case <-p.Done():
			t.Fatalf("the agent exited (%v) before it answered buoy.internal SOA at 192.0.2.10", p.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent does not answer buoy.internal SOA at 192.0.2.10: %v %+v", err, r)
		}
		time.Sleep(pollEvery)
	}

	for _, server := range []string{"192.0.2.11", "192.0.2.10"} {
		for _, q := range []struct{ qtype, status string }{
			{"SOA", "NOERROR"},    // fast path
			{"TYPE253", "NOTIMP"}, // MAILA: slow path
		} {
			t.Run(server+"/"+q.qtype, func(t *testing.T) {
				r, err := ask(server, q.qtype)
				if err != nil {
					t.Fatalf("dig @%s buoy.internal %s: %v", server, q.qtype, err)
				}
				if strings.Contains(r.out, "unexpected source") {
					t.Errorf("dig @%s buoy.internal %s: an answer came from another address:\n%s", server, q.qtype, r.out)
				}
				if r.status != q.status {
					t.Errorf("dig @%s buoy.internal %s: status %s, want %s:\n%s", server, q.qtype, r.status, q.status, r.out)
				}
				if q.status == "NOERROR" && (len(r.answer) != 1 || !slices.Contains(strings.Fields(r.answer[0]), "SOA")) {
					t.Errorf("dig @%s buoy.internal %s: answer %q, want the SOA", server, q.qtype, r.answer)
				}
			})
		}
	}
	select {
	case <-p.Done():
		t.Errorf("the agent exited during the test: %v", p.Err())
	default:
	}
}

// tailString returns the last lines of s.
func tailString(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
