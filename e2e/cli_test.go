package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// runCLI runs "buoy args..." and returns its stdout and stderr; err is nil
// only if it exited 0.
func runCLI(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, buoyBin, args...)
	cmd.Env = env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("buoy %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), err
}

// cli runs a client command against this node's API: args are the command
// words ("token create"), then flags and arguments; --http-addr is put
// right after the command words.
func (n *node) cli(args ...string) (stdout, stderr string, err error) {
	words := 1
	if len(args) > 1 && args[0] == "token" {
		words = 2
	}
	full := slices.Concat(args[:words], []string{"--http-addr", n.httpAddr}, args[words:])
	return runCLI(full...)
}

// cliJSON runs a client command with --json and decodes its output.
func (n *node) cliJSON(v any, args ...string) error {
	out, _, err := n.cli(append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("buoy %s --json: decoding %q: %w", strings.Join(args, " "), out, err)
	}
	return nil
}

// The JSON the CLI prints, declared here rather than imported so that the
// test checks the field names a user's scripts depend on.
type (
	member struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Voter   bool   `json:"voter"`
		Leader  bool   `json:"leader"`
		State   string `json:"state"`
	}
	status struct {
		Name        string `json:"name"`
		Leader      string `json:"leader"`
		RaftState   string `json:"raft_state"`
		Term        uint64 `json:"term"`
		CommitIndex uint64 `json:"commit_index"`
		Members     int    `json:"members"`
		Voters      int    `json:"voters"`
		CAHash      string `json:"ca_hash"`
	}
	tokenInfo struct {
		ID      string `json:"id"`
		MaxUses int    `json:"max_uses"`
		Uses    int    `json:"uses"`
		Revoked bool   `json:"revoked"`
		Expired bool   `json:"expired"`
	}
	newToken struct {
		Token string `json:"token"`
		ID    string `json:"id"`
	}
)

func (n *node) status() (status, error) {
	var st status
	err := n.cliJSON(&st, "status")
	return st, err
}

func (n *node) members() ([]member, error) {
	var ms []member
	err := n.cliJSON(&ms, "members")
	return ms, err
}

func (n *node) tokens() ([]tokenInfo, error) {
	var ts []tokenInfo
	err := n.cliJSON(&ts, "token", "list")
	return ts, err
}

// createToken runs "buoy token create" with flags and fails the test if it
// does not succeed.
func (n *node) createToken(flags ...string) newToken {
	n.c.t.Helper()
	var tok newToken
	if err := n.cliJSON(&tok, append([]string{"token", "create"}, flags...)...); err != nil {
		n.c.t.Fatal(err)
	}
	if tok.Token == "" || tok.ID == "" {
		n.c.t.Fatalf("token create on %s = %+v, want a token and an ID", n.name, tok)
	}
	return tok
}

// hasToken reports whether the node's token list holds id.
func (n *node) hasToken(id string) error {
	ts, err := n.tokens()
	if err != nil {
		return err
	}
	for _, tk := range ts {
		if tk.ID == id {
			return nil
		}
	}
	return fmt.Errorf("token list on %s has no token %s", n.name, id)
}
