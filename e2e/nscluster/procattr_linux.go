package nscluster

import "syscall"

// agentProcAttr makes the kernel kill an agent if the program that
// started it dies without its cleanups (a test timeout, a killed
// benchmark), so that no agent outlives it.
func agentProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
