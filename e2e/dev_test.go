package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevQuickstart runs the README's first command, `buoy dev`, and then
// every command it prints, as a user would paste them into a shell (with
// the built binary for `go run ./cmd/buoy`): each must succeed, the demo
// zone and role must answer, and Ctrl-C must stop the cluster and remove
// its data.
func TestDevQuickstart(t *testing.T) {
	for _, name := range []string{"dig", "nc"} {
		tool(t, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dev := exec.CommandContext(ctx, buoyBin, "dev")
	dev.Env = env()
	var logs bytes.Buffer
	dev.Stderr = &logs
	out, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		if dev.ProcessState == nil {
			dev.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("buoy dev's log:\n%s", logs.String())
		}
	}()

	// The banner ends with the Ctrl-C line.
	var banner []string
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- dev.Wait()
	}()
	deadline := time.After(2 * time.Minute)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("buoy dev exited before printing its banner:\n%s", strings.Join(banner, "\n"))
			}
			banner = append(banner, l)
			if strings.HasPrefix(l, "Ctrl-C stops") {
				break read
			}
		case <-deadline:
			t.Fatalf("no banner from buoy dev within 2 minutes:\n%s", strings.Join(banner, "\n"))
		}
	}
	go func() {
		for range lines { // keep the pipe drained until the process ends
		}
	}()
	text := strings.Join(banner, "\n")
	dataDir := regexp.MustCompile(`data under (\S+)`).FindStringSubmatch(text)
	if dataDir == nil {
		t.Fatalf("the banner names no data dir:\n%s", text)
	}

	// Run each printed command in order, the way a user would.
	shellEnv := env()
	var digs, commands int
	for _, l := range banner {
		cmdline := strings.TrimSpace(l)
		if i := strings.Index(cmdline, "   ("); i > 0 {
			cmdline = strings.TrimSpace(cmdline[:i]) // a trailing remark
		}
		switch {
		case strings.HasPrefix(cmdline, "export "):
			shellEnv = append(shellEnv, strings.TrimPrefix(cmdline, "export "))
			continue
		case strings.HasPrefix(cmdline, "dig "):
			digs++
		case strings.Contains(cmdline, "go run ./cmd/buoy"), strings.Contains(cmdline, "| nc "):
			commands++
		default:
			continue
		}
		sh := strings.ReplaceAll(cmdline, "go run ./cmd/buoy", buoyBin)
		if strings.HasPrefix(sh, "dig ") {
			sh += " +time=2 +tries=3"
		}
		c := exec.CommandContext(ctx, "sh", "-c", sh)
		c.Env = shellEnv
		got, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", cmdline, err, got)
			continue
		}
		checkDevOutput(t, cmdline, string(got))
	}
	if digs < 5 || commands < 8 {
		t.Errorf("the banner printed %d dig and %d buoy commands, want at least 5 and 8:\n%s", digs, commands, text)
	}

	// Ctrl-C: the cluster stops cleanly and removes its data.
	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("buoy dev after Ctrl-C: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("buoy dev did not stop within a minute of Ctrl-C")
	}
	if _, err := os.Stat(dataDir[1]); !os.IsNotExist(err) {
		t.Errorf("data dir %s still there after Ctrl-C (stat: %v)", dataDir[1], err)
		os.RemoveAll(filepath.Clean(dataDir[1]))
	}
}

// checkDevOutput checks what the quickstart's commands answer beyond
// their exit status.
func checkDevOutput(t *testing.T, cmdline, out string) {
	t.Helper()
	want := func(ok bool, what string) {
		if !ok {
			t.Errorf("%s: want %s, got:\n%s", cmdline, what, out)
		}
	}
	switch {
	case strings.HasPrefix(cmdline, "dig "):
		want(strings.Contains(out, "status: NOERROR"), "NOERROR")
		want(regexp.MustCompile(`(?m)ANSWER: [1-9]`).MatchString(out), "an answer")
		want(strings.Contains(out, "flags: qr aa"), "an authoritative answer")
	case strings.Contains(cmdline, "kv get greeting"):
		want(strings.TrimSpace(lastLine(out)) == "hello", `"hello"`)
	case strings.Contains(cmdline, "roles move web node3"):
		want(strings.Contains(out, "web moved to node3"), "the move confirmed")
	case strings.HasSuffix(cmdline, "buoy roles"):
		want(regexp.MustCompile(`(?m)^web\s+node\d`).MatchString(out), "role web with a holder")
	case strings.HasSuffix(cmdline, "buoy members"):
		for i := 1; i <= 3; i++ {
			want(strings.Contains(out, fmt.Sprintf("node%d", i)), fmt.Sprintf("node%d listed", i))
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}
