package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"buoy/internal/api"
)

const kvUsage = `buoy kv get KEY [--stale] [--json]      print a key's value
buoy kv get --prefix PREFIX [--stale] [--json]   list keys (as buoy kv list)
buoy kv put KEY [VALUE] [--cas N] [--ttl 30s] [--json]   VALUE from stdin if omitted
buoy kv del KEY [--cas N] [--json]      delete a key
buoy kv del --prefix PREFIX [--json]    delete every key under PREFIX
buoy kv list [PREFIX] [--stale] [--json]
buoy kv watch [PREFIX] [--index N] [--json]   print changes as they happen`

// kvMaxStdin bounds a value read from stdin; the agent refuses what is
// over its own limit (--kv-max-value) with a clear error.
const kvMaxStdin = 64 << 20

// runKV runs "buoy kv SUB ...". stdin supplies put's value when the
// command line has none.
func runKV(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: buoy kv get|put|del|list|watch:\n%s", errUsage, kvUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("buoy kv "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr, token := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var (
		stale, prefix *bool
		cas, index    *optIndex
		ttl           *time.Duration
	)
	switch sub {
	case "get", "list":
		stale = fs.Bool("stale", false, "answer from this node without asking the leader: fast, possibly behind, works without a quorum")
		if sub == "get" {
			prefix = fs.Bool("prefix", false, "list every key under KEY")
		}
	case "put":
		cas = newOptIndex(fs, "cas", "write only if the key's modify_index is N (0: only if it does not exist)")
		ttl = fs.Duration("ttl", 0, "delete the key after this long (e.g. 30s)")
	case "del":
		cas = newOptIndex(fs, "cas", "delete only if the key's modify_index is N")
		prefix = fs.Bool("prefix", false, "delete every key under KEY")
	case "watch":
		index = newOptIndex(fs, "index", "print the changes after this index (default: from now)")
	default:
		return fmt.Errorf("%w: unknown command \"kv %s\":\n%s", errUsage, sub, kvUsage)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	c := newClient(*addr, *token)
	arg := func(min, max int, what string) error {
		if len(pos) < min || len(pos) > max {
			return fmt.Errorf("%w: %s", errUsage, what)
		}
		return nil
	}
	switch {
	case sub == "list" || sub == "get" && *prefix:
		if err := arg(0, 1, "buoy kv list [PREFIX]"); err != nil {
			return err
		}
		p := ""
		if len(pos) == 1 {
			p = pos[0]
		}
		return kvList(ctx, c, p, *stale, *asJSON, stdout)
	case sub == "get":
		if err := arg(1, 1, "buoy kv get KEY"); err != nil {
			return err
		}
		return kvGet(ctx, c, pos[0], *stale, *asJSON, stdout)
	case sub == "put":
		if err := arg(1, 2, "buoy kv put KEY [VALUE] (the value is read from stdin when not given)"); err != nil {
			return err
		}
		var value []byte
		if len(pos) == 2 {
			value = []byte(pos[1])
		} else if value, err = io.ReadAll(io.LimitReader(stdin, kvMaxStdin)); err != nil {
			return fmt.Errorf("reading the value from stdin: %w", err)
		}
		q := url.Values{}
		cas.addTo(q, "cas")
		if *ttl < 0 {
			return fmt.Errorf("%w: --ttl must be positive", errUsage)
		} else if *ttl > 0 {
			q.Set("ttl", ttl.String())
		}
		var e api.KVEntry
		if err := c.kvCall(ctx, http.MethodPut, kvPath(pos[0], q), value, &e); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, e)
		}
		_, err := fmt.Fprintf(stdout, "OK, modify_index %d\n", e.ModifyIndex)
		return err
	case sub == "del":
		if err := arg(1, 1, "buoy kv del KEY, or buoy kv del --prefix PREFIX"); err != nil {
			return err
		}
		q := url.Values{}
		cas.addTo(q, "cas")
		if *prefix {
			q.Set("prefix", "")
		}
		var d api.KVDeleted
		if err := c.kvCall(ctx, http.MethodDelete, kvPath(pos[0], q), nil, &d); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, d)
		}
		_, err := fmt.Fprintf(stdout, "deleted %d\n", d.Deleted)
		return err
	case sub == "watch":
		if err := arg(0, 1, "buoy kv watch [PREFIX]"); err != nil {
			return err
		}
		p := ""
		if len(pos) == 1 {
			p = pos[0]
		}
		return kvWatch(ctx, c, p, index, *asJSON, stdout)
	}
	return nil
}

// optIndex is an index flag that may be absent, which differs from 0
// (--cas 0 means "only if absent").
type optIndex struct {
	n   uint64
	set bool
}

func newOptIndex(fs *flag.FlagSet, name, usage string) *optIndex {
	o := &optIndex{}
	fs.Func(name, usage, func(s string) error {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want an index, a number from 0")
		}
		o.n, o.set = n, true
		return nil
	})
	return o
}

func (o *optIndex) addTo(q url.Values, name string) {
	if o != nil && o.set {
		q.Set(name, strconv.FormatUint(o.n, 10))
	}
}

// parseInterspersed parses flags wherever they are among the arguments
// ("buoy kv put k v --ttl 1m"), as users type them, and returns the
// positional arguments. Everything after "--" is positional, for values
// that start with a dash.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// kvPath is the API path of key with query q; slashes in the key stay
// path separators, anything else that needs it is escaped.
func kvPath(key string, q url.Values) string {
	p := "/v1/kv/" + (&url.URL{Path: key}).EscapedPath()
	sep := "?"
	for _, name := range slices.Sorted(maps.Keys(q)) {
		p += sep + url.QueryEscape(name)
		// Flags such as "prefix" go bare, as a user would type them.
		if v := q.Get(name); v != "" {
			p += "=" + url.QueryEscape(v)
		}
		sep = "&"
	}
	return p
}

// kvCall sends body (raw, for a put's value) and decodes a JSON answer
// into out, or returns the agent's error.
func (c *client) kvCall(ctx context.Context, method, path string, body []byte, out any) error {
	data, _, err := c.kvDo(ctx, c.http, method, path, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding answer from %s: %w", c.base, err)
	}
	return nil
}

// kvDo sends one request and returns the body of a success.
func (c *client) kvDo(ctx context.Context, hc *http.Client, method, path string, body []byte) ([]byte, http.Header, error) {
	resp, err := c.kvOpen(ctx, hc, method, path, body)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading answer from %s: %w", c.base, err)
	}
	return data, resp.Header, nil
}

// kvOpen sends one request and returns the answer of a success with its
// body unread, or the agent's error.
func (c *client) kvOpen(ctx context.Context, hc *http.Client, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the agent at %s (is \"buoy agent\" running? set --http-addr or BUOY_HTTP_ADDR): %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return nil, &apiError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

func kvGet(ctx context.Context, c *client, key string, stale, asJSON bool, stdout io.Writer) error {
	q := url.Values{}
	if stale {
		q.Set("stale", "")
	}
	if asJSON {
		var r api.KVRead
		if err := c.kvCall(ctx, http.MethodGet, kvPath(key, q), nil, &r); err != nil {
			return err
		}
		return printJSON(stdout, r)
	}
	q.Set("raw", "")
	value, _, err := c.kvDo(ctx, c.http, http.MethodGet, kvPath(key, q), nil)
	if err != nil {
		return err
	}
	// A line end after the value, as shells expect, unless it has one.
	if len(value) == 0 || value[len(value)-1] != '\n' {
		value = append(value, '\n')
	}
	_, err = stdout.Write(value)
	return err
}

func kvList(ctx context.Context, c *client, prefix string, stale, asJSON bool, stdout io.Writer) error {
	q := url.Values{"prefix": {""}}
	if stale {
		q.Set("stale", "")
	}
	var l api.KVList
	if err := c.kvCall(ctx, http.MethodGet, kvPath(prefix, q), nil, &l); err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, l)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tMODIFY_INDEX\tVALUE")
	for _, e := range l.Entries {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", printable(e.Key, 0), e.ModifyIndex, entryText(e))
	}
	return tw.Flush()
}

// entryText is an entry's value for a table: text shortened, binary
// described.
func entryText(e api.KVEntry) string {
	if e.Value != nil {
		return printable(*e.Value, 60)
	}
	if v, err := e.Bytes(); err == nil {
		return fmt.Sprintf("(%d bytes of binary; --json shows them in base64)", len(v))
	}
	return "-"
}

// printable shows s on one line of a table: quoted if it holds control
// characters (a newline would break the table), cut to max runes if max >
// 0.
func printable(s string, max int) string {
	cut := false
	if max > 0 && utf8.RuneCountInString(s) > max {
		s, cut = string([]rune(s)[:max]), true
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) }) {
		s = strconv.Quote(s)
	}
	if cut {
		s += "…"
	}
	return s
}

// kvWatch prints the changes under prefix as the agent streams them,
// until ctx ends (Ctrl-C) or the stream does.
func kvWatch(ctx context.Context, c *client, prefix string, index *optIndex, asJSON bool, stdout io.Writer) error {
	q := url.Values{"watch": {""}}
	index.addTo(q, "index")
	// No overall timeout: a watch lasts as long as the user wants.
	hc := &http.Client{Transport: c.http.Transport}
	resp, err := c.kvOpen(ctx, hc, http.MethodGet, kvPath(prefix, q), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readWatch(resp.Body, prefix, asJSON, stdout)
	if ctx.Err() != nil {
		return nil // the user stopped it
	}
	return err
}

// readWatch prints the events of a watch stream until it ends or carries
// an error; it always returns an error, as a watch is not meant to end.
func readWatch(r io.Reader, prefix string, asJSON bool, stdout io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // an event carries a whole value, base64 or escaped
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := printWatchEvent(stdout, event, []byte(strings.TrimPrefix(line, "data: ")), prefix, asJSON); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch: reading the stream: %w", err)
	}
	return errors.New("watch: the agent ended the stream (is it stopping?); resume with --index set to the last index printed")
}

func printWatchEvent(w io.Writer, event string, data []byte, prefix string, asJSON bool) error {
	switch event {
	case "compacted":
		var c api.KVCompacted
		_ = json.Unmarshal(data, &c)
		return fmt.Errorf("watch fell behind: %s; re-read with \"buoy kv list %s\" and watch again with --index %d", c.Error, prefix, c.Index)
	case "error":
		var e api.Error
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("watch: %s", e.Error)
	}
	if asJSON {
		_, err := fmt.Fprintf(w, "%s\n", data)
		return err
	}
	var ev api.KVEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return fmt.Errorf("watch: decoding event %q: %w", data, err)
	}
	line := fmt.Sprintf("%d %s %s", ev.Index, printable(ev.Type, 0), printable(ev.Key, 0))
	if ev.Type == "put" {
		line += " = " + entryText(ev.KVEntry)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
