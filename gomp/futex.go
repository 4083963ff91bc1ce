package gomp

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations on 32-bit words in shared memory. The words live in
// memfd segments mapped by several processes, so these are the shared
// (not FUTEX_PRIVATE_FLAG) operations; x/sys has SYS_FUTEX but not the
// operation constants.
const (
	futexWait = 0
	futexWake = 1
)

// FutexWait sleeps while *addr == val, for at most timeout (negative:
// forever). It returns nil when woken or when *addr already differs
// (EAGAIN), unix.ETIMEDOUT when the time ran out and unix.EINTR when a
// signal interrupted it; callers re-check their condition in every case.
func FutexWait(addr *uint32, val uint32, timeout time.Duration) error {
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)),
		futexWait, uintptr(val), uintptr(unsafe.Pointer(ts)), 0, 0)
	switch errno {
	case 0, unix.EAGAIN:
		return nil
	default:
		return errno
	}
}

// FutexWake wakes up to n waiters sleeping on addr and reports how many.
func FutexWake(addr *uint32, n int) (int, error) {
	woken, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)),
		futexWake, uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(woken), nil
}
