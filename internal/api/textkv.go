package api

// The plain-text key-value line protocol, kept from dns-raft so that
// `echo "kv set foo bar" | nc 127.0.0.1 7381` works: one command a line,
// one answer a line. A value is answered as stored, so one holding a line
// end reads back as several lines: binary values belong on the HTTP API.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"buoy/internal/kv"
	"buoy/internal/store"
)

// TextBackend is what the line protocol reads and writes through. Get
// returns an error wrapping kv.ErrNotFound for a missing key; Del of a
// missing key is not an error.
type TextBackend interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
	Del(ctx context.Context, key string) error
}

// TextOp is a line protocol command.
type TextOp uint8

// Line protocol commands.
const (
	TextPing TextOp = iota + 1 // ping → PONG
	TextGet                    // get K → the value, or ERROR not found
	TextSet                    // set K V → SUCCESS
	TextDel                    // del K → SUCCESS
)

// String returns the command word.
func (o TextOp) String() string {
	switch o {
	case TextPing:
		return "ping"
	case TextGet:
		return "get"
	case TextSet:
		return "set"
	case TextDel:
		return "del"
	}
	return fmt.Sprintf("TextOp(%d)", uint8(o))
}

// TextCmd is one parsed line.
type TextCmd struct {
	Op    TextOp
	Key   string
	Value []byte // TextSet only; never nil for it
}

// ErrTextSyntax wraps every line ParseLine cannot make a command of.
var ErrTextSyntax = errors.New("syntax error")

// ParseLine parses one line of the protocol, with or without its line end
// and with or without a "kv " prefix. Command words are case-insensitive and
// may be separated from the key by any run of spaces or tabs; for set,
// exactly one space or tab separates the key from the value, which is the
// rest of the line byte for byte (it may be empty). Keys are checked for
// shape (kv.MaxLimits, and no ASCII control characters, which a line cannot
// carry faithfully); the server checks its configured limits. The result
// does not alias line.
func ParseLine(line []byte) (TextCmd, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if bytes.IndexByte(line, '\n') >= 0 {
		return TextCmd{}, fmt.Errorf("%w: more than one line", ErrTextSyntax)
	}
	word, rest := nextWord(line)
	if strings.EqualFold(string(word), "kv") {
		word, rest = nextWord(rest)
	}
	var c TextCmd
	switch {
	case len(word) == 0:
		return c, fmt.Errorf("%w: empty command (want ping, get, set or del)", ErrTextSyntax)
	case strings.EqualFold(string(word), "ping"):
		c.Op = TextPing
	case strings.EqualFold(string(word), "get"):
		c.Op = TextGet
	case strings.EqualFold(string(word), "set"):
		c.Op = TextSet
	case strings.EqualFold(string(word), "del"):
		c.Op = TextDel
	default:
		return c, fmt.Errorf("%w: unknown command %q (want ping, get, set or del)", ErrTextSyntax, word)
	}
	switch c.Op {
	case TextPing:
		if len(bytes.TrimRight(rest, " \t")) > 0 {
			return TextCmd{}, fmt.Errorf("%w: ping takes no argument", ErrTextSyntax)
		}
		return c, nil
	case TextGet, TextDel:
		key, extra := nextWord(rest)
		if len(key) == 0 {
			return TextCmd{}, fmt.Errorf("%w: %s needs a key", ErrTextSyntax, c.Op)
		}
		if len(bytes.TrimRight(extra, " \t")) > 0 {
			return TextCmd{}, fmt.Errorf("%w: %s takes one key", ErrTextSyntax, c.Op)
		}
		c.Key = string(key)
	case TextSet:
		rest = bytes.TrimLeft(rest, " \t")
		i := bytes.IndexAny(rest, " \t")
		if i <= 0 {
			return TextCmd{}, fmt.Errorf("%w: set needs a key and a value", ErrTextSyntax)
		}
		c.Key, c.Value = string(rest[:i]), append([]byte{}, rest[i+1:]...)
	}
	if err := kv.MaxLimits.CheckKey(c.Key); err != nil {
		return TextCmd{}, err
	}
	if i := strings.IndexFunc(c.Key, isControl); i >= 0 {
		// Valid keys, but a line protocol cannot carry them faithfully.
		return TextCmd{}, fmt.Errorf("%w: %q: control character %q; use the HTTP API for such keys", kv.ErrInvalidKey, c.Key, c.Key[i])
	}
	return c, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// nextWord splits off the first word of s after any spaces or tabs; rest
// starts at the separator that ended the word.
func nextWord(s []byte) (word, rest []byte) {
	s = bytes.TrimLeft(s, " \t")
	if i := bytes.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, nil
}

// TextServer serves the line protocol. Set Backend; the other fields have
// defaults.
type TextServer struct {
	Backend TextBackend
	// Limits bound keys and values (default kv.DefaultLimits). A line longer
	// than a set of the largest key and value (plus slack for the command
	// words) closes the connection: the client is not speaking the protocol.
	Limits kv.Limits
	// MaxConns bounds concurrent connections (default 64); one more is told
	// "ERROR too many connections" and closed.
	MaxConns int
	// IdleTimeout closes a connection that sends no line, or does not read
	// its answers, for this long (default 5 minutes).
	IdleTimeout time.Duration
	// RequestTimeout bounds one backend call (default 30 seconds).
	RequestTimeout time.Duration
	Log            *slog.Logger
}

// textLineSlack covers "kv set ", the separator and the line end around
// the largest key and value.
const textLineSlack = 64

// ServeText serves the line protocol on l with default settings until ctx
// ends; see TextServer.Serve.
func ServeText(ctx context.Context, l net.Listener, backend TextBackend) error {
	s := &TextServer{Backend: backend}
	return s.Serve(ctx, l)
}

// Serve accepts connections on l until ctx ends or l fails. Either way it
// closes l and every connection and returns once all the goroutines it
// started have exited: nil when ctx ended, the accept error otherwise.
func (s *TextServer) Serve(ctx context.Context, l net.Listener) error {
	cfg := s.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg sync.WaitGroup
		// mu guards the following fields.
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
	)
	// The closer owns shutdown: it exits when ctx ends, which Serve makes
	// happen on its way out.
	wg.Go(func() {
		<-ctx.Done()
		_ = l.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	defer wg.Wait()
	defer cancel()

	backoff := time.Duration(0)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				cfg.Log.Warn("kv text accept", "err", err, "retry_in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
				continue
			}
			return fmt.Errorf("kv text accept: %w", err)
		}
		backoff = 0
		mu.Lock()
		if closed {
			mu.Unlock()
			_ = c.Close()
			return nil
		}
		if len(conns) >= cfg.MaxConns {
			mu.Unlock()
			// A fresh socket's send buffer takes this line at once; the
			// deadline only guards against the unexpected.
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("ERROR too many connections\n"))
			_ = c.Close()
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		// Each connection goroutine exits on EOF, idle timeout, an over-long
		// line, or when the closer closes its connection.
		wg.Go(func() {
			cfg.serveConn(ctx, c)
			_ = c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
}

// isTemporary reports accept errors worth retrying (EMFILE, ECONNABORTED).
func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *TextServer) withDefaults() *TextServer {
	c := *s
	if c.Limits == (kv.Limits{}) {
		c.Limits = kv.DefaultLimits
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &c
}

// errLineTooLong ends a connection whose line exceeds the limit.
var errLineTooLong = errors.New("line too long")

func (s *TextServer) serveConn(ctx context.Context, c net.Conn) {
	maxLine := s.Limits.MaxKeyBytes + s.Limits.MaxValueBytes + textLineSlack
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		line, rerr := readLine(br, maxLine)
		if errors.Is(rerr, errLineTooLong) {
			_ = c.SetWriteDeadline(time.Now().Add(s.IdleTimeout))
			_, _ = fmt.Fprintf(bw, "ERROR line too long: the limit is %d bytes\n", maxLine)
			_ = bw.Flush()
			return
		}
		// A line cut short by anything but the client's end of input (the
		// idle deadline, a reset) is not a command: never run half a set.
		if len(line) > 0 && (rerr == nil || errors.Is(rerr, io.EOF)) {
			_, _ = bw.Write(s.handle(ctx, line))
		}
		// Answer pipelined lines in one write, but never keep an answer
		// back while the client waits for it.
		if rerr != nil || br.Buffered() == 0 {
			_ = c.SetWriteDeadline(time.Now().Add(s.IdleTimeout))
			if err := bw.Flush(); err != nil {
				s.Log.Debug("kv text write", "remote", c.RemoteAddr(), "err", err)
				return
			}
		}
		if rerr != nil {
			// EOF, the idle deadline, or the server closing the connection.
			return
		}
	}
}

// readLine returns the next line including its '\n' (absent on the last
// line before EOF), or errLineTooLong once it exceeds max bytes without its
// line end. It grows a buffer only for lines longer than the reader's, so
// idle connections stay small. The line is valid until the next read.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		n := len(long) + len(frag)
		if err == nil {
			n-- // the '\n'
		}
		if n > max+1 { // +1: a "\r" before the '\n'
			return nil, errLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, frag...)
			continue
		}
		if long != nil {
			return append(long, frag...), err
		}
		return frag, err
	}
}

// handle runs one line and returns its answer line.
func (s *TextServer) handle(ctx context.Context, line []byte) []byte {
	c, err := ParseLine(line)
	if err == nil && c.Op != TextPing {
		err = s.Limits.CheckKey(c.Key)
	}
	if err == nil && c.Op == TextSet {
		err = s.Limits.CheckValue(len(c.Value))
	}
	if err != nil {
		return errorLine(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	switch c.Op {
	case TextPing:
		return []byte("PONG\n")
	case TextGet:
		v, err := s.Backend.Get(ctx, c.Key)
		if err != nil {
			return errorLine(err)
		}
		return append(v[:len(v):len(v)], '\n')
	case TextSet:
		err = s.Backend.Set(ctx, c.Key, c.Value)
	case TextDel:
		err = s.Backend.Del(ctx, c.Key)
	}
	if err != nil {
		return errorLine(err)
	}
	return []byte("SUCCESS\n")
}

// errorLine renders err as one "ERROR <reason>" line.
func errorLine(err error) []byte {
	if errors.Is(err, kv.ErrNotFound) {
		return []byte("ERROR not found\n")
	}
	if errors.Is(err, store.ErrOutcomeUnknown) {
		// A fixed start a script can match, as for "ERROR not found".
		return []byte("ERROR outcome unknown: the write may or may not have been applied; get the key to see before retrying\n")
	}
	msg := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, err.Error())
	return []byte("ERROR " + msg + "\n")
}
