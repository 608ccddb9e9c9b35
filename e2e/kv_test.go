package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The key-value store as its users meet it: curl against the HTTP API, nc
// against the line protocol and the buoy kv commands, on a cluster of three
// agent processes, ending with a node cut off from its quorum.

// kvTool returns the path of a client program the tests drive. Missing, it
// skips the calling test, saying what to install; under CI=true, where
// .ci/run installs it, it fails the test instead.
func kvTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not installed (Debian package %s; .ci/run installs it)", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipping this test")
	return ""
}

// toolTimeout bounds one curl or nc run that is expected to finish.
const toolTimeout = 30 * time.Second

// httpAnswer is an HTTP answer as curl printed it.
type httpAnswer struct {
	code   int
	header textproto.MIMEHeader
	body   string
}

// kvNode is an agent with a line protocol address fixed by the test.
type kvNode struct {
	*node
	textAddr string
}

// kvEnv is the cluster and the client programs of the key-value tests.
type kvEnv struct {
	t              *testing.T
	curlBin, ncBin string
}

// curl runs "curl -sS -i args..." with stdin and parses what it printed.
// Expect is turned off, so that a refused large body is answered at once.
func (e *kvEnv) curl(stdin string, args ...string) httpAnswer {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.curlBin, append([]string{"-sS", "-i", "-H", "Expect:"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("curl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	a, err := parseCurl(out)
	if err != nil {
		e.t.Fatalf("curl %s: %v in %q", strings.Join(args, " "), err, out)
	}
	return a
}

// parseCurl splits curl -i output into status, headers and body.
func parseCurl(out []byte) (httpAnswer, error) {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(out)))
	status, err := r.ReadLine()
	if err != nil {
		return httpAnswer{}, err
	}
	f := strings.Fields(status)
	if len(f) < 2 {
		return httpAnswer{}, fmt.Errorf("status line %q", status)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return httpAnswer{}, fmt.Errorf("status line %q", status)
	}
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return httpAnswer{}, err
	}
	body, err := io.ReadAll(r.R)
	return httpAnswer{code: code, header: h, body: string(body)}, err
}

// url is the address of path on n's HTTP API.
func (n *kvNode) url(path string) string { return "http://" + n.httpAddr + path }

// want fails the test unless a has code and its body contains every
// string of contains.
func (e *kvEnv) want(what string, a httpAnswer, code int, contains ...string) {
	e.t.Helper()
	ok := a.code == code
	for _, c := range contains {
		ok = ok && strings.Contains(a.body, c)
	}
	if !ok {
		e.t.Fatalf("%s = %d %s, want %d containing %q", what, a.code, a.body, code, contains)
	}
}

// nc sends input to the line protocol with "nc -N", which passes the end
// of input on, so the server answers every line, closes, and nc exits.
func (e *kvEnv) nc(n *kvNode, input string) string {
	e.t.Helper()
	host, port, _ := net.SplitHostPort(n.textAddr)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	// As the issue writes it: printf '...' | nc -N 127.0.0.1 PORT.
	cmd := exec.CommandContext(ctx, "sh", "-c", `printf "$1" | "$2" -N "$3" "$4"`, "sh", input, e.ncBin, host, port)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("printf %q | nc -N %s %s: %v: %s", input, host, port, err, out)
	}
	return string(out)
}

// kvCLI runs "buoy kv SUB --http-addr ... args..." against n.
func (n *kvNode) kvCLI(sub string, args ...string) (string, string, error) {
	return runCLI(append([]string{"kv", sub, "--http-addr", n.httpAddr}, args...)...)
}

// startKVCluster starts three agents, each with its line protocol on a
// port of its own.
func startKVCluster(t *testing.T) (*cluster, []*kvNode) {
	t.Helper()
	c := newCluster(t)
	start := func(name string, extra ...string) *kvNode {
		addr := freeAddr(t)
		n := c.start(name, append([]string{"--kv-text-addr", addr}, extra...)...)
		return &kvNode{node: n, textAddr: addr}
	}
	n1 := start("n1", "--bootstrap")
	c.waitHealthy(1, n1.node)
	tok := n1.createToken("--description", "kv e2e")
	n2 := start("n2", "--join", n1.peerAddr, "--token", tok.Token)
	n3 := start("n3", "--join", n1.peerAddr, "--token", tok.Token)
	c.waitHealthy(3, n1.node, n2.node, n3.node)
	return c, []*kvNode{n1, n2, n3}
}

func TestKV(t *testing.T) {
	e := &kvEnv{t: t, curlBin: kvTool(t, "curl", "curl"), ncBin: kvTool(t, "nc", "netcat-openbsd")}
	c, nodes := startKVCluster(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	step := func(name string, f func()) {
		t.Run(name, func(t *testing.T) {
			defer c.use(t)()
			parent := e.t
			e.t = t
			defer func() { e.t = parent }()
			f()
		})
	}
	var dbIndex uint64 // app/db's modify index after the CAS step

	step("curl put and get", func() {
		a := e.curl("postgres://db1", "-X", "PUT", "--data-binary", "@-", n2.url("/v1/kv/app/db"))
		e.want("PUT app/db", a, 200, `"key": "app/db"`)
		var put struct {
			ModifyIndex uint64 `json:"modify_index"`
		}
		json.Unmarshal([]byte(a.body), &put)
		// A linearizable read on another node sees the write at once.
		a = e.curl("", n3.url("/v1/kv/app/db"))
		e.want("GET app/db on n3", a, 200, `"value": "postgres://db1"`, fmt.Sprintf(`"modify_index": %d`, put.ModifyIndex), `"stale": false`)
		if idx, err := strconv.ParseUint(a.header.Get("X-Buoy-Index"), 10, 64); err != nil || idx < put.ModifyIndex {
			t.Errorf("X-Buoy-Index = %q, want an index from %d", a.header.Get("X-Buoy-Index"), put.ModifyIndex)
		}
		a = e.curl("", n1.url("/v1/kv/app/db?raw"))
		e.want("GET app/db?raw", a, 200)
		if a.body != "postgres://db1" {
			t.Errorf("GET ?raw body = %q, want the bare value", a.body)
		}
		e.want("GET a missing key", e.curl("", n1.url("/v1/kv/app/none")), 404, "kv_not_found")
	})

	step("curl compare-and-set", func() {
		var cur struct {
			ModifyIndex uint64 `json:"modify_index"`
		}
		json.Unmarshal([]byte(e.curl("", n1.url("/v1/kv/app/db")).body), &cur)
		stale := cur.ModifyIndex - 1
		a := e.curl("db2", "-X", "PUT", "--data-binary", "@-", n3.url(fmt.Sprintf("/v1/kv/app/db?cas=%d", stale)))
		e.want("PUT with a stale cas index", a, 409, "kv_check_failed", fmt.Sprintf(`"modify_index":%d`, cur.ModifyIndex))
		e.want("PUT create-only on an existing key", e.curl("db2", "-X", "PUT", "--data-binary", "@-", n3.url("/v1/kv/app/db?cas=0")), 409, "kv_check_failed")
		a = e.curl("postgres://db2", "-X", "PUT", "--data-binary", "@-", n3.url(fmt.Sprintf("/v1/kv/app/db?cas=%d", cur.ModifyIndex)))
		e.want("PUT with the current cas index", a, 200)
		var put struct {
			ModifyIndex uint64 `json:"modify_index"`
		}
		json.Unmarshal([]byte(a.body), &put)
		dbIndex = put.ModifyIndex
		e.want("DELETE with a stale cas index", e.curl("", "-X", "DELETE", n2.url(fmt.Sprintf("/v1/kv/app/db?cas=%d", cur.ModifyIndex))), 409,
			fmt.Sprintf(`"modify_index":%d`, dbIndex))
	})

	step("curl ttl", func() {
		e.want("PUT with ttl", e.curl("soon gone", "-X", "PUT", "--data-binary", "@-", n1.url("/v1/kv/app/session?ttl=1s")), 200, `"expires"`)
		for _, n := range nodes {
			eventually(t, "app/session expiring on "+n.name, func() error {
				if a := e.curl("", n.url("/v1/kv/app/session?stale")); a.code != 404 {
					return fmt.Errorf("GET app/session?stale on %s = %d %s", n.name, a.code, a.body)
				}
				return nil
			})
		}
	})

	step("curl prefix list and delete", func() {
		for _, k := range []string{"tmp/a", "tmp/b", "tmp/c/d"} {
			e.want("PUT "+k, e.curl(k, "-X", "PUT", "--data-binary", "@-", n2.url("/v1/kv/"+k)), 200)
		}
		e.want("GET tmp/?prefix", e.curl("", n1.url("/v1/kv/tmp/?prefix")), 200, `"key": "tmp/a"`, `"key": "tmp/b"`, `"key": "tmp/c/d"`)
		e.want("DELETE tmp/?prefix", e.curl("", "-X", "DELETE", n3.url("/v1/kv/tmp/?prefix")), 200, `"deleted": 3`)
		e.want("GET tmp/?prefix after the delete", e.curl("", n1.url("/v1/kv/tmp/?prefix")), 200, `"entries": []`)
	})

	step("curl txn", func() {
		body := fmt.Sprintf(`{"checks":[{"check":"modify_index","key":"app/db","index":%d},{"check":"not_exists","key":"app/lock"}],
			"ops":[{"op":"put","key":"app/lock","value":"n2"},{"op":"put","key":"app/owner","value":"n2"},{"op":"get","key":"app/db"}]}`, dbIndex)
		a := e.curl(body, "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-", n2.url("/v1/txn"))
		e.want("txn", a, 200, `"op": "put"`, `"key": "app/lock"`, `"value": "postgres://db2"`, `"found": true`)
		a = e.curl(body, "-X", "POST", "--data-binary", "@-", n3.url("/v1/txn"))
		e.want("the same txn again", a, 409, "kv_check_failed")
	})

	step("curl blocking query", func() {
		a := e.curl("", n3.url("/v1/kv/app/db"))
		idx := a.header.Get("X-Buoy-Index")
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, e.curlBin, "-sS", "-i", n3.url("/v1/kv/app/db?index="+idx+"&wait=25s"))
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		e.want("PUT app/db", e.curl("postgres://db3", "-X", "PUT", "--data-binary", "@-", n1.url("/v1/kv/app/db")), 200)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("blocking curl: %v", err)
		}
		b, err := parseCurl(out.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		// Whether the query was still waiting when the write landed or
		// started after it, it answers the new value past idx.
		e.want("blocking query", b, 200, `"value": "postgres://db3"`)
		before, _ := strconv.ParseUint(idx, 10, 64)
		if after, err := strconv.ParseUint(b.header.Get("X-Buoy-Index"), 10, 64); err != nil || after <= before {
			t.Errorf("blocking query index %q after %d, want a later one", b.header.Get("X-Buoy-Index"), before)
		}
	})

	step("curl -N watch", func() {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, e.curlBin, "-sS", "-N", n2.url("/v1/kv/watch/?watch"))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Kill()
			cmd.Wait()
		}()
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || !strings.HasPrefix(lines.Text(), ": watching") {
			t.Fatalf("watch stream starts with %q, want the watching comment", lines.Text())
		}
		e.want("PUT watch/a", e.curl("1", "-X", "PUT", "--data-binary", "@-", n1.url("/v1/kv/watch/a")), 200)
		e.want("PUT watch/b", e.curl("2", "-X", "PUT", "--data-binary", "@-", n3.url("/v1/kv/watch/b")), 200)
		e.want("DELETE watch/a", e.curl("", "-X", "DELETE", n1.url("/v1/kv/watch/a")), 200)
		var got []string
		for len(got) < 3 && lines.Scan() {
			data, ok := strings.CutPrefix(lines.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct{ Type, Key, Value string }
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event data %q: %v", data, err)
			}
			got = append(got, ev.Type+" "+ev.Key+" "+ev.Value)
		}
		want := []string{"put watch/a 1", "put watch/b 2", "delete watch/a "}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("watch events = %q, want %q", got, want)
		}
	})

	step("nc line protocol", func() {
		if out := e.nc(n1, `kv set foo bar\nkv get foo\nping\n`); out != "SUCCESS\nbar\nPONG\n" {
			t.Errorf("nc session = %q, want SUCCESS, bar, PONG", out)
		}
		// Written through one node's line protocol, read through another's
		// and through HTTP: it is the replicated store.
		if out := e.nc(n3, `get foo\ndel nothing\nbogus\nget \377\n`); !strings.HasPrefix(out, "bar\nSUCCESS\nERROR syntax error") ||
			!strings.Contains(out, "ERROR invalid key") {
			t.Errorf("nc session on n3 = %q, want bar, SUCCESS, then a syntax error and an invalid key", out)
		}
		e.want("GET foo?raw", e.curl("", n2.url("/v1/kv/foo?raw")), 200, "bar")
	})

	step("buoy kv", func() {
		if out, _, err := n1.kvCLI("put", "cli/greeting", "hello"); err != nil || !strings.HasPrefix(out, "OK, modify_index ") {
			t.Fatalf("buoy kv put = %q, %v", out, err)
		}
		if out, _, err := n2.kvCLI("get", "cli/greeting"); err != nil || out != "hello\n" {
			t.Errorf("buoy kv get = %q, %v; want hello", out, err)
		}
		if out, _, err := n3.kvCLI("list", "cli/"); err != nil || !strings.Contains(out, "cli/greeting") || !strings.Contains(out, "hello") {
			t.Errorf("buoy kv list = %q, %v", out, err)
		}
		var r struct {
			Value       string
			ModifyIndex uint64 `json:"modify_index"`
		}
		out, _, err := n3.kvCLI("get", "cli/greeting", "--json")
		if err == nil {
			err = json.Unmarshal([]byte(out), &r)
		}
		if err != nil || r.Value != "hello" {
			t.Fatalf("buoy kv get --json = %q, %v", out, err)
		}
		_, _, err = n2.kvCLI("put", "cli/greeting", "hi", "--cas", strconv.FormatUint(r.ModifyIndex-1, 10))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("now at modify_index %d", r.ModifyIndex)) {
			t.Errorf("buoy kv put --cas with a stale index = %v, want a refusal naming modify_index %d", err, r.ModifyIndex)
		}
		if out, _, err := n2.kvCLI("del", "cli/greeting"); err != nil || out != "deleted 1\n" {
			t.Errorf("buoy kv del = %q, %v", out, err)
		}
		if _, _, err := n2.kvCLI("get", "cli/greeting"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("buoy kv get of a deleted key = %v, want not found", err)
		}
	})

	step("bad input", func() {
		key513 := strings.Repeat("k", 513)
		e.want("PUT a 513-byte key", e.curl("v", "-X", "PUT", "--data-binary", "@-", n1.url("/v1/kv/"+key513)), 400, "kv_key_too_long", "the limit is 512")
		e.want("GET a 513-byte key", e.curl("", n1.url("/v1/kv/"+key513)), 400, "kv_key_too_long")
		big := strings.Repeat("v", 512<<10+1)
		e.want("PUT a 512 KiB + 1 value", e.curl(big, "-X", "PUT", "--data-binary", "@-", n2.url("/v1/kv/app/big")), 400, "kv_value_too_large", "the limit is 524288")
		e.want("PUT a 512 KiB value", e.curl(big[1:], "-X", "PUT", "--data-binary", "@-", n2.url("/v1/kv/app/big")), 200)
		e.want("PUT an invalid UTF-8 key", e.curl("v", "-X", "PUT", "--data-binary", "@-", n3.url("/v1/kv/bad%FFkey")), 400, "kv_invalid_key", "not valid UTF-8")
		e.want("txn with an unknown op", e.curl(`{"ops":[{"op":"increment","key":"n"}]}`, "-X", "POST", "--data-binary", "@-", n1.url("/v1/txn")), 400,
			"kv_unknown_op", "want put, delete, delete_prefix or get")
		e.want("txn with invalid UTF-8", e.curl("{\"ops\":[{\"op\":\"get\",\"key\":\"\xff\"}]}", "-X", "POST", "--data-binary", "@-", n1.url("/v1/txn")), 400, "kv_invalid_key")
		if out := e.nc(n2, `set `+key513+` v\n`); !strings.HasPrefix(out, "ERROR key too long") {
			t.Errorf("nc set of a 513-byte key = %q, want ERROR key too long", out)
		}
	})

	step("no quorum", func() {
		// The survivor holds app/db before the others go.
		eventually(t, "app/db on n3", func() error {
			if a := e.curl("", n3.url("/v1/kv/app/db?stale")); !strings.Contains(a.body, "postgres://db3") {
				return fmt.Errorf("GET app/db?stale on n3 = %d %s", a.code, a.body)
			}
			return nil
		})
		n1.kill()
		n2.kill()
		a := e.curl("", n3.url("/v1/kv/app/db"))
		e.want("linearizable GET without quorum", a, 503, "kv_no_quorum", "stale read still works")
		a = e.curl("", n3.url("/v1/kv/app/db?stale"))
		e.want("stale GET without quorum", a, 200, `"value": "postgres://db3"`, `"stale": true`)
		if a.header.Get("X-Buoy-Stale") != "true" {
			t.Errorf("stale GET: X-Buoy-Stale = %q, want true", a.header.Get("X-Buoy-Stale"))
		}
		if _, _, err := n3.kvCLI("get", "app/db"); err == nil || !strings.Contains(err.Error(), "--stale") {
			t.Errorf("buoy kv get without quorum = %v, want a refusal pointing at --stale", err)
		}
		if out, _, err := n3.kvCLI("get", "app/db", "--stale"); err != nil || out != "postgres://db3\n" {
			t.Errorf("buoy kv get --stale without quorum = %q, %v", out, err)
		}
		if out := e.nc(n3, `get app/db\n`); !strings.HasPrefix(out, "ERROR no quorum") {
			t.Errorf("nc get without quorum = %q, want ERROR no quorum", out)
		}
	})
}

// TestKVTextAddrRefused: the agent refuses to expose the unauthenticated
// line protocol beyond loopback without an API token.
func TestKVTextAddrRefused(t *testing.T) {
	c := newCluster(t)
	n := c.node("n1", "--bootstrap", "--kv-text-addr", "192.0.2.1:7381")
	n.launch()
	code, out := n.waitExit()
	if code == 0 || !strings.Contains(out, "--kv-text-addr") || !strings.Contains(out, "--http-token") {
		t.Errorf("agent with a non-loopback --kv-text-addr exited %d:\n%s\nwant a refusal naming --kv-text-addr and --http-token", code, out)
	}
}
