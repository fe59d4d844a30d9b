//go:build linux

package testproc

import "syscall"

// sysProcAttr makes the kernel SIGKILL a started server if the test process
// dies without running its cleanups (panic, timeout, ^C), so servers never
// outlive the test binary.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
