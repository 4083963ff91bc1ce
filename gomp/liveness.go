package gomp

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Liveness: one rule decides whether the holder of something shared (a
// queue's producer or consumer lock, a Lock or RLock, a semaphore's units,
// a pipe's writer lock) is dead, so that the next process takes it over:
// ProcessDead(pid, start). A pid alone is not enough: once the holder is
// reaped its pid may be given to a new process, which would keep the
// lock "alive" for ever. The start time (field 22 of /proc/<pid>/stat,
// clock ticks since boot) tells the two apart. A zombie counts as dead.
//
// A lock word still names its holder by pid (a pipe's by thread id): the
// compare-and-swap that takes the lock must name the holder, and it works
// on 32 bits. The holder records itself beside the word (a Holder, or the
// pipe's record, see pipe.go), in this order:
//
//  1. take: CAS the word from 0, or from a dead holder's value, to the id;
//  2. record: store Start, then the record's id (last: it publishes);
//  3. release: clear the record's id, then the word.
//
// So a record whose id equals the word's was written by the holder the
// word names (a holder that died leaves its record for the one taking
// over, which rewrites it after its CAS). A holder that dies at any
// instant leaves either a free word, or a word naming it with its own
// record (the full test applies), or with a record not (yet, or no
// longer) its own: then only the id can be tested (gone, or a zombie).
// That last case needs a death in the few instructions between steps 1
// and 2 (or 3 and the word's release) and, to go wrong, the pid reused
// before a waiter looks. What the word cannot tell apart is two holders
// with one pid: a waiter that judged a dead holder P and a process that
// was given P and took the lock meanwhile (in the microseconds the judging
// takes) both hold it. Telling them apart would need more than the pid in
// the word.

var (
	selfOnce  sync.Once
	selfPid   uint32
	selfStart uint64
)

// Self returns this process's pid and start time, the identity written
// into the records of what it holds.
func Self() (uint32, uint64) {
	selfOnce.Do(func() {
		selfPid = uint32(os.Getpid())
		selfStart, _, _ = procStat(int(selfPid))
	})
	return selfPid, selfStart
}

// procStat reads the state letter and start time of a process (or a
// thread: /proc/<tid> exists for every thread) from /proc/<pid>/stat; ok
// is false when there is no such process.
func procStat(pid int) (start uint64, state byte, ok bool) {
	// raw system calls: os.ReadFile would start Go's poller (an epoll and
	// an eventfd kept for the life of the process) for one small read
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, false
	}
	var buf [2048]byte // a stat line is about 300 bytes, 1100 at most
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			break
		}
		n += k
	}
	unix.Close(fd)
	data := buf[:n]
	// the command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(data[i+1:])
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19]
	if len(fields) < 20 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return start, fields[0][0], true
}

// ProcessDead reports whether the process recorded as (pid, start) has
// exited: no such pid, a zombie, or the pid reused by a process that
// started at another time. start 0 means unknown: only the first two
// tests apply.
func ProcessDead(pid uint32, start uint64) bool {
	if pid == 0 {
		return false
	}
	if err := unix.Kill(int(pid), 0); err == unix.ESRCH {
		return true
	}
	st, state, ok := procStat(int(pid))
	if !ok {
		// gone between the two looks, or /proc hidden: trust kill
		return unix.Kill(int(pid), 0) == unix.ESRCH
	}
	if state == 'Z' || state == 'X' {
		return true
	}
	return start != 0 && st != start
}

// A Holder is a lock word followed by its holder's record (16 bytes,
// 8-aligned): a LockRecord starts with one, and each of a ring's two
// locks is one (RingOffPLock, RingOffCLock). C takes and releases them
// (gomp_holder_take in pybind/gomp/_gomp.h) at the generated offsets.
type Holder struct {
	Word  uint32 // 0: free; else the holder's pid (| RingLockWaiters on a ring)
	Pid   uint32 // the holder's pid once recorded; 0 before and after
	Start uint64 // the holder's start time
}

// HolderAt views shared memory at p (8-aligned) as a Holder.
func HolderAt(p unsafe.Pointer) *Holder { return (*Holder)(p) }

// Record writes the record of a holder that just took the word (step 2).
func (h *Holder) Record(pid uint32, start uint64) {
	atomic.StoreUint64(&h.Start, start)
	atomic.StoreUint32(&h.Pid, pid)
}

// Dead reports whether the holder named by word value v has exited.
func (h *Holder) Dead(v uint32) bool {
	id := v &^ RingLockWaiters
	return recordedDead(id, &h.Pid, &h.Pid, &h.Start)
}

// LiveHolder returns the pid of the live process holding the lock, or 0
// when it is free or its holder died.
func (h *Holder) LiveHolder() uint32 {
	v := atomic.LoadUint32(&h.Word)
	if v == 0 || h.Dead(v) {
		return 0
	}
	return v &^ RingLockWaiters
}

// recordedDead applies the rule to the holder a lock word names by id (a
// pid, or a thread id) with the record beside the word: recID is the id
// the record was written for, recPid and recStart the holder's process.
// For a thread id, the thread must also still be one of that process's.
func recordedDead(id uint32, recID, recPid *uint32, recStart *uint64) bool {
	if id == 0 {
		return false
	}
	if atomic.LoadUint32(recID) == id {
		pid, start := atomic.LoadUint32(recPid), atomic.LoadUint64(recStart)
		// still the same record: a release and a new holder in between
		// would have cleared or changed its id before its start
		if atomic.LoadUint32(recID) == id {
			if ProcessDead(pid, start) {
				return true
			}
			return pid != id && unix.Tgkill(int(pid), int(id), unix.Signal(0)) == unix.ESRCH
		}
	}
	return ProcessDead(id, 0)
}
