//go:build !unix

package hooks

import (
	"os"
	"os/exec"
)

// inOwnGroup leaves cmd as it is: without Unix process groups only the
// hook itself is killed at its timeout.
func inOwnGroup(cmd *exec.Cmd) {}

func isExecFormat(err error) bool { return false }

func signalOf(ps *os.ProcessState) (os.Signal, bool) { return nil, false }
