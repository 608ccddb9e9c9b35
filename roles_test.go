package buoy

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestNextSession(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	for range 3 {
		s, err := nextSession(dir)
		if err != nil {
			t.Fatal(err)
		}
		if s <= last {
			t.Fatalf("nextSession = %d after %d, want larger", s, last)
		}
		last = s
	}
	if err := os.WriteFile(filepath.Join(dir, sessionFile), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nextSession(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("nextSession(corrupt file) = %v, want an error saying what to do", err)
	}
}

func TestRunsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	runs, err := loadRuns(dir)
	if err != nil || len(runs) != 0 {
		t.Fatalf("loadRuns(empty dir) = %v, %v", runs, err)
	}
	want := runRecord{State: "promote", Epoch: 7, Done: true, Change: 7, Hooks: RoleHooks{Demote: "/bin/true"}}
	r := &roleManager{n: &Node{}, dir: dir, runs: map[string]runRecord{"web": want}}
	r.saveRunsLocked()
	got, err := loadRuns(dir)
	if err != nil || got["web"] != want {
		t.Fatalf("loadRuns after save = %+v, %v, want %+v", got["web"], err, want)
	}
	if run := want.run(); run.Epoch != 7 || !run.Done || run.State.String() != "promote" {
		t.Errorf("run() = %+v", run)
	}
	os.WriteFile(filepath.Join(dir, runsFile), []byte("{"), 0o600)
	if _, err := loadRuns(dir); err == nil {
		t.Error("loadRuns accepted a corrupt file")
	}
}

// startSolo starts a one-node cluster in dir with cfg's roles and DNS on
// loopback, and waits until it leads.
func startSolo(t *testing.T, dir string, roles []RoleDef) *Node {
	t.Helper()
	n, err := New(Config{Name: "solo", DataDir: dir, PeerAddr: "127.0.0.1:0", HTTPAddr: "-", DNSAddr: "127.0.0.1:0",
		Bootstrap: true, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

// waitRole waits until the node's state defines role as f accepts it.
func waitRole(t *testing.T, n *Node, name string, f func(RoleDef, bool) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		def, ok := n.fsm.View().Role(name)
		if f(def, ok) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("role %s = %+v (defined %v), not as expected", name, def, ok)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConfiguredRoles: the config's roles are written at start; a change
// made at run time survives a restart with the same config; a changed
// config wins; a role dropped from the config is deleted.
func TestConfiguredRoles(t *testing.T) {
	dir := t.TempDir()
	v1 := RoleDef{Name: "web", TTL: time.Second}
	n := startSolo(t, dir, []RoleDef{v1})
	waitRole(t, n, "web", func(d RoleDef, ok bool) bool { return ok && d.Equal(v1) })
	v2 := RoleDef{Name: "web", TTL: 2 * time.Second}
	if err := n.PutRole(context.Background(), v2); err != nil {
		t.Fatal(err)
	}
	if err := n.PutRole(context.Background(), RoleDef{Name: "web", Candidates: map[string]int{"ghost": 1}}); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("PutRole(unknown candidate) = %v, want ErrUnknownNode", err)
	}
	n.Close()

	n = startSolo(t, dir, []RoleDef{v1})
	time.Sleep(500 * time.Millisecond) // time to (wrongly) write v1 again
	waitRole(t, n, "web", func(d RoleDef, ok bool) bool { return ok && d.Equal(v2) })
	n.Close()

	v3 := RoleDef{Name: "web", TTL: 3 * time.Second}
	n = startSolo(t, dir, []RoleDef{v3})
	waitRole(t, n, "web", func(d RoleDef, ok bool) bool { return ok && d.Equal(v3) })
	n.Close()

	n = startSolo(t, dir, nil)
	defer n.Close()
	waitRole(t, n, "web", func(_ RoleDef, ok bool) bool { return !ok })
}

// TestRoleDNSAndEvents: a one-node cluster holds its role (promote
// events in order, HoldsRole with the epoch); the role's name exists in
// DNS (NODATA: a lone node has no peer to tell it its address), a name
// of no role does not (NXDOMAIN); deleting the role demotes the node.
func TestRoleDNSAndEvents(t *testing.T) {
	n := startSolo(t, t.TempDir(), nil)
	defer n.Close()
	events := make(chan RoleEvent, 16)
	n.OnRoleChange(func(ev RoleEvent) {
		if ev.Role == "web" {
			events <- ev
		}
	})
	if err := n.PutRole(context.Background(), RoleDef{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	next := func(kind string) RoleEvent {
		t.Helper()
		select {
		case ev := <-events:
			if ev.Kind != kind {
				t.Fatalf("event %+v, want %s", ev, kind)
			}
			return ev
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s event", kind)
			return RoleEvent{}
		}
	}
	next("change")
	promoted := next("promote")
	if epoch, ok := n.HoldsRole("web"); !ok || epoch != promoted.Epoch {
		t.Errorf("HoldsRole(web) = %d, %v, want %d, true", epoch, ok, promoted.Epoch)
	}
	info := n.Roles()
	if len(info) != 2 || info[0].Name != LeaderRole || info[1].Name != "web" || !info[1].Held || info[1].Holder != "solo" {
		t.Errorf("Roles() = %+v, want leader and web held by solo", info)
	}
	for _, tt := range []struct {
		name  string
		rcode int
	}{
		{"web.buoy.internal.", dns.RcodeSuccess},
		{"nothing.buoy.internal.", dns.RcodeNameError},
	} {
		m := new(dns.Msg)
		m.SetQuestion(tt.name, dns.TypeA)
		r, err := dns.Exchange(m, n.DNSAddr().(*net.UDPAddr).String())
		if err != nil || r.Rcode != tt.rcode || len(r.Answer) != 0 {
			t.Errorf("query %s A = %v, %v, want %s with no answer", tt.name, r, err, dns.RcodeToString[tt.rcode])
		}
	}
	if err := n.DeleteRole(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	next("demote")
	if _, ok := n.HoldsRole("web"); ok {
		t.Error("HoldsRole(web) after the role was deleted")
	}
	if err := n.DeleteRole(context.Background(), "web"); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("DeleteRole(deleted) = %v, want ErrUnknownRole", err)
	}
}
