package gomp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// si_code values for SIGCHLD (asm-generic/siginfo.h)
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// siginfoChild extracts si_pid, si_status and si_code from a SIGCHLD
// siginfo. x/sys exposes the union only as raw bytes; the layout below is
// the kernel's on every 64-bit Linux: signo, errno, code (3×int32), a pad
// to 8 bytes, then pid, uid (2×int32) and status (int32).
func siginfoChild(info *unix.Siginfo) (pid int, status int, code int) {
	p := unsafe.Pointer(info)
	code = int(*(*int32)(unsafe.Add(p, 8)))
	pid = int(*(*int32)(unsafe.Add(p, 16)))
	status = int(*(*int32)(unsafe.Add(p, 24)))
	return
}

// exitCode turns si_status/si_code into Python's convention.
func exitCode(status, code int) int {
	switch code {
	case cldKilled, cldDumped:
		return -status
	default:
		return status
	}
}
