package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJoinRefusals starts agents with bad input. Each must exit non-zero
// with a message that names the problem, and leave the cluster as it was.
func TestJoinRefusals(t *testing.T) {
	c := newCluster(t)
	a1 := c.bootstrap("a1")
	good := a1.createToken("--description", "good")
	a2 := c.join("a2", a1, good.Token)
	members := []*node{a1, a2}
	c.waitHealthy(2, members...)

	// A second, unrelated cluster for the foreign token.
	b1 := c.bootstrap("b1")
	foreign := b1.createToken()

	wrongSecret := alterSecret(t, good.Token)

	expired := a1.createToken("--ttl", "1s")
	// Wait for the cluster's own clock to call it expired rather than
	// sleeping a fixed time.
	eventually(t, "token with --ttl 1s to expire", func() error {
		ts, err := a1.tokens()
		if err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.ID == expired.ID && tk.Expired {
				return nil
			}
		}
		return fmt.Errorf("token %s not expired yet", expired.ID)
	})

	revoked := a1.createToken()
	if _, _, err := a1.cli("token", "revoke", revoked.ID); err != nil {
		t.Fatal(err)
	}

	once := a1.createToken("--uses", "1")
	// Its one use: this join must work, the next one with it must not.
	u1 := c.join("u1", a1, once.Token)
	members = append(members, u1)
	c.waitHealthy(3, members...)

	unknownKey := filepath.Join(c.dir, "unknown-key.yaml")
	if err := os.WriteFile(unknownKey, []byte("log_level: info\nbootstrapp: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// We run as root in CI, where permission bits do not stop writes, so a
	// read-only directory proves nothing. A data dir below a regular file
	// cannot be created by anyone.
	regularFile := filepath.Join(c.dir, "a-regular-file")
	if err := os.WriteFile(regularFile, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	join := func(tok string) []string { return []string{"--join", a1.peerAddr, "--token", tok} }
	tests := []struct {
		name    string
		node    string
		args    []string
		dataDir string   // if set, replaces the fresh data dir
		want    []string // in the output, all of them
		after   func(t *testing.T)
	}{
		{name: "wrong secret", node: "w1", args: join(wrongSecret), want: []string{"join failed", "secret does not match"}},
		{name: "expired token", node: "w2", args: join(expired.Token), want: []string{"join failed", "expired"}},
		{name: "revoked token", node: "w3", args: join(revoked.Token), want: []string{"join failed", "revoked"}},
		{name: "token used up", node: "w4", args: join(once.Token), want: []string{"join failed", "no uses left"}},
		{name: "token of another cluster", node: "w5", args: join(foreign.Token), want: []string{"join failed", "does not match the join token", "another cluster"},
			after: func(t *testing.T) {
				// The joiner must give up before sending its request: a1
				// would log a refused request with the joiner's name.
				if log := tail(a1.logPath, 1000); strings.Contains(log, "name=w5") {
					t.Errorf("a1's log mentions w5: the joiner sent its request to a cluster whose CA does not match its token")
				}
			}},
		{name: "name of a live member", node: "a2", args: join(good.Token), want: []string{"join failed", "already a current member", "a2"}},
		{name: "config file with an unknown key", node: "w6", args: append([]string{"--config", unknownKey}, join(good.Token)...), want: []string{"config file", "bootstrapp"}},
		{name: "data dir below a regular file", node: "w7", args: join(good.Token), dataDir: filepath.Join(regularFile, "data"), want: []string{"data dir", "not a directory"}},
		{name: "neither bootstrap nor join", node: "w8", want: []string{"holds no cluster", "--bootstrap", "--join"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer c.use(t)()
			before := memberNames(t, a1)
			n := c.node(tt.node, tt.args...)
			if tt.dataDir != "" {
				n.dataDir = tt.dataDir
			}
			code, out := c.refuse(n)
			if code == 0 {
				t.Fatalf("agent %s exited 0, want a refusal; output:\n%s", tt.name, out)
			}
			msg := errorMessage(out)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("agent (%s) said %q, want it to contain %q", tt.name, msg, w)
				}
			}
			t.Logf("exit %d: %s", code, msg)
			if after := memberNames(t, a1); after != before {
				t.Errorf("members after a refused join = %s, want %s as before", after, before)
			}
			if tt.after != nil {
				tt.after(t)
			}
		})
	}

	c.waitHealthy(3, members...)
}

// refuse launches n and waits for it to exit; a launch that loses the port
// race is retried once with new ports.
func (c *cluster) refuse(n *node) (int, string) {
	c.t.Helper()
	n.launch()
	code, out := n.waitExit()
	if code != 0 && n.portTaken() {
		n.repickPorts()
		n.launch()
		code, out = n.waitExit()
	}
	return code, out
}

// alterSecret changes the first character of a token's secret. The first
// character carries only secret bits, so the result is still a well-formed
// token, just not one the cluster issued.
func alterSecret(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 4 || len(parts[2]) == 0 {
		t.Fatalf("token %q does not look like buoy1.ID.SECRET.CAHASH", token)
	}
	c := byte('a')
	if parts[2][0] == 'a' {
		c = 'b'
	}
	parts[2] = string(c) + parts[2][1:]
	return strings.Join(parts, ".")
}

// memberNames returns the current members as n lists them, for comparing
// before and after.
func memberNames(t *testing.T, n *node) string {
	t.Helper()
	ms, err := n.members()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Name+"="+m.State)
	}
	return strings.Join(out, ",")
}

// errorMessage returns what a failed buoy command printed as its error:
// from the last line that starts with "buoy: " to the end (the message may
// span lines), or the whole output if there is no such line.
func errorMessage(out string) string {
	i := strings.LastIndex("\n"+out, "\nbuoy: ")
	if i < 0 {
		return strings.TrimSpace(out)
	}
	return strings.TrimSpace(out[i:])
}
