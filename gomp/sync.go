package gomp

import (
	"sync/atomic"
	"unsafe"
)

// Locks and semaphores on words in shared segments.
//
// A lock is a Holder (liveness.go): a 32-bit word, 0 when free, otherwise
// the owner's pid, written by the same compare-and-swap that takes the
// lock, and beside it the owner's record (pid and start time), which tells
// a recycled pid from the owner. Sleepers count themselves in Waiters, so
// that a release wakes someone only when someone sleeps (a waiter that is
// still polling costs the releaser nothing).
//
// The uncontended paths (take a free lock, release one nobody sleeps on)
// are one atomic operation each, plus plain stores of the record. They,
// and the futex sleeps and wakes, are done in C (pybind/gomp/_gomp_sync.c,
// on the layouts below through the generated header: a call into Go from
// a thread that was idle costs far more than the futex), which calls Go
// only to recover the locks and units of processes that died (Recover).

// LockRecord is the shared state of a Lock or RLock (64 bytes).
type LockRecord struct {
	Holder         // Word: 0, or the owner's pid; then the owner's record
	Thread  uint64 // RLock: owning thread (meaningful to its process only)
	Count   uint32 // RLock: recursion depth
	Kind    uint32
	Waiters uint32 // processes and threads asleep on Word
	_       [24]byte
	Refs    uint32 // processes' references (kept by the Python side)
}

// Kinds of record (the Kind field).
const (
	RecordLock      = 0
	RecordRLock     = 1
	RecordSemaphore = 2
)

// SemSlots is the number of per-process holder records of a semaphore.
const SemSlots = 64

// SemSlotReclaiming marks a holder slot being emptied by a recovering
// process.
const SemSlotReclaiming = ^uint32(0)

// SemHolder counts the units one process has taken from a semaphore.
type SemHolder struct {
	Pid   uint32
	Units uint32
	Start uint64
}

// SemRecord is the shared state of a Semaphore: the available count, the
// number of sleepers, and who holds how many units, so that the units of
// a process that died can be given back.
type SemRecord struct {
	Count   uint32
	Waiters uint32
	Initial uint32 // recovery never raises Count past what was handed out
	Max     uint32 // BoundedSemaphore's bound (0: unbounded)
	Kind    uint32
	_       [40]byte
	Refs    uint32 // as in LockRecord
	Holders [SemSlots]SemHolder
}

// Recover returns the units held by processes that died, without raising
// the count past the initial value less what live holders hold (a
// semaphore used to signal, with units released by processes that never
// took them, is not inflated). It frees the slots of dead processes and
// returns one dead pid, or 0.
func (s *SemRecord) Recover() uint32 {
	var found uint32
	for i := range s.Holders {
		h := &s.Holders[i]
		pid := atomic.LoadUint32(&h.Pid)
		if pid == 0 || pid == SemSlotReclaiming {
			continue
		}
		if !ProcessDead(pid, atomic.LoadUint64(&h.Start)) {
			continue
		}
		if !atomic.CompareAndSwapUint32(&h.Pid, pid, SemSlotReclaiming) {
			continue
		}
		units := atomic.SwapUint32(&h.Units, 0)
		if units > 0 {
			room := int64(atomic.LoadUint32(&s.Initial)) - int64(atomic.LoadUint32(&s.Count)) - int64(s.heldByOthers(i))
			if room > int64(units) {
				room = int64(units)
			}
			if room > 0 {
				atomic.AddUint32(&s.Count, uint32(room))
				FutexWake(&s.Count, int(room))
				found = pid
			}
		}
		atomic.StoreUint64(&h.Start, 0)
		atomic.StoreUint32(&h.Pid, 0)
	}
	return found
}

func (s *SemRecord) heldByOthers(skip int) uint64 {
	var n uint64
	for i := range s.Holders {
		if i != skip {
			n += uint64(atomic.LoadUint32(&s.Holders[i].Units))
		}
	}
	return n
}

// LockAt and SemAt view shared memory at p as a record.
func LockAt(p unsafe.Pointer) *LockRecord { return (*LockRecord)(p) }

// SemAt views shared memory at p as a semaphore record.
func SemAt(p unsafe.Pointer) *SemRecord { return (*SemRecord)(p) }

// Recover takes over a lock whose owner died, for pid; it returns the
// dead owner, or 0 if the lock was not held by a dead process.
func (r *LockRecord) Recover(pid uint32, start uint64) uint32 {
	v := atomic.LoadUint32(&r.Word)
	if v == 0 || !r.Dead(v) {
		return 0
	}
	if !atomic.CompareAndSwapUint32(&r.Word, v, pid) {
		return 0
	}
	r.Record(pid, start)
	return v
}
