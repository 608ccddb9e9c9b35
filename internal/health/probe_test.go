package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probe builds the prober for s and runs it once.
func probe(t *testing.T, s Spec) error {
	t.Helper()
	if s.Interval == 0 && s.Timeout == 0 {
		// Generous: the test machine may be loaded, and only the
		// timeout tests are about timing.
		s.Interval, s.Timeout = time.Minute, 20*time.Second
	}
	p, err := NewProber(s)
	if err != nil {
		t.Fatalf("NewProber(%+v): %v", s, err)
	}
	return p.Probe(t.Context())
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	open := l.Addr().String()
	closed := closedPort(t)

	if err := probe(t, Spec{Type: TypeTCP, Addr: open}); err != nil {
		t.Errorf("tcp probe of listener %s = %v, want nil", open, err)
	}
	err = probe(t, Spec{Type: TypeTCP, Addr: closed})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("tcp probe of closed %s = %v, want connection refused", closed, err)
	}
	if want := "tcp " + closed + ": connect: connection refused"; err == nil || err.Error() != want {
		t.Errorf("tcp probe of closed %s = %v, want %q", closed, err, want)
	}
}

func TestHTTPProbe(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"status":"up"}`) })
	mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", http.StatusInternalServerError) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release) // runs before srv.Close, which waits for handlers

	tests := []struct {
		name    string
		path    string
		body    string
		timeout time.Duration
		wantErr error // nil: pass
		wantMsg string
	}{
		{"200", "/ok", "", 0, nil, ""},
		{"204", "/created", "", 0, nil, ""},
		{"500", "/fail", "", 0, ErrStatus, "unexpected status 500, want 2xx"},
		{"404", "/nothing", "", 0, ErrStatus, "unexpected status 404"},
		{"redirect is not followed", "/moved", "", 0, ErrStatus, "unexpected status 302"},
		{"body match", "/ok", `"up"`, 0, nil, ""},
		{"body mismatch", "/ok", `"down"`, 0, ErrBody, `body does not match: "\"down\"" not in the first 15 bytes`},
		{"timeout", "/hang", "", 100 * time.Millisecond, ErrTimeout, "timed out after 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Spec{Type: TypeHTTP, URL: srv.URL + tt.path, Body: tt.body, Interval: time.Minute, Timeout: tt.timeout}
			if tt.timeout == 0 {
				s.Timeout = 20 * time.Second
			}
			err := probe(t, s)
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("probe(%s) = %v, want nil", s.URL, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "GET "+s.URL+": ") {
				t.Errorf("probe(%s) = %v, want %v saying %q after the URL", s.URL, err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestHTTPSProbe(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	// The refused handshake is the point of the test, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	// httptest's certificate is self-signed: verification (the default)
	// refuses it, and tls_skip_verify accepts it.
	err := probe(t, Spec{Type: TypeHTTPS, URL: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("verified probe of self-signed %s = %v, want a certificate error", srv.URL, err)
	}
	if err := probe(t, Spec{Type: TypeHTTPS, URL: srv.URL, TLSSkipVerify: true, Body: "ok"}); err != nil {
		t.Errorf("probe of %s with tls_skip_verify = %v, want nil", srv.URL, err)
	}
}

func TestHTTPProbeClosedPort(t *testing.T) {
	addr := closedPort(t)
	err := probe(t, Spec{Type: TypeHTTP, URL: "http://" + addr + "/"})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("http probe of closed %s = %v, want connection refused", addr, err)
	}
}

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExecProbe(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("exec tests need /bin/sh")
	}
	dir := t.TempDir()
	pass := script(t, dir, "pass", "exit 0\n")
	fail := script(t, dir, "fail", "echo 'db not ready' >&2\nexit 1\n")
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noShebang := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(noShebang, []byte("exit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		argv    []string
		wantErr error
		wantMsg string
	}{
		{"exit 0", []string{pass}, nil, ""},
		{"exit 0 with args", []string{"/bin/sh", "-c", `test "$1" = x`, "sh", "x"}, nil, ""},
		{"exit 1 with reason", []string{fail}, ErrExit, "exit status 1): db not ready"},
		{"not executable", []string{notExec}, ErrNotExecutable, "permission denied"},
		{"no #! line", []string{noShebang}, ErrNotExecutable, "exec format error"},
		{"missing file", []string{filepath.Join(dir, "nope")}, ErrNotFound, "no such file"},
		{"not in PATH", []string{"buoy-no-such-check-command"}, ErrNotFound, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := probe(t, Spec{Type: TypeExec, Command: tt.argv, Interval: time.Minute, Timeout: 20 * time.Second})
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("probe(%q) = %v, want nil", tt.argv, err)
				}
				return
			}
			t.Log(err)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "exec "+tt.argv[0]+": ") {
				t.Errorf("probe(%q) = %v, want %v saying %q", tt.argv, err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

// TestExecProbeHangKilled runs a check that hangs with a child holding its
// output open, and checks that the timeout kills the whole process group:
// killing only the shell would leave the child sleeping for a minute.
func TestExecProbeHangKilled(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("exec tests need /bin/sh")
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	hang := script(t, dir, "hang", "sleep 60 &\necho $! > "+pidFile+"\nwait\n")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := NewProber(Spec{Type: TypeExec, Command: []string{hang}, Interval: time.Minute, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Probe(ctx)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "exec "+hang+": timed out after 2s") {
		t.Fatalf("probe(hang) = %v, want ErrTimeout after 2s", err)
	}
	if ctx.Err() != nil {
		t.Fatal("probe returned only after the test's own deadline")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the hanging script did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// waitGone waits until pid no longer runs (gone or a zombie nobody reaped).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err == nil {
			// The state follows the ")" that ends the command name.
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
				return
			}
		} else if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return // no /proc
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d of the timed-out check still runs: its process group was not killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProbeCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p, err := NewProber(Spec{Type: TypeTCP, Addr: closedPort(t), Interval: time.Minute, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Probe(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("Probe(cancelled ctx) = %v, want context.Canceled, not a timeout", err)
	}
}
