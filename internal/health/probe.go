package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// Errors a probe wraps, for callers that tell failures apart.
var (
	// ErrTimeout: the probe did not finish within the check's timeout.
	ErrTimeout = errors.New("timed out")
	// ErrStatus: an http check answered with a status other than 2xx.
	ErrStatus = errors.New("unexpected status")
	// ErrBody: an http check's body did not contain the expected text.
	ErrBody = errors.New("body does not match")
	// ErrExit: an exec check exited with a non-zero status.
	ErrExit = errors.New("non-zero exit")
	// ErrNotFound: an exec check's command does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotExecutable: an exec check's command exists but cannot be run.
	ErrNotExecutable = errors.New("not executable")
)

const (
	// bodyLimit bounds how much of an http answer is read and searched.
	bodyLimit = 64 << 10
	// reasonLimit bounds how much of an exec check's output goes into its
	// failure reason.
	reasonLimit = 256
	// execWaitDelay is how long a finished or killed exec probe waits for
	// leftover processes holding its output pipe before closing it.
	execWaitDelay = time.Second
)

// Prober runs one probe of a check. Probe returns nil when the check
// passes and otherwise an error that says why, naming the target. It
// bounds itself by the check's timeout; ctx ends it early.
type Prober interface {
	Probe(ctx context.Context) error
}

// NewProber validates s and returns the prober for its type.
func NewProber(s Spec) (Prober, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.WithDefaults()
	switch s.Type {
	case TypeTCP:
		return tcpProber{addr: s.Addr, timeout: s.Timeout}, nil
	case TypeHTTP, TypeHTTPS:
		return newHTTPProber(s), nil
	default: // TypeExec; Validate refused anything else.
		return execProber{argv: s.Command, timeout: s.Timeout}, nil
	}
}

// withTimeout runs probe under the timeout and turns the timeout's own
// expiry into ErrTimeout, while a cancelled parent stays ctx.Err().
func withTimeout(ctx context.Context, timeout time.Duration, what string, probe func(context.Context) error) error {
	pctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	err := probe(pctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	if errors.Is(context.Cause(pctx), ErrTimeout) {
		return fmt.Errorf("%s: %w after %v", what, ErrTimeout, timeout)
	}
	return err
}

type tcpProber struct {
	addr    string
	timeout time.Duration
}

func (p tcpProber) Probe(ctx context.Context) error {
	what := "tcp " + p.addr
	return withTimeout(ctx, p.timeout, what, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			// The OpError repeats the address; keep its cause.
			var op *net.OpError
			if errors.As(err, &op) && op.Err != nil {
				err = op.Err
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		return conn.Close()
	})
}

type httpProber struct {
	url     string
	body    string
	timeout time.Duration
	client  *http.Client
}

func newHTTPProber(s Spec) httpProber {
	tr := &http.Transport{
		// A health check speaks to the service directly, never through
		// a proxy from the environment, and opens a fresh connection
		// every time so that accepting connections is part of the check
		// and no idle connection outlives the runner.
		Proxy:             nil,
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: s.TLSSkipVerify}, //nolint:gosec // opt-in for self-signed local services
	}
	return httpProber{
		url:     s.URL,
		body:    s.Body,
		timeout: s.Timeout,
		client: &http.Client{
			Transport: tr,
			// A redirect is an answer, and not a 2xx one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (p httpProber) Probe(ctx context.Context) error {
	what := "GET " + p.url
	return withTimeout(ctx, p.timeout, what, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		req.Header.Set("User-Agent", "buoy-health")
		resp, err := p.client.Do(req)
		if err != nil {
			// *url.Error repeats method and URL; keep its cause.
			var ue interface{ Unwrap() error }
			if errors.As(err, &ue) && ue.Unwrap() != nil {
				err = ue.Unwrap()
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("%s: %w %d, want 2xx", what, ErrStatus, resp.StatusCode)
		}
		if p.body == "" {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
		if err != nil {
			return fmt.Errorf("%s: read body: %w", what, err)
		}
		if !strings.Contains(string(b), p.body) {
			return fmt.Errorf("%s: %w: %q not in the first %d bytes", what, ErrBody, p.body, len(b))
		}
		return nil
	})
}

type execProber struct {
	argv    []string
	timeout time.Duration
}

func (p execProber) Probe(ctx context.Context) error {
	what := "exec " + p.argv[0]
	return withTimeout(ctx, p.timeout, what, func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
		inOwnGroup(cmd)
		cmd.WaitDelay = execWaitDelay
		var out tail
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err() // withTimeout names it
		}
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			reason := out.reason()
			if reason != "" {
				reason = ": " + reason
			}
			return fmt.Errorf("%s: %w (%v)%s", what, ErrExit, exitErr, reason)
		case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s: %w (%v)", what, ErrNotFound, err)
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("%s: %w: permission denied (is it chmod +x, and its directory searchable?)", what, ErrNotExecutable)
		case isExecFormat(err):
			return fmt.Errorf("%s: %w: exec format error (does the script start with #!?)", what, ErrNotExecutable)
		}
		return fmt.Errorf("%s: %w", what, err)
	})
}

// tail keeps the last bytes written to it, for a failure reason.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*reasonLimit {
		t.b = append(t.b[:0], t.b[len(t.b)-reasonLimit:]...)
	}
	return len(p), nil
}

// reason is the output's last reasonLimit bytes on one line.
func (t *tail) reason() string {
	b := t.b
	if len(b) > reasonLimit {
		b = b[len(b)-reasonLimit:]
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}
