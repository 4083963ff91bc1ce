package gomp

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
// are one atomic operation each, plus plain stores of the record. The
// Python binding does them, and its futex sleeps and wakes, in C
// (pybind/gomp/_gomp_sync.c mirrors these layouts and LockWait/SemWait: a
// call into Go from a thread that was idle costs far more than the futex)
// and calls Go to recover the locks and units of processes that died
// (Recover).

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

// SemSlots is the number of per-process holder records of a semaphore.
const SemSlots = 64

// slotReclaiming marks a holder slot being emptied by a recovering process.
const slotReclaiming = ^uint32(0)

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

// TryLock takes a free lock for pid (the fast path, also done in C).
func (r *LockRecord) TryLock(pid uint32, start uint64) bool {
	if atomic.CompareAndSwapUint32(&r.Word, 0, pid) {
		r.Record(pid, start)
		return true
	}
	return false
}

// Unlock frees the lock; it reports false if it was not held. The
// sleeper count is read after the word is cleared: a waiter counts itself
// before it sleeps, and its sleep returns at once if the word changed.
func (r *LockRecord) Unlock() bool {
	r.Clear()
	old := atomic.SwapUint32(&r.Word, 0)
	if atomic.LoadUint32(&r.Waiters) != 0 {
		FutexWake(&r.Word, 1)
	}
	return old != 0
}

// spin polls the word for a free lock for up to budget before sleeping:
// on a handoff between two processes on different cores the lock is
// usually freed within a few microseconds, less than a futex sleep and
// wake cost the two sides together.
func (r *LockRecord) spin(pid uint32, start uint64, budget time.Duration) bool {
	return spinUntil(budget, func() bool {
		return atomic.LoadUint32(&r.Word) == 0 && r.TryLock(pid, start)
	})
}

// spinUntil polls try for up to budget (reading the clock every 64 polls).
func spinUntil(budget time.Duration, try func() bool) bool {
	if budget <= 0 {
		return false
	}
	end := time.Now().Add(budget)
	for {
		for i := 0; i < 64; i++ {
			if try() {
				return true
			}
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// LockWait tries to take the lock for pid during at most slice (spinning
// first for up to spin). It returns acquired, spun when it got the lock
// while spinning, and dead != 0 when it took the lock over from that dead
// process. At the end of a slice the owner is
// checked, so a lock held by a dead process is recovered within a slice.
func (r *LockRecord) LockWait(pid uint32, start uint64, slice, spin time.Duration) (acquired, spun bool, dead uint32) {
	if r.spin(pid, start, spin) {
		return true, true, 0
	}
	deadline := time.Now().Add(slice)
	for {
		v := atomic.LoadUint32(&r.Word)
		if v == 0 {
			if r.TryLock(pid, start) {
				return true, false, 0
			}
			continue
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		atomic.AddUint32(&r.Waiters, 1)
		err := FutexWait(&r.Word, v, left)
		atomic.AddUint32(&r.Waiters, ^uint32(0))
		if err == unix.ETIMEDOUT {
			break
		}
		if err != nil {
			return false, false, 0 // EINTR: let the caller look at signals
		}
	}
	if dead := r.Recover(pid, start); dead != 0 {
		return true, false, dead
	}
	return false, false, 0
}

// TryAcquire takes one unit if one is available (no holder bookkeeping).
func (s *SemRecord) TryAcquire() bool {
	for {
		c := atomic.LoadUint32(&s.Count)
		if c == 0 {
			return false
		}
		if atomic.CompareAndSwapUint32(&s.Count, c, c-1) {
			return true
		}
	}
}

// Release gives one unit back and wakes a sleeper.
func (s *SemRecord) Release() {
	atomic.AddUint32(&s.Count, 1)
	if atomic.LoadUint32(&s.Waiters) != 0 {
		FutexWake(&s.Count, 1)
	}
}

// SemWait takes one unit during at most slice (spinning first for up to
// spin; spun tells whether that got it). Holder bookkeeping is the
// caller's (it is done for the fast path too). At the end of a slice the
// holders are checked and the units of dead ones returned; dead names
// one of them.
func (s *SemRecord) SemWait(slice, spin time.Duration) (acquired, spun bool, dead uint32) {
	if spinUntil(spin, func() bool { return atomic.LoadUint32(&s.Count) != 0 && s.TryAcquire() }) {
		return true, true, 0
	}
	deadline := time.Now().Add(slice)
	for {
		if s.TryAcquire() {
			return true, false, 0
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		atomic.AddUint32(&s.Waiters, 1)
		err := FutexWait(&s.Count, 0, left)
		atomic.AddUint32(&s.Waiters, ^uint32(0))
		if err == unix.ETIMEDOUT {
			break
		}
		if err != nil {
			return false, false, 0
		}
	}
	dead = s.Recover()
	return s.TryAcquire(), false, dead
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
		if pid == 0 || pid == slotReclaiming {
			continue
		}
		if !ProcessDead(pid, atomic.LoadUint64(&h.Start)) {
			continue
		}
		if !atomic.CompareAndSwapUint32(&h.Pid, pid, slotReclaiming) {
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

// Took records that pid took one unit (done by the C fast path too).
func (s *SemRecord) Took(pid uint32, start uint64) {
	for i := range s.Holders {
		h := &s.Holders[i]
		if atomic.LoadUint32(&h.Pid) == pid && atomic.LoadUint64(&h.Start) == start {
			atomic.AddUint32(&h.Units, 1)
			return
		}
	}
	for i := range s.Holders {
		h := &s.Holders[i]
		if atomic.CompareAndSwapUint32(&h.Pid, 0, slotReclaiming) {
			atomic.StoreUint64(&h.Start, start)
			atomic.StoreUint32(&h.Units, 1)
			atomic.StoreUint32(&h.Pid, pid)
			return
		}
	}
	// table full: this unit is not tracked
}

// LockAt and SemAt view shared memory at p as a record.
func LockAt(p unsafe.Pointer) *LockRecord { return (*LockRecord)(p) }

// SemAt views shared memory at p as a semaphore record.
func SemAt(p unsafe.Pointer) *SemRecord { return (*SemRecord)(p) }

// OwnerDead reports whether the lock is held by a process that exited.
func (r *LockRecord) OwnerDead() bool {
	v := atomic.LoadUint32(&r.Word)
	return v != 0 && r.Dead(v)
}

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
