package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger returns an hclog.Logger (what hashicorp/raft and raft-wal
// speak) that writes into our slog logger: hclog formats each line as JSON,
// slogWriter turns it back into a structured record.
func newHCLogger(log *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Info,
		Output:     &slogWriter{log: log},
		JSONFormat: true,
	})
}

type slogWriter struct {
	log *slog.Logger
	mu  sync.Mutex
}

func (w *slogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for line := range bytes.SplitSeq(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.log.Info(string(line))
			continue
		}
		msg, _ := m["@message"].(string)
		lvl := slog.LevelInfo
		switch m["@level"] {
		case "trace", "debug":
			lvl = slog.LevelDebug
		case "warn":
			lvl = slog.LevelWarn
		case "error":
			lvl = slog.LevelError
		}
		attrs := make([]slog.Attr, 0, len(m))
		for k, v := range m {
			switch k {
			case "@message", "@level", "@timestamp":
				continue
			case "@module":
				k = "module"
			}
			attrs = append(attrs, slog.Any(k, v))
		}
		w.log.LogAttrs(context.Background(), lvl, msg, attrs...)
	}
	return len(p), nil
}
