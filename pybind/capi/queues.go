package main

/*
#include <stdint.h>
*/
import "C"

import (
	"sync"
	"syscall"
	"time"
	"unsafe"

	"gomp.dev/gomp/gomp"
)

// Rings mapped by this process, by base address, so that C can hold just
// the pointer and still have Go unmap the right segment.
var (
	ringsMu sync.Mutex
	rings   = map[uintptr]*gomp.Ring{}
)

func ringOut(r *gomp.Ring, outBase *unsafe.Pointer, outSize *C.longlong) {
	ringsMu.Lock()
	rings[uintptr(r.Base())] = r
	ringsMu.Unlock()
	*outBase = r.Base()
	*outSize = C.longlong(len(r.Seg.Mem))
}

// GompRingCreate makes a queue ring; out: its fd, base and mapped size.
//
//export GompRingCreate
func GompRingCreate(capacity, maxsize C.longlong, outFd *C.int, outBase *unsafe.Pointer,
	outSize *C.longlong) C.int {
	r, err := gomp.NewRing(int(capacity), int(maxsize))
	if err != nil {
		return errno(err)
	}
	*outFd = C.int(r.Seg.FD)
	ringOut(r, outBase, outSize)
	return 0
}

// GompRingMap maps a ring received from another process (takes fd).
//
//export GompRingMap
func GompRingMap(fd C.int, outBase *unsafe.Pointer, outSize *C.longlong) C.int {
	r, err := gomp.MapRing(int(fd))
	if err != nil {
		return errno(err)
	}
	ringOut(r, outBase, outSize)
	return 0
}

// GompRingClose unmaps a ring and closes its descriptor.
//
//export GompRingClose
func GompRingClose(base unsafe.Pointer) C.int {
	ringsMu.Lock()
	r := rings[uintptr(base)]
	delete(rings, uintptr(base))
	ringsMu.Unlock()
	if r == nil {
		return errno(syscall.EINVAL)
	}
	if err := r.Close(); err != nil {
		return errno(err)
	}
	return 0
}

// GompRingWait sleeps while *addr == val for at most timeoutNs (negative:
// forever): 1 when woken or the value differs, 0 on timeout or signal.
//
//export GompRingWait
func GompRingWait(addr *C.uint32_t, val C.uint32_t, timeoutNs C.longlong) C.int {
	ok, err := gomp.WaitWord((*uint32)(unsafe.Pointer(addr)), uint32(val), time.Duration(timeoutNs))
	if err != nil {
		return errno(err)
	}
	if ok {
		return 1
	}
	return 0
}

// GompRingWake wakes up to n sleepers on addr.
//
//export GompRingWake
func GompRingWake(addr *C.uint32_t, n C.int) C.int {
	woken, err := gomp.FutexWake((*uint32)(unsafe.Pointer(addr)), int(n))
	if err != nil {
		return errno(err)
	}
	return C.int(woken)
}

// GompProcessAlive: 1 if pid is a live process (not a zombie), else 0.
//
//export GompProcessAlive
func GompProcessAlive(pid C.int) C.int {
	if gomp.ProcessAlive(int(pid)) {
		return 1
	}
	return 0
}
