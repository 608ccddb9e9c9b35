package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"buoy/bench/failover/rolelab"
)

// Failover roles with real agents. In network namespaces (netlab; root,
// skipped elsewhere outside CI): three agents run one role whose hooks
// append "time epoch event" to a file per node, and the test kills the
// holder with kill -9, cuts the next holder's cable and plugs it back.
// On loopback: the bad inputs a user can give a role.

// rolesTimeout bounds each wait of the namespace test; it asserts order
// and outcome, not speed (bench/failover measures that).
const rolesTimeout = 60 * time.Second

func TestRolesFailover(t *testing.T) {
	c := rolelab.New(t, rolelab.Options{Agent: agentBin, CLI: buoyBin, Dir: rolesDir(t), LogLevel: "debug"})
	defer func() {
		if t.Failed() {
			c.DumpLogs(60)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wait := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, rolesTimeout) }

	wctx, wcancel := wait()
	first, epoch1, err := c.Holder(wctx, c.Nodes...)
	wcancel()
	if err != nil {
		t.Fatalf("no holder of %s: %v", rolelab.Role, err)
	}
	t.Logf("%s holds %s at epoch %d", first.Name, rolelab.Role, epoch1)

	// kill -9 of the holder: another node is promoted and every survivor's
	// DNS answers its address.
	survivors := slices.DeleteFunc(slices.Clone(c.Nodes), func(n *rolelab.Node) bool { return n == first })
	killed := time.Now()
	first.Kill()
	wctx, wcancel = wait()
	second, epoch2, err := c.Holder(wctx, survivors...)
	wcancel()
	if err != nil {
		t.Fatalf("no new holder after kill -9 of %s: %v", first.Name, err)
	}
	if epoch2 <= epoch1 {
		t.Errorf("epoch after the failover = %d, want above %d", epoch2, epoch1)
	}
	promoted, _ := second.FirstEvent("promote", killed)
	t.Logf("kill -9 %s: %s's promote hook started after %v (epoch %d)", first.Name, second.Name, promoted.At.Sub(killed).Round(time.Millisecond), epoch2)
	eventually(t, "every survivor's DNS answers the new holder", func() error {
		for _, n := range survivors {
			if rc, ips, err := n.Lookup(time.Second); err != nil || !slices.Equal(ips, []netip.Addr{second.IP}) {
				return fmt.Errorf("%s answers %s with rcode %d %v (%v), want %s", n.Name, rolelab.Name, rc, ips, err, second.IP)
			}
		}
		return nil
	})
	t.Logf("DNS on every survivor answered %s after %v", second.IP, time.Since(killed).Round(time.Millisecond))

	// The killed node comes back: it promoted before the crash, so its
	// demote hook runs again (the services it started must stop), and it
	// does not take the role back.
	restarted := time.Now()
	first.Restart()
	eventually(t, first.Name+" runs its demote hook after the restart", func() error {
		if _, ok := first.FirstEvent("demote", restarted); !ok {
			return fmt.Errorf("no demote event on %s since its restart", first.Name)
		}
		return nil
	})
	wctx, wcancel = wait()
	err = c.WaitAlive(wctx, c.Nodes...)
	wcancel()
	if err != nil {
		t.Fatalf("cluster does not heal after the restart of %s: %v", first.Name, err)
	}

	// The holder's cable is cut: its demote hook runs before the new
	// holder's promote hook (one machine, one clock).
	others := slices.DeleteFunc(slices.Clone(c.Nodes), func(n *rolelab.Node) bool { return n == second })
	cut := time.Now()
	second.Cut()
	wctx, wcancel = wait()
	third, epoch3, err := c.Holder(wctx, others...)
	wcancel()
	if err != nil {
		t.Fatalf("no new holder after cutting %s off: %v", second.Name, err)
	}
	eventually(t, second.Name+" demotes itself", func() error {
		if _, ok := second.FirstEvent("demote", cut); !ok {
			return fmt.Errorf("no demote event on %s since the cut", second.Name)
		}
		return nil
	})
	demoted, _ := second.FirstEvent("demote", cut)
	promoted, _ = third.FirstEvent("promote", cut)
	if !demoted.At.Before(promoted.At) {
		t.Errorf("%s's demote hook ran at %v, not before %s's promote hook at %v", second.Name, demoted.At, third.Name, promoted.At)
	}
	t.Logf("cut %s: its demote hook ran %v after the cut, %s's promote %v after (epoch %d)", second.Name,
		demoted.At.Sub(cut).Round(time.Millisecond), third.Name, promoted.At.Sub(cut).Round(time.Millisecond), epoch3)

	// The cut heals: the old holder learns the new epoch and stays
	// demoted.
	healed := time.Now()
	second.Restore()
	eventually(t, second.Name+" learns the new holder", func() error {
		r, err := second.Role(ctx)
		if err != nil {
			return err
		}
		if r.Holder != third.Name || r.Epoch != epoch3 || r.Held {
			return fmt.Errorf("%s sees holder %q epoch %d held %v, want %s at %d, not held", second.Name, r.Holder, r.Epoch, r.Held, third.Name, epoch3)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if ev, ok := second.FirstEvent("promote", healed); ok {
		t.Errorf("%s ran its promote hook again after the heal (epoch %d)", second.Name, ev.Epoch)
	}
	if epoch3 <= epoch2 {
		t.Errorf("epoch after the heal = %d, want above %d", epoch3, epoch2)
	}
	r, err := third.Role(ctx)
	if err != nil || r.Holder != third.Name || !r.Held || r.Epoch != epoch3 {
		t.Errorf("after the heal %s shows %+v (%v), want itself holding at epoch %d", third.Name, r, err, epoch3)
	}
}

// TestRolesBadInput: a hook that hangs, a hook that is not executable, a
// check against a closed port and roles naming unknown nodes each give a
// clear error; the agent keeps running and serving.
func TestRolesBadInput(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	hang := writeScript(t, dir, "hang", "#!/bin/sh\nsleep 60\n", 0o755)
	noexec := writeScript(t, dir, "noexec", "#!/bin/sh\nexit 0\n", 0o644)
	closed := freeAddr(t) // nobody listens there
	cfg := filepath.Join(dir, "buoy.yaml")
	yaml := "roles:\n" +
		"  hang:\n    hooks: {promote: " + hang + ", timeout: 1s}\n" +
		"  noexec:\n    hooks: {promote: " + noexec + "}\n" +
		"  closed:\n    checks:\n      - {type: tcp, addr: \"" + closed + "\", interval: 200ms, rise: 1, fall: 1}\n" +
		"  ghosts:\n    candidates: {ghost1: 10, ghost2: 5}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a := c.startDNS("solo", "--bootstrap", "--config", cfg)

	history := func(role string) string {
		out, _, err := runCLI("roles", "history", "--http-addr", a.httpAddr, "--role", role, "--limit", "0", "--json")
		if err != nil {
			return err.Error()
		}
		return out
	}
	eventually(t, "the hanging promote hook is killed at its timeout", func() error {
		if h := history("hang"); !strings.Contains(h, "hook timed out") {
			return fmt.Errorf("history of hang: %s", h)
		}
		return nil
	})
	var es []struct {
		Kind     string        `json:"kind"`
		Event    string        `json:"event"`
		Error    string        `json:"error"`
		Duration time.Duration `json:"duration_ns"`
	}
	if err := json.Unmarshal([]byte(history("hang")), &es); err != nil {
		t.Fatalf("history of hang: %v", err)
	}
	for _, e := range es {
		if e.Kind == "hook" && e.Event == "promote" && (e.Duration < time.Second || e.Duration > 10*time.Second) {
			t.Errorf("hanging promote hook ran %v, want it killed at its 1s timeout", e.Duration)
		}
	}
	eventually(t, "the non-executable hook is reported", func() error {
		if h := history("noexec"); !strings.Contains(h, "not executable") {
			return fmt.Errorf("history of noexec: %s", h)
		}
		return nil
	})
	eventually(t, "the failed promote counts as a failed check", func() error {
		out, _, err := runCLI("roles", "show", "noexec", "--http-addr", a.httpAddr)
		if err != nil || !strings.Contains(out, "promote hook failed") {
			return fmt.Errorf("roles show noexec: %s %v", out, err)
		}
		return nil
	})
	eventually(t, "the check against a closed port fails with its reason", func() error {
		out, _, err := runCLI("roles", "show", "closed", "--http-addr", a.httpAddr)
		if err != nil || !strings.Contains(out, "refused") {
			return fmt.Errorf("roles show closed: %s %v", out, err)
		}
		if strings.Contains(out, "solo *") {
			return fmt.Errorf("solo holds closed although its check fails:\n%s", out)
		}
		return nil
	})
	// Roles naming unknown nodes: the config's is kept (they may join
	// later) and has no holder, so its name answers NODATA; one put
	// through the API is refused.
	r, err := dig(t, a.dnsAddr, "ghosts.buoy.internal.", "A")
	if err != nil || r.status != "NOERROR" || len(r.answer) != 0 {
		t.Errorf("dig ghosts.buoy.internal A = %+v, %v, want NOERROR with no answer (NODATA)", r, err)
	}
	spec := filepath.Join(dir, "ghost.yaml")
	os.WriteFile(spec, []byte("candidates: {ghost3: 1}\n"), 0o600)
	_, stderr, err := runCLI("roles", "put", "ghost", spec, "--http-addr", a.httpAddr)
	if err == nil || !strings.Contains(stderr, "not a member") {
		t.Errorf("roles put with an unknown candidate: err %v, stderr %q, want an error saying it is not a member", err, stderr)
	}
	_, stderr, err = runCLI("roles", "move", "ghosts", "ghost1", "--http-addr", a.httpAddr)
	if err == nil || !strings.Contains(stderr, "not a member") {
		t.Errorf("roles move to an unknown node: err %v, stderr %q, want an error", err, stderr)
	}
	if !a.running() {
		t.Fatalf("the agent stopped:\n%s", a.output())
	}
	if _, err := a.status(); err != nil {
		t.Errorf("the agent does not answer after the bad input: %v", err)
	}
}

func writeScript(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// rolesDir is the namespace test's work dir: a temporary one, or the
// directory in ROLES_KEEP, where the agents' logs and hook events stay
// after the test for a look.
func rolesDir(t *testing.T) string {
	if d := os.Getenv("ROLES_KEEP"); d != "" {
		return d
	}
	return t.TempDir()
}
