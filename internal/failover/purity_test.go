package failover

import (
	"testing"

	"buoy/internal/puritytest"
)

// The package must stay pure: only the standard library (and wire, were
// it ever needed), and of the standard library nothing that reaches the
// network, the file system, the clock, randomness or locks; no goroutines
// of its own.
func TestPure(t *testing.T) {
	puritytest.Check(t, puritytest.Rules{
		Pkg:     "buoy/internal/failover",
		Allowed: []string{"buoy/internal/wire"},
		Denied: []string{
			"net", "net/http", "os", "os/exec", "os/signal", "syscall", "unsafe", "io/fs", "path/filepath",
			"math/rand", "math/rand/v2", "crypto/rand", "sync", "sync/atomic", "runtime", "log", "log/slog",
		},
		Seen: "time",
	})
}
