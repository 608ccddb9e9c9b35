package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"buoy"
	"buoy/internal/api"
)

const rolesUsage = `buoy roles [--json]                 list roles: holder, epoch, candidates
buoy roles show ROLE [--json]       one role with its definition and checks
buoy roles move ROLE NODE           planned switchover to NODE
buoy roles history [--role ROLE] [--limit N] [--json]
                                    this node's log of transitions and hook runs
buoy roles put ROLE FILE            define or replace ROLE from YAML (- for stdin)
buoy roles delete ROLE              remove ROLE`

// runRoles runs "buoy roles ...".
func runRoles(ctx context.Context, args []string, stdout, stderr io.Writer, stdin io.Reader) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("buoy roles "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, rolesUsage) }
	addr, token := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	role := fs.String("role", "", "history: only this role")
	limit := fs.Int("limit", 50, "history: the last N entries (0: all)")
	// Flags may come before, between or after the arguments.
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	arg := func(i int) string { return pos[i] }
	need := func(n int, what string) error {
		if len(pos) != n {
			return fmt.Errorf("%w: %s", errUsage, what)
		}
		return nil
	}
	c := newClient(*addr, *token)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	switch sub {
	case "list":
		if err := need(0, "buoy roles [--json]"); err != nil {
			return err
		}
		var rs []buoy.RoleInfo
		if err := c.do(ctx, "GET", "/v1/roles", nil, &rs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, rs)
		}
		return printRoles(stdout, rs)
	case "show":
		if err := need(1, "buoy roles show ROLE"); err != nil {
			return err
		}
		var out struct {
			buoy.RoleInfo
			Definition api.RoleSpec `json:"definition"`
		}
		if err := c.do(ctx, "GET", "/v1/roles/"+url.PathEscape(arg(0)), nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, out)
		}
		if err := printRoles(stdout, []buoy.RoleInfo{out.RoleInfo}); err != nil {
			return err
		}
		if out.Local != "" {
			fmt.Fprintf(stdout, "\nthis node: %s\n", out.Local)
		}
		for _, ch := range out.Checks {
			state := "passing"
			if !ch.Healthy {
				state = "failing"
			}
			fmt.Fprintf(stdout, "  check %s: %s after %d probes%s\n", ch.Name, state, ch.Probes, orEmpty(": ", ch.Error))
		}
		if out.Implicit {
			return nil
		}
		b, err := yaml.Marshal(map[string]api.RoleSpec{out.Name: out.Definition})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\ndefinition:\n%s", indent(string(b), "  "))
		return nil
	case "move":
		if err := need(2, "buoy roles move ROLE NODE"); err != nil {
			return err
		}
		if err := c.do(ctx, "POST", "/v1/roles/"+url.PathEscape(arg(0))+"/move", api.RoleMoveRequest{Node: arg(1)}, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s moved to %s\n", arg(0), arg(1))
		return nil
	case "history":
		if err := need(0, "buoy roles history [--role ROLE] [--limit N]"); err != nil {
			return err
		}
		q := url.Values{}
		if *role != "" {
			q.Set("role", *role)
		}
		q.Set("limit", fmt.Sprint(*limit))
		var es []buoy.RoleHistoryEntry
		if err := c.do(ctx, "GET", "/v1/roles/history?"+q.Encode(), nil, &es); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, es)
		}
		return printHistory(stdout, es)
	case "put":
		if err := need(2, "buoy roles put ROLE FILE"); err != nil {
			return err
		}
		spec, err := readRoleSpec(arg(1), stdin)
		if err != nil {
			return err
		}
		if err := c.do(ctx, "PUT", "/v1/roles/"+url.PathEscape(arg(0)), spec, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "defined %s\n", arg(0))
		return nil
	case "delete":
		if err := need(1, "buoy roles delete ROLE"); err != nil {
			return err
		}
		return c.do(ctx, "DELETE", "/v1/roles/"+url.PathEscape(arg(0)), nil, nil)
	}
	fmt.Fprintln(stderr, rolesUsage)
	return fmt.Errorf("%w: unknown command \"roles %s\"", errUsage, sub)
}

// readRoleSpec reads one role's definition (the mapping under roles: NAME:
// in the config file) from a YAML or JSON file, strictly.
func readRoleSpec(path string, stdin io.Reader) (api.RoleSpec, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return api.RoleSpec{}, fmt.Errorf("role definition: %w", err)
	}
	var spec api.RoleSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil && !errors.Is(err, io.EOF) {
		return api.RoleSpec{}, fmt.Errorf("role definition %s: %s", path, unknownKey.ReplaceAllString(err.Error(), "unknown key $1"))
	}
	return spec, nil
}

func printRoles(w io.Writer, rs []buoy.RoleInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tHOLDER\tEPOCH\tSINCE\tCANDIDATES")
	for _, r := range rs {
		holder := orDash(r.Holder)
		if r.Holder != "" && r.HolderAddr != "" {
			holder += " (" + r.HolderAddr + ")"
		}
		if r.Held {
			holder += " *"
		}
		since := "-"
		if !r.Since.IsZero() {
			since = r.Since.Local().Format(time.DateTime)
		}
		var cs []string
		for _, c := range r.Candidates {
			s := fmt.Sprintf("%s:%d", c.Node, c.Priority)
			switch {
			case !c.Member:
				s += "(not a member)"
			case c.Alive != "yes":
				s += "(" + c.Alive + ")"
			case c.Health != "passing":
				s += "(" + c.Health + ")"
			}
			cs = append(cs, s)
		}
		if r.Implicit {
			cs = []string{"follows the Raft leader"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Name, holder, r.Epoch, since, strings.Join(cs, " "))
	}
	return tw.Flush()
}

func printHistory(w io.Writer, es []buoy.RoleHistoryEntry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tROLE\tEVENT\tEPOCH\tDETAIL")
	for _, e := range es {
		var detail string
		switch e.Kind {
		case "hook":
			code := "-"
			if e.ExitCode != nil {
				code = fmt.Sprint(*e.ExitCode)
			}
			detail = fmt.Sprintf("hook %s exit %s in %v%s", e.Path, code, e.Duration.Round(time.Millisecond), orEmpty(": ", e.Error))
		default:
			detail = fmt.Sprintf("holder %s, previous %s (%s)", orDash(e.Holder), orDash(e.Previous), e.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Role, e.Event, e.Epoch, detail)
	}
	return tw.Flush()
}

func orEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func indent(s, by string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "")
}
