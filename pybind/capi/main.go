// Command capi exports gomp's Go core as C functions. It is built with
// -buildmode=c-shared into gomp/_gocore.so, which the C extension _gomp
// loads with dlopen on first use (importing gomp must not start Go).
//
// Conventions: functions return 0 (or a positive count/flag) on success
// and a negative errno on failure; out-parameters carry the results.
package main

/*
#include <stddef.h>
*/
import "C"

import (
	"errors"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"gomp.dev/gomp/gomp"
)

func main() {}

// errno turns a Go error into a negative errno for C.
func errno(err error) C.int {
	var en syscall.Errno
	if errors.As(err, &en) {
		return -C.int(en)
	}
	return -C.int(syscall.EIO)
}

// splitNul reads n bytes of NUL-terminated strings.
func splitNul(p *C.char, n C.int) []string {
	if n <= 0 {
		return nil
	}
	s := C.GoStringN(p, n)
	s = strings.TrimSuffix(s, "\x00")
	return strings.Split(s, "\x00")
}

func intSlice(p *C.int, n C.int) []int {
	if n <= 0 {
		return nil
	}
	c := unsafe.Slice(p, int(n))
	out := make([]int, n)
	for i, v := range c {
		out[i] = int(v)
	}
	return out
}

//export GompSpawn
func GompSpawn(path *C.char, argv *C.char, argvLen C.int, env *C.char, envLen C.int,
	dir *C.char, fds *C.int, nfds C.int, outPid *C.int, outPidfd *C.int) C.int {
	req := &gomp.SpawnRequest{
		Path:  C.GoString(path),
		Argv:  splitNul(argv, argvLen),
		Env:   splitNul(env, envLen),
		Files: intSlice(fds, nfds),
	}
	if dir != nil {
		req.Dir = C.GoString(dir)
	}
	child, err := gomp.Spawn(req)
	if err != nil {
		return errno(err)
	}
	*outPid = C.int(child.Pid)
	*outPidfd = C.int(child.PidFD)
	return 0
}

//export GompReap
func GompReap(pidfd C.int, outCode *C.int) C.int {
	code, done, err := gomp.Reap(int(pidfd))
	if err != nil {
		return errno(err)
	}
	if !done {
		return 0
	}
	*outCode = C.int(code)
	return 1
}

//export GompSignal
func GompSignal(pidfd C.int, sig C.int) C.int {
	if err := gomp.Signal(int(pidfd), int(sig)); err != nil {
		return errno(err)
	}
	return 0
}

// GompWaitReadable waits up to timeoutNs (negative: forever) for fd.
//
//export GompWaitReadable
func GompWaitReadable(fd C.int, timeoutNs C.longlong) C.int {
	ok, err := gomp.WaitReadable(int(fd), time.Duration(timeoutNs))
	if err != nil {
		return errno(err)
	}
	if ok {
		return 1
	}
	return 0
}
