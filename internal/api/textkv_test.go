package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy/internal/kv"
	"buoy/internal/store"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want TextCmd
		err  error
	}{
		{"ping", TextCmd{Op: TextPing}, nil},
		{"PING\r\n", TextCmd{Op: TextPing}, nil},
		{"kv ping\n", TextCmd{Op: TextPing}, nil},
		{"  ping  ", TextCmd{Op: TextPing}, nil},
		{"get foo", TextCmd{Op: TextGet, Key: "foo"}, nil},
		{"kv get foo\n", TextCmd{Op: TextGet, Key: "foo"}, nil},
		{"KV GET app/config", TextCmd{Op: TextGet, Key: "app/config"}, nil},
		{"get\tfoo\t", TextCmd{Op: TextGet, Key: "foo"}, nil},
		{"del foo\r\n", TextCmd{Op: TextDel, Key: "foo"}, nil},
		{"set foo bar", TextCmd{Op: TextSet, Key: "foo", Value: []byte("bar")}, nil},
		{"kv set foo bar baz\n", TextCmd{Op: TextSet, Key: "foo", Value: []byte("bar baz")}, nil},
		{"set foo  two leading spaces ", TextCmd{Op: TextSet, Key: "foo", Value: []byte(" two leading spaces ")}, nil},
		{"set  foo x", TextCmd{Op: TextSet, Key: "foo", Value: []byte("x")}, nil},
		{"set foo \n", TextCmd{Op: TextSet, Key: "foo", Value: []byte{}}, nil},
		{"set k \xff\x00bin", TextCmd{Op: TextSet, Key: "k", Value: []byte("\xff\x00bin")}, nil},
		{"set ключ значение", TextCmd{Op: TextSet, Key: "ключ", Value: []byte("значение")}, nil},
		{"", TextCmd{}, ErrTextSyntax},
		{"\n", TextCmd{}, ErrTextSyntax},
		{"kv", TextCmd{}, ErrTextSyntax},
		{"kv\n", TextCmd{}, ErrTextSyntax},
		{"put foo bar", TextCmd{}, ErrTextSyntax},
		{"kvget foo", TextCmd{}, ErrTextSyntax},
		{"ping pong", TextCmd{}, ErrTextSyntax},
		{"get", TextCmd{}, ErrTextSyntax},
		{"get a b", TextCmd{}, ErrTextSyntax},
		{"del", TextCmd{}, ErrTextSyntax},
		{"set foo", TextCmd{}, ErrTextSyntax},
		{"set", TextCmd{}, ErrTextSyntax},
		{"get bad\xffkey", TextCmd{}, kv.ErrInvalidKey},
		{"get nul\x00key", TextCmd{}, kv.ErrInvalidKey},
		{"get cr\rkey", TextCmd{}, kv.ErrInvalidKey},
		{"del esc\x1bkey", TextCmd{}, kv.ErrInvalidKey},
		{"get a\nget b", TextCmd{}, ErrTextSyntax},
		{"set " + strings.Repeat("k", kv.MaxLimits.MaxKeyBytes+1) + " v", TextCmd{}, kv.ErrKeyTooLong},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40q", tt.line), func(t *testing.T) {
			got, err := ParseLine([]byte(tt.line))
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("ParseLine(%q) error = %v, want %v", tt.line, err, tt.err)
			}
			if got.Op != tt.want.Op || got.Key != tt.want.Key || !bytes.Equal(got.Value, tt.want.Value) || (got.Op == TextSet) != (got.Value != nil) {
				t.Errorf("ParseLine(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func TestParseLineDoesNotAlias(t *testing.T) {
	line := []byte("set k value")
	c, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	copy(line, "XXXXXXXXXXX")
	if string(c.Value) != "value" {
		t.Errorf("ParseLine value changed with its input: %q", c.Value)
	}
}

// formatLine renders c as a line ParseLine reads back as c.
func formatLine(c TextCmd) string {
	switch c.Op {
	case TextPing:
		return "ping\n"
	case TextSet:
		return "set " + c.Key + " " + string(c.Value) + "\n"
	}
	return c.Op.String() + " " + c.Key + "\n"
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"ping", "kv get foo\r\n", "set a b c", "del x", "set k \xff", "get", "kv kv", "set \t k"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := ParseLine(line)
		if err != nil {
			return
		}
		if c.Op != TextPing {
			if err := kv.MaxLimits.CheckKey(c.Key); err != nil {
				t.Fatalf("ParseLine(%q) key %q: %v", line, c.Key, err)
			}
			if strings.ContainsFunc(c.Key, func(r rune) bool { return r < 0x20 || r == ' ' || r == 0x7f }) {
				t.Fatalf("ParseLine(%q) key %q holds a separator or control character", line, c.Key)
			}
		}
		if bytes.ContainsRune(c.Value, '\n') && !bytes.ContainsRune(bytes.TrimSuffix(line, []byte("\n")), '\n') {
			t.Fatalf("ParseLine(%q) value %q gained a line end", line, c.Value)
		}
		// What parses formats back to a line that parses the same (unless
		// the value itself ends in a line end, which the format would eat).
		if bytes.HasSuffix(c.Value, []byte("\r")) || bytes.HasSuffix(c.Value, []byte("\n")) {
			return
		}
		again, err := ParseLine([]byte(formatLine(c)))
		if err != nil || again.Op != c.Op || again.Key != c.Key || !bytes.Equal(again.Value, c.Value) {
			t.Fatalf("ParseLine(%q) = %+v; its line %q parses as %+v, %v", line, c, formatLine(c), again, err)
		}
	})
}

// fakeTextBackend is a map; block, if set, makes every call wait for its
// context, to test shutdown.
type fakeTextBackend struct {
	mu       sync.Mutex
	m        map[string][]byte
	block    bool
	started  chan struct{} // receives when a blocking call starts
	canceled chan struct{} // receives when a blocking call saw its context end
	fail     error
}

func newFakeTextBackend() *fakeTextBackend {
	return &fakeTextBackend{m: map[string][]byte{}, started: make(chan struct{}, 8), canceled: make(chan struct{}, 8)}
}

func (b *fakeTextBackend) wait(ctx context.Context) error {
	b.mu.Lock()
	block, fail := b.block, b.fail
	b.mu.Unlock()
	if fail != nil {
		return fail
	}
	if block {
		b.started <- struct{}{}
		<-ctx.Done()
		b.canceled <- struct{}{}
		return ctx.Err()
	}
	return nil
}

func (b *fakeTextBackend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.wait(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[key]
	if !ok {
		return nil, fmt.Errorf("get %q: %w", key, kv.ErrNotFound)
	}
	return v, nil
}

func (b *fakeTextBackend) Set(ctx context.Context, key string, value []byte) error {
	if err := b.wait(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[key] = value
	return nil
}

func (b *fakeTextBackend) Del(ctx context.Context, key string) error {
	if err := b.wait(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
	return nil
}

// startText serves s on a loopback port and stops it when the test ends,
// failing the test if Serve does not return nil.
func startText(t *testing.T, s *TextServer) (addr string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve = %v, want nil after cancel", err)
			}
		})
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

func dialText(t *testing.T, addr string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a hung server fails the test, not the run
	return c.(*net.TCPConn), bufio.NewReader(c)
}

func TestTextServer(t *testing.T) {
	b := newFakeTextBackend()
	addr, _ := startText(t, &TextServer{Backend: b})
	c, r := dialText(t, addr)
	exchanges := []struct{ send, want string }{
		{"ping\n", "PONG"},
		{"kv ping\r\n", "PONG"},
		{"get missing\n", "ERROR not found"},
		{"set greeting hello world\n", "SUCCESS"},
		{"get greeting\n", "hello world"},
		{"kv set greeting bonjour\r\n", "SUCCESS"},
		{"KV GET greeting\n", "bonjour"},
		{"del greeting\n", "SUCCESS"},
		{"del greeting\n", "SUCCESS"},
		{"get greeting\n", "ERROR not found"},
		{"frobnicate\n", `ERROR syntax error: unknown command "frobnicate" (want ping, get, set or del)`},
		{"\n", "ERROR syntax error: empty command (want ping, get, set or del)"},
		{"get bad\xffkey\n", `ERROR invalid key: "bad\xffkey" is not valid UTF-8`},
		{"set " + strings.Repeat("k", 513) + " v\n", "ERROR key too long: 513 bytes, the limit is 512"},
	}
	for _, ex := range exchanges {
		if _, err := io.WriteString(c, ex.send); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != ex.want+"\n" {
			t.Errorf("send %.60q: got %q, %v, want %q", ex.send, got, err, ex.want+"\n")
		}
	}

	// Pipelined lines in one write, the last without its line end before
	// the client closes its side: all answered, in order, then EOF.
	if _, err := io.WriteString(c, "set a 1\nset b 2\nget a\nget b"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if want := "SUCCESS\nSUCCESS\n1\n2\n"; err != nil || string(rest) != want {
		t.Errorf("pipelined answers = %q, %v, want %q", rest, err, want)
	}
}

func TestTextServerBackendError(t *testing.T) {
	b := newFakeTextBackend()
	b.fail = errors.New("no leader:\nretry later")
	addr, _ := startText(t, &TextServer{Backend: b})
	c, r := dialText(t, addr)
	io.WriteString(c, "set a b\n")
	if got, _ := r.ReadString('\n'); got != "ERROR no leader: retry later\n" {
		t.Errorf("backend error answer = %q, want one ERROR line", got)
	}
}

// TestTextServerOutcomeUnknown: a write whose outcome is unknown gets an
// answer a script can tell from other errors.
func TestTextServerOutcomeUnknown(t *testing.T) {
	b := newFakeTextBackend()
	b.fail = fmt.Errorf("rpc kv to n1: %w: EOF", store.ErrOutcomeUnknown)
	addr, _ := startText(t, &TextServer{Backend: b})
	c, r := dialText(t, addr)
	for _, line := range []string{"set a b", "kv del a"} {
		io.WriteString(c, line+"\n")
		if got, _ := r.ReadString('\n'); !strings.HasPrefix(got, "ERROR outcome unknown: ") || !strings.Contains(got, "get the key") {
			t.Errorf("%q with the outcome unknown = %q, want ERROR outcome unknown: ... get the key ...", line, got)
		}
	}
}

func TestTextServerLongLine(t *testing.T) {
	b := newFakeTextBackend()
	lim := kv.Limits{MaxKeyBytes: 16, MaxValueBytes: 100, MaxTxnOps: 1}
	addr, _ := startText(t, &TextServer{Backend: b, Limits: lim})

	// The longest legal line passes, also when longer than the read buffer
	// would be for a larger limit.
	c, r := dialText(t, addr)
	fits := "kv set " + strings.Repeat("k", 16) + " " + strings.Repeat("v", 100) + "\r\n"
	io.WriteString(c, fits)
	if got, _ := r.ReadString('\n'); got != "SUCCESS\n" {
		t.Errorf("longest legal line: got %q, want SUCCESS", got)
	}
	io.WriteString(c, "set k "+strings.Repeat("v", 101)+"\n")
	if got, _ := r.ReadString('\n'); got != "ERROR value too large: 101 bytes, the limit is 100\n" {
		t.Errorf("value over the limit: got %q", got)
	}

	// A line past key + value + slack closes the connection after saying so.
	long := strings.Repeat("x", 16+100+textLineSlack+2)
	io.WriteString(c, long+"\nping\n")
	got, _ := r.ReadString('\n')
	if !strings.HasPrefix(got, "ERROR line too long") {
		t.Errorf("over-long line: got %q, want ERROR line too long", got)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("after an over-long line: read %q, %v, want EOF", rest, err)
	}

	// Much longer than the reader's buffer, without a line end: same.
	c2, r2 := dialText(t, addr)
	go c2.Write(bytes.Repeat([]byte("y"), 64<<10)) // may fail once the server closes
	if got, _ := r2.ReadString('\n'); !strings.HasPrefix(got, "ERROR line too long") {
		t.Errorf("64 KiB without a line end: got %q, want ERROR line too long", got)
	}
}

func TestTextServerLargeValue(t *testing.T) {
	b := newFakeTextBackend()
	addr, _ := startText(t, &TextServer{Backend: b})
	c, r := dialText(t, addr)
	val := strings.Repeat("0123456789abcdef", (512<<10)/16) // the default limit, exactly
	go io.WriteString(c, "set big "+val+"\nget big\n")
	if got, _ := r.ReadString('\n'); got != "SUCCESS\n" {
		t.Fatalf("set of a 512 KiB value: got %.80q", got)
	}
	if got, _ := r.ReadString('\n'); got != val+"\n" {
		t.Errorf("get of a 512 KiB value: got %d bytes, want %d", len(got), len(val)+1)
	}
}

func TestTextServerMaxConns(t *testing.T) {
	addr, _ := startText(t, &TextServer{Backend: newFakeTextBackend(), MaxConns: 1})
	c1, r1 := dialText(t, addr)
	io.WriteString(c1, "ping\n")
	if got, _ := r1.ReadString('\n'); got != "PONG\n" {
		t.Fatalf("first connection: got %q", got)
	}
	_, r2 := dialText(t, addr)
	if got, _ := io.ReadAll(r2); string(got) != "ERROR too many connections\n" {
		t.Errorf("second connection: got %q, want the refusal then EOF", got)
	}
	// Once the first leaves, a new one is served. The server notices the
	// close asynchronously, so poll (bounded, on a loaded machine too).
	c1.Close()
	giveUp := time.Now().Add(20 * time.Second)
	for {
		c3, r3 := dialText(t, addr)
		io.WriteString(c3, "ping\n")
		got, _ := r3.ReadString('\n')
		c3.Close()
		if got == "PONG\n" {
			break
		}
		if got != "ERROR too many connections\n" || time.Now().After(giveUp) {
			t.Fatalf("after the first connection closed: got %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTextServerIdleTimeout(t *testing.T) {
	b := newFakeTextBackend()
	addr, _ := startText(t, &TextServer{Backend: b, IdleTimeout: 50 * time.Millisecond})
	c, r := dialText(t, addr)
	// Half a command, then silence: the connection closes without running it.
	io.WriteString(c, "set k v")
	if got, err := io.ReadAll(r); err != nil || len(got) != 0 {
		t.Errorf("idle connection: read %q, %v, want EOF", got, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.m["k"]; ok {
		t.Errorf("the half line ran: k = %q", v)
	}
}

// TestTextServerShutdown cancels the server while a request waits in the
// backend: the request's context ends, the client's connection closes, and
// Serve returns only after that.
func TestTextServerShutdown(t *testing.T) {
	b := newFakeTextBackend()
	b.block = true
	addr, stop := startText(t, &TextServer{Backend: b})
	c, r := dialText(t, addr)
	io.WriteString(c, "get k\n")
	<-b.started
	stop()
	select {
	case <-b.canceled:
	default:
		t.Error("Serve returned before the blocked request saw its context end")
	}
	// The request may still be answered (with its context's error) before
	// the close; either way the connection ends without blocking.
	rest, err := io.ReadAll(r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("connection still open after Serve returned")
	}
	if len(rest) > 0 && string(rest) != "ERROR context canceled\n" {
		t.Errorf("after shutdown the client read %q, want nothing or the canceled request's error", rest)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("listener still accepting after Serve returned")
	}
}

func TestServeTextListenerError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := ServeText(context.Background(), l, newFakeTextBackend()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ServeText on a closed listener = %v, want %v", err, net.ErrClosed)
	}
}

// TestTextServerNetcat talks to the server with nc, as a user would.
func TestTextServerNetcat(t *testing.T) {
	nc, err := exec.LookPath("nc")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nc is not installed (Debian package netcat-openbsd): %v", err)
		}
		t.Skip("nc not installed (apt-get install netcat-openbsd); CI runs this test")
	}
	addr, _ := startText(t, &TextServer{Backend: newFakeTextBackend()})
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -N passes the end of our input on (shutdown), so the server answers
	// everything, closes, and nc exits: no fixed wait as with -q1, which
	// would also cut the answers short on a slow machine.
	cmd := exec.CommandContext(ctx, nc, "-N", host, port)
	cmd.Stdin = strings.NewReader("ping\nkv set motd hello from nc\nget motd\ndel motd\nget motd\nbogus\n")
	out, err := cmd.CombinedOutput()
	want := "PONG\nSUCCESS\nhello from nc\nSUCCESS\nERROR not found\n" +
		"ERROR syntax error: unknown command \"bogus\" (want ping, get, set or del)\n"
	if err != nil || string(out) != want {
		t.Errorf("nc session: %q, %v, want %q", out, err, want)
	}
}
