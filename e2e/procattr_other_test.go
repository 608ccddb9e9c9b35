//go:build !linux

package e2e

import "syscall"

// agentProcAttr: only Linux can tie a child's life to its parent's; here
// the cleanups alone stop the agents.
func agentProcAttr() *syscall.SysProcAttr { return nil }
