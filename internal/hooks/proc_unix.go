//go:build unix

package hooks

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// inOwnGroup starts cmd as the leader of a new process group and makes
// cancellation kill the whole group: a hook that hangs in a child (a
// pipeline, a "sleep" in a retry loop) is gone entirely at its timeout.
func inOwnGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

// isExecFormat reports whether err says the file is not a program the
// kernel can run (a script without a #! line, a binary for another
// machine).
func isExecFormat(err error) bool { return errors.Is(err, syscall.ENOEXEC) }

// signalOf returns the signal that ended the process, if one did.
func signalOf(ps *os.ProcessState) (os.Signal, bool) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return nil, false
	}
	return ws.Signal(), true
}
