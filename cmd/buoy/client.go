package main

import (
	"bytes"
	"context"
	"encoding/json"

	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"

	"buoy"
	"buoy/internal/zonefile"
)

// client talks to an agent's HTTP API.
type client struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags adds the flags every client command shares.
func clientFlags(fs *flag.FlagSet) (addr, token *string) {
	defAddr := os.Getenv("BUOY_HTTP_ADDR")
	if defAddr == "" {
		defAddr = buoy.DefaultHTTPAddr
	}
	addr = fs.String("http-addr", defAddr, "agent HTTP API address (BUOY_HTTP_ADDR)")
	token = fs.String("http-token", os.Getenv("BUOY_HTTP_TOKEN"), "agent HTTP API token (BUOY_HTTP_TOKEN)")
	return addr, token
}

func newClient(addr, token string) *client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}
}

// apiError is an error answer from the agent.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent at %s (is \"buoy agent\" running? set --http-addr or BUOY_HTTP_ADDR): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading answer from %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &apiError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding answer from %s: %w", c.base, err)
		}
	}
	return nil
}

func runClient(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if cmd == "token" || cmd == "zone" {
		if len(args) == 0 {
			return fmt.Errorf("%w: buoy token create|list|revoke, buoy zone list|show|load|drop|reload", errUsage)
		}
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("buoy "+strings.TrimSpace(cmd+" "+sub), flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr, token := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var ttl, desc *string
	var uses *int
	if sub == "create" {
		ttl = fs.String("ttl", buoy.DefaultTokenTTL.String(), "how long the token can be used")
		uses = fs.Int("uses", 0, "how many joins the token allows (0: unlimited until it expires)")
		desc = fs.String("description", "", "a note shown by \"buoy token list\"")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := newClient(*addr, *token)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	need := func(n int, what string) error {
		if fs.NArg() != n {
			return fmt.Errorf("%w: %s", errUsage, what)
		}
		return nil
	}
	switch cmd + " " + sub {
	case "members ":
		var ms []buoy.Member
		if err := c.do(ctx, "GET", "/v1/members", nil, &ms); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, ms)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tROLE")
		for _, m := range ms {
			role := "non-voter"
			switch {
			case m.Leader:
				role = "leader"
			case m.Voter:
				role = "voter"
			}
			if m.State == "left" {
				role = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, orDash(m.Address), m.State, role)
		}
		return tw.Flush()
	case "status ":
		var st buoy.Status
		if err := c.do(ctx, "GET", "/v1/status", nil, &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, st)
		}
		fmt.Fprintf(stdout, "name:          %s\nleader:        %s\nraft state:    %s\nterm:          %d\ncommit index:  %d\napplied index: %d\nmembers:       %d (%d voters)\nself address:  %s\nNAT:           %s\nCA:            %s\n",
			st.Name, orDash(st.Leader), st.RaftState, st.Term, st.CommitIndex, st.AppliedIdx, st.Members, st.Voters, orDash(st.SelfAddress), st.NAT, st.CAHash)
		for _, o := range st.Observations {
			fmt.Fprintf(stdout, "  seen by %-10s as %s\n", o.Observer, o.Seen)
		}
		if !st.CertNotAfter.IsZero() {
			fmt.Fprintf(stdout, "certificate:   expires %s, renews itself after %s (buoy cert)\n",
				st.CertNotAfter.Local().Format(time.DateOnly), st.CertRenewAfter.Local().Format(time.DateOnly))
		}
		return nil
	case "token create":
		var t buoy.NewToken
		req := buoy.TokenRequest{TTL: *ttl, MaxUses: *uses, Description: *desc}
		if err := c.do(ctx, "POST", "/v1/tokens", req, &t); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, t)
		}
		fmt.Fprintln(stdout, t.Token)
		fmt.Fprintf(stderr, "token %s expires %s; join with: buoy agent --name NAME --data-dir DIR --join HOST:PORT --token <token>\n",
			t.ID, t.Expires.Local().Format(time.RFC3339))
		return nil
	case "token list":
		var ts []buoy.TokenInfo
		if err := c.do(ctx, "GET", "/v1/tokens", nil, &ts); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, ts)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEXPIRES\tUSES\tSTATE\tDESCRIPTION")
		for _, t := range ts {
			state := "valid"
			switch {
			case t.Revoked:
				state = "revoked"
			case t.Expired:
				state = "expired"
			case t.MaxUses > 0 && t.Uses >= t.MaxUses:
				state = "used up"
			}
			u := fmt.Sprint(t.Uses)
			if t.MaxUses > 0 {
				u += "/" + fmt.Sprint(t.MaxUses)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Expires.Local().Format(time.RFC3339), u, state, t.Description)
		}
		return tw.Flush()
	case "token revoke":
		if err := need(1, "buoy token revoke ID"); err != nil {
			return err
		}
		return c.do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(fs.Arg(0)), nil, nil)
	case "zone list":
		var zs []buoy.ZoneInfo
		if err := c.do(ctx, "GET", "/v1/zones", nil, &zs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, zs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ZONE\tSERIAL\tRECORDS")
		for _, z := range zs {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", z.Origin, z.Serial, z.Records)
		}
		return tw.Flush()
	case "zone show":
		if err := need(1, "buoy zone show ZONE"); err != nil {
			return err
		}
		var txt string
		if err := c.doText(ctx, "/v1/zones/"+url.PathEscape(dns.CanonicalName(fs.Arg(0))), &txt); err != nil {
			return err
		}
		_, err := io.WriteString(stdout, txt)
		return err
	case "zone load":
		if err := need(1, "buoy zone load FILE"); err != nil {
			return err
		}
		// The file is read here, so $INCLUDE resolves on this machine.
		rrs, err := zonefile.Load(fs.Arg(0), "", 0)
		if err != nil {
			return err
		}
		req := buoy.ZonePut{}
		for _, rr := range rrs {
			req.Records = append(req.Records, rr.String())
		}
		var out map[string]string
		if err := c.do(ctx, "POST", "/v1/zones", req, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "loaded %s (%d records)\n", out["loaded"], len(rrs))
		return nil
	case "zone drop":
		if err := need(1, "buoy zone drop ZONE"); err != nil {
			return err
		}
		return c.do(ctx, "DELETE", "/v1/zones/"+url.PathEscape(dns.CanonicalName(fs.Arg(0))), nil, nil)
	case "zone reload":
		return c.do(ctx, "POST", "/v1/zones/reload", nil, nil)
	case "leave ":
		return c.do(ctx, "POST", "/v1/leave", nil, nil)
	case "remove ":
		if err := need(1, "buoy remove NAME"); err != nil {
			return err
		}
		return c.do(ctx, "DELETE", "/v1/members/"+url.PathEscape(fs.Arg(0)), nil, nil)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, strings.TrimSpace(cmd+" "+sub))
}

// doText GETs path and returns the body as text.
func (c *client) doText(ctx context.Context, path string, out *string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &apiError{Status: resp.StatusCode, Message: e.Error}
	}
	*out = string(data)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
