package main

/*
#include <stddef.h>
*/
import "C"

import (
	"sync"
	"unsafe"

	"gomp.dev/gomp/gomp"
)

// Shared segments handed to C: C gets the mapping's address once and does
// the atomics and the futex sleeps and wakes itself (see _gomp_sync.c for
// why); it calls Go to make and map segments and, once per wait slice, to
// recover what dead processes held (gomp/sync.go).

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
