package main

/*
#include <stdint.h>
*/
import "C"

import (
	"sync"
	"syscall"
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

// GompRingClose unmaps a ring and closes its descriptor (stopping its
// watches first: they read the mapping).
//
//export GompRingClose
func GompRingClose(base unsafe.Pointer) C.int {
	ringsMu.Lock()
	r := rings[uintptr(base)]
	delete(rings, uintptr(base))
	var stop []*gomp.RingWatch
	for h, w := range watches {
		if w.ring == r {
			stop = append(stop, w.watch)
			delete(watches, h)
		}
	}
	ringsMu.Unlock()
	for _, w := range stop {
		w.Stop()
	}
	if r == nil {
		return errno(syscall.EINVAL)
	}
	if err := r.Close(); err != nil {
		return errno(err)
	}
	return 0
}

// GompLockHolder: the pid of the live process holding the lock whose word
// (a gomp.Holder) is at w, or 0 when it is free or its holder died.
//
//export GompLockHolder
func GompLockHolder(w *C.uint32_t) C.uint32_t {
	return C.uint32_t(gomp.HolderAt(unsafe.Pointer(w)).LiveHolder())
}

// Watches of rings (see gomp.RingWatch), by handle.
var (
	watches   = map[int64]ringWatch{}
	nextWatch int64
)

type ringWatch struct {
	ring  *gomp.Ring
	watch *gomp.RingWatch
}

// GompRingWatch keeps eventFD readable while the ring at base holds a
// message, until GompRingUnwatch; out: the watch's handle.
//
//export GompRingWatch
func GompRingWatch(base unsafe.Pointer, eventFD C.int, outHandle *C.longlong) C.int {
	ringsMu.Lock()
	defer ringsMu.Unlock()
	r := rings[uintptr(base)]
	if r == nil {
		return errno(syscall.EINVAL)
	}
	nextWatch++
	watches[nextWatch] = ringWatch{r, r.Watch(int(eventFD))}
	*outHandle = C.longlong(nextWatch)
	return 0
}

// GompRingUnwatch stops a watch; the caller may then close its eventfd.
//
//export GompRingUnwatch
func GompRingUnwatch(handle C.longlong) C.int {
	ringsMu.Lock()
	w, ok := watches[int64(handle)]
	delete(watches, int64(handle))
	ringsMu.Unlock()
	if !ok {
		return errno(syscall.EINVAL)
	}
	w.watch.Stop()
	return 0
}
