package gomp

import (
	"os/exec"
	"sync/atomic"
	"testing"
	"unsafe"
)

// The locks and semaphores themselves are C's (pybind/gomp/_gomp_sync.c,
// tested from Python); Go recovers what dead processes held.

func deadPid(t *testing.T) uint32 {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	return uint32(cmd.Process.Pid)
}

func newRecord(t *testing.T) unsafe.Pointer {
	return unsafe.Pointer(&newTestSegment(t, 4096).Mem[0])
}

// held makes the lock held by pid, as C takes it (liveness.go's steps 1-2).
func held(r *LockRecord, pid uint32, start uint64) {
	atomic.StoreUint32(&r.Word, pid)
	r.Record(pid, start)
}

func TestLockOfDeadOwnerIsRecovered(t *testing.T) {
	r := LockAt(newRecord(t))
	dead := deadPid(t)
	held(r, dead, 12345)
	pid, start := Self()
	if from := r.Recover(pid, start); from != dead {
		t.Fatalf("recovered from %d, want %d", from, dead)
	}
	if atomic.LoadUint32(&r.Word) != pid || atomic.LoadUint32(&r.Pid) != pid {
		t.Fatal("the lock does not name the new owner")
	}
}

func TestLockOfLiveOwnerIsNotTaken(t *testing.T) {
	r := LockAt(newRecord(t))
	if r.Recover(Self()) != 0 {
		t.Fatal("recovered a free lock")
	}
	pid, start := Self()
	held(r, pid, start)
	if r.Recover(pid, start) != 0 {
		t.Fatal("took a lock its live owner holds")
	}
	// a recycled pid: live process, other start time
	r.Record(pid, start+1)
	if r.Recover(pid, start) != pid {
		t.Fatal("did not recover a lock whose pid was reused")
	}
}

func TestSemaphoreRecoversUnitsOfDeadHolder(t *testing.T) {
	s := SemAt(newRecord(t))
	// both units of a Semaphore(2) taken by a process that died
	dead := deadPid(t)
	s.Initial = 2
	s.Holders[3] = SemHolder{Pid: dead, Units: 2}
	if from := s.Recover(); from != dead {
		t.Fatalf("recovered from %d, want %d", from, dead)
	}
	if c := atomic.LoadUint32(&s.Count); c != 2 {
		t.Fatalf("count %d after recovering 2", c)
	}
	if s.Holders[3] != (SemHolder{}) {
		t.Fatal("the dead holder's slot is not free")
	}
}

func TestSemaphoreRecoveryDoesNotInflateSignals(t *testing.T) {
	s := SemAt(newRecord(t))
	// Semaphore(0): a producer released, a consumer (now dead) took it
	s.Holders[0] = SemHolder{Pid: deadPid(t), Units: 1}
	if s.Recover() != 0 || atomic.LoadUint32(&s.Count) != 0 {
		t.Fatal("recovery made a unit out of nothing")
	}
}
