package e2e

import (
	"strings"
	"testing"
)

// TestLeaveAndRemove: a node that leaves stops cleanly; a node removed by
// the others stops with an error and cannot come back with its old data
// dir; the last voter cannot be removed.
func TestLeaveAndRemove(t *testing.T) {
	c := newCluster(t)
	d1 := c.bootstrap("d1")
	tok := d1.createToken()
	d2 := c.join("d2", d1, tok.Token)
	d3 := c.join("d3", d1, tok.Token)
	d4 := c.join("d4", d1, tok.Token)
	c.waitHealthy(4, d1, d2, d3, d4)

	t.Log("buoy leave on d4")
	if _, _, err := d4.cli("leave"); err != nil {
		t.Fatal(err)
	}
	if code, out := d4.waitExit(); code != 0 {
		t.Errorf("d4 exited with code %d after buoy leave, want 0; output:\n%s", code, out)
	}
	c.waitView(view{current: names(d1, d2, d3), left: names(d4), voters: 3}, d1, d2, d3)

	t.Log("buoy remove d3, run on d2")
	if _, _, err := d2.cli("remove", "d3"); err != nil {
		t.Fatal(err)
	}
	code, out := d3.waitExit()
	if code == 0 {
		t.Errorf("d3 exited 0 after being removed, want non-zero; output:\n%s", out)
	}
	if msg := errorMessage(out); !strings.Contains(msg, "removed by the cluster") {
		t.Errorf("removed d3 said %q, want it to say it was removed by the cluster", msg)
	} else {
		t.Logf("removed d3: exit %d: %s", code, msg)
	}
	c.waitView(view{current: names(d1, d2), left: names(d3, d4), voters: 2}, d1, d2)

	t.Log("restart d3 with its old data dir and command line")
	d3.launch()
	code, out = d3.waitExit()
	msg := errorMessage(out)
	if code == 0 || !strings.Contains(msg, "left the cluster") || !strings.Contains(msg, "remove the data dir") {
		t.Errorf("restart of removed d3: exit %d, %q; want non-zero and a message that it left and to remove the data dir", code, msg)
	} else {
		t.Logf("restart of removed d3: exit %d: %s", code, msg)
	}

	t.Log("a member that is gone or unknown cannot be removed")
	for _, tt := range []struct{ name, want string }{
		{"d4", "has left the cluster"},
		{"nosuchnode", "no such member"},
	} {
		_, stderr, err := d1.cli("remove", tt.name)
		if msg := errorMessage(stderr); err == nil || !strings.Contains(msg, tt.want) {
			t.Errorf("buoy remove %s: err %v, %q; want a refusal containing %q", tt.name, err, msg, tt.want)
		} else {
			t.Logf("buoy remove %s: %s", tt.name, msg)
		}
	}
	leader := c.waitView(view{current: names(d1, d2), left: names(d3, d4), voters: 2}, d1, d2)

	// Leaving as the leader takes the other path: leadership is handed
	// over first. Here the last other member then rules alone.
	rest := others([]*node{d1, d2}, leader)[0]
	t.Logf("buoy leave on the leader %s", leader.name)
	if _, _, err := leader.cli("leave"); err != nil {
		t.Fatal(err)
	}
	if code, out := leader.waitExit(); code != 0 {
		t.Errorf("leader %s exited with code %d after buoy leave, want 0; output:\n%s", leader.name, code, out)
	}
	c.waitView(view{current: names(rest), left: names(leader, d3, d4), voters: 1}, rest)
	id := c.write(rest)
	if err := rest.hasToken(id); err != nil {
		t.Error(err)
	}
}

// TestLastVoter: the only voter of a cluster can be neither removed nor
// made to leave, and the refusal says why.
func TestLastVoter(t *testing.T) {
	c := newCluster(t)
	s1 := c.bootstrap("s1")
	for _, args := range [][]string{{"remove", "s1"}, {"leave"}} {
		_, stderr, err := s1.cli(args...)
		msg := errorMessage(stderr)
		if err == nil || !strings.Contains(msg, "last voter") {
			t.Errorf("buoy %s on a one-node cluster: err %v, %q; want a refusal naming the last voter", strings.Join(args, " "), err, msg)
		} else {
			t.Logf("buoy %s: %s", strings.Join(args, " "), msg)
		}
	}
	if !s1.running() {
		t.Fatalf("s1 stopped after refused remove/leave; output:\n%s", s1.output())
	}
	c.waitHealthy(1, s1)
}
