package e2e

import "syscall"

// agentProcAttr makes the kernel kill an agent if the test binary dies
// without its cleanups (a -timeout panic, a cancelled CI job), so that no
// agent outlives the test run.
func agentProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
