package clustertest

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// maxLogLines bounds what a cluster keeps of its nodes' logs: a failover
// scenario logs a lot, and only the end of it explains a failure.
const maxLogLines = 4000

// logBuffer collects every node's log lines, to print them only when the
// test fails. Writing to t.Log directly would be noisy on success and
// panics when a node logs after its test has returned.
type logBuffer struct {
	// mu guards the following fields.
	mu      sync.Mutex
	lines   []string
	dropped int
}

func newLogBuffer() *logBuffer { return &logBuffer{} }

// logger returns a logger writing into the buffer. Each node adds its
// own "node" attribute (buoy does it from Config.Name).
func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write takes whole log lines, as slog's text handler writes them.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for line := range bytes.SplitSeq(bytes.TrimRight(p, "\n"), []byte("\n")) {
		b.lines = append(b.lines, string(line))
	}
	if over := len(b.lines) - maxLogLines; over > 0 {
		b.dropped += over
		b.lines = append(b.lines[:0], b.lines[over:]...)
	}
	return len(p), nil
}

// dump writes the kept lines to the test log.
func (b *logBuffer) dump(t testing.TB) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	if b.dropped > 0 {
		fmt.Fprintf(&sb, "… %d earlier lines dropped\n", b.dropped)
	}
	for _, l := range b.lines {
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	t.Logf("node logs:\n%s", sb.String())
}

// count returns how many kept lines contain every one of parts.
func (b *logBuffer) count(parts ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}
