package main

/*
#include <stddef.h>
*/
import "C"

import (
	"sync"
	"time"
	"unsafe"

	"gomp.dev/gomp/gomp"
)

// Shared segments handed to C: C gets the mapping's address once and does
// the uncontended atomics itself; it calls back only to sleep, to wake and
// to recover what dead processes held (gomp/sync.go).

var (
	segMu sync.Mutex
	segs  = map[uintptr]*gomp.Segment{}
)

func keep(seg *gomp.Segment, outAddr *unsafe.Pointer) {
	addr := unsafe.Pointer(&seg.Mem[0])
	segMu.Lock()
	segs[uintptr(addr)] = seg
	segMu.Unlock()
	*outAddr = addr
}

// GompSegNew creates a zero-filled memfd segment of size bytes.
//
//export GompSegNew
func GompSegNew(name *C.char, size C.longlong, outFd *C.int, outAddr *unsafe.Pointer) C.int {
	seg, err := gomp.NewSegment(C.GoString(name), int(size))
	if err != nil {
		return errno(err)
	}
	keep(seg, outAddr)
	*outFd = C.int(seg.FD)
	return 0
}

// GompSegMap maps a segment from a descriptor it takes ownership of.
//
//export GompSegMap
func GompSegMap(fd C.int, outAddr *unsafe.Pointer, outSize *C.longlong) C.int {
	seg, err := gomp.MapSegment(int(fd))
	if err != nil {
		return errno(err)
	}
	keep(seg, outAddr)
	*outSize = C.longlong(len(seg.Mem))
	return 0
}

// GompSegClose unmaps the segment mapped at addr and closes its descriptor.
//
//export GompSegClose
func GompSegClose(addr unsafe.Pointer) C.int {
	segMu.Lock()
	seg := segs[uintptr(addr)]
	delete(segs, uintptr(addr))
	segMu.Unlock()
	if seg == nil {
		return 0
	}
	if err := seg.Close(); err != nil {
		return errno(err)
	}
	return 0
}

// GompSelf gives this process's pid and start time (see gomp.Self).
//
//export GompSelf
func GompSelf(outPid *C.uint, outStart *C.ulonglong) {
	pid, start := gomp.Self()
	*outPid = C.uint(pid)
	*outStart = C.ulonglong(start)
}

// acquiredCode: 0 not acquired, 1 acquired after sleeping, 2 acquired
// while spinning (the caller tunes how long it spins by it).
func acquiredCode(ok, spun bool) C.int {
	switch {
	case spun:
		return 2
	case ok:
		return 1
	}
	return 0
}

// GompLockWait waits up to sliceNs (spinning first for spinNs) for the
// lock record at rec. Returns acquiredCode; outDead is the dead owner it
// took the lock from, or 0.
//
//export GompLockWait
func GompLockWait(rec unsafe.Pointer, sliceNs C.longlong, spinNs C.longlong, outDead *C.uint) C.int {
	pid, start := gomp.Self()
	ok, spun, dead := gomp.LockAt(rec).LockWait(pid, start, time.Duration(sliceNs), time.Duration(spinNs))
	*outDead = C.uint(dead)
	return acquiredCode(ok, spun)
}

// GompSemWait waits up to sliceNs (spinning first for spinNs) for a unit
// of the semaphore at rec. Returns acquiredCode; outDead names a dead holder whose units were
// given back, or is 0.
//
//export GompSemWait
func GompSemWait(rec unsafe.Pointer, sliceNs C.longlong, spinNs C.longlong, outDead *C.uint) C.int {
	ok, spun, dead := gomp.SemAt(rec).SemWait(time.Duration(sliceNs), time.Duration(spinNs))
	*outDead = C.uint(dead)
	return acquiredCode(ok, spun)
}

// GompSemRecover gives back the units of dead holders; returns a dead pid
// or 0.
//
//export GompSemRecover
func GompSemRecover(rec unsafe.Pointer) C.uint {
	return C.uint(gomp.SemAt(rec).Recover())
}

// GompLockRecover takes over the lock at rec if its owner died; returns
// the dead owner's pid, or 0.
//
//export GompLockRecover
func GompLockRecover(rec unsafe.Pointer) C.uint {
	pid, start := gomp.Self()
	return C.uint(gomp.LockAt(rec).Recover(pid, start))
}

// GompWordWait sleeps while the word at addr holds val, up to sliceNs.
// Returns 1 when woken or the value differs, 0 when the slice ran out or
// a signal came.
//
//export GompWordWait
func GompWordWait(addr unsafe.Pointer, val C.uint, sliceNs C.longlong) C.int {
	err := gomp.FutexWait((*uint32)(addr), uint32(val), time.Duration(sliceNs))
	if err == nil {
		return 1
	}
	return 0
}

// GompWordWake wakes up to n sleepers on the word at addr.
//
//export GompWordWake
func GompWordWake(addr unsafe.Pointer, n C.int) C.int {
	woken, err := gomp.FutexWake((*uint32)(addr), int(n))
	if err != nil {
		return errno(err)
	}
	return C.int(woken)
}
