//go:build unix

package health

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// inOwnGroup starts cmd as the leader of a new process group and makes
// cancellation kill the whole group, so a probe that forked helpers (a
// shell running a pipeline) leaves nothing behind when it times out.
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
