package main

/*
#include <stddef.h>
*/
import "C"

import (
	"time"
	"unsafe"

	"gomp.dev/gomp/gomp"
)

// A pool's supervisor is an epoll descriptor (gomp/pool.go); C holds it.

// GompSupervisorNew makes a watch set; out: its descriptor.
//
//export GompSupervisorNew
func GompSupervisorNew(outFd *C.int) C.int {
	s, err := gomp.NewSupervisor()
	if err != nil {
		return errno(err)
	}
	*outFd = C.int(s.FD)
	return 0
}

// GompSupervisorWatch reports id once fd (a worker's sentinel) fires.
//
//export GompSupervisorWatch
func GompSupervisorWatch(sup, fd, id C.int) C.int {
	s := gomp.Supervisor{FD: int(sup)}
	if err := s.Watch(int(fd), int(id)); err != nil {
		return errno(err)
	}
	return 0
}

// GompSupervisorUnwatch forgets fd.
//
//export GompSupervisorUnwatch
func GompSupervisorUnwatch(sup, fd C.int) C.int {
	s := gomp.Supervisor{FD: int(sup)}
	if err := s.Unwatch(int(fd)); err != nil {
		return errno(err)
	}
	return 0
}

// GompSupervisorWait waits up to timeoutNs for workers to end; fills ids
// (room for n) and returns how many, 0 on timeout.
//
//export GompSupervisorWait
func GompSupervisorWait(sup C.int, timeoutNs C.longlong, ids *C.int, n C.int) C.int {
	s := gomp.Supervisor{FD: int(sup)}
	got := make([]int, int(n))
	k, err := s.Wait(time.Duration(timeoutNs), got)
	if err != nil {
		return errno(err)
	}
	out := unsafe.Slice(ids, int(n))
	for i := 0; i < k; i++ {
		out[i] = C.int(got[i])
	}
	return C.int(k)
}
