//go:build !linux

package nscluster

import "syscall"

// agentProcAttr: only Linux has network namespaces, so netlab never runs
// an agent elsewhere; this keeps the package building.
func agentProcAttr() *syscall.SysProcAttr { return nil }
