package gomp

import (
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func deadPid(t *testing.T) uint32 {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	return uint32(cmd.Process.Pid)
}

func newRecords(t *testing.T) (*Segment, *Segment) {
	a, err := NewSegment("test", 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MapSegment(dupFD(t, a.FD))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func dupFD(t *testing.T, fd int) int {
	nfd, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	return nfd
}

func TestLockMutualExclusion(t *testing.T) {
	a, b := newRecords(t)
	recs := []*LockRecord{LockAt(unsafe.Pointer(&a.Mem[0])), LockAt(unsafe.Pointer(&b.Mem[0]))}
	pid, start := Self()
	var inside, total int32
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(r *LockRecord) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				for !r.TryLock(pid, start) {
					if ok, _, _ := r.LockWait(pid, start, 20*time.Millisecond, time.Microsecond); ok {
						break
					}
				}
				if atomic.AddInt32(&inside, 1) != 1 {
					t.Error("two holders at once")
				}
				total++
				atomic.AddInt32(&inside, -1)
				r.Unlock()
			}
		}(recs[g%2])
	}
	wg.Wait()
	if total != 8000 {
		t.Fatalf("total %d", total)
	}
}

func TestLockOfDeadOwnerIsRecovered(t *testing.T) {
	a, _ := newRecords(t)
	r := LockAt(unsafe.Pointer(&a.Mem[0]))
	dead := deadPid(t)
	if !r.TryLock(dead, 12345) {
		t.Fatal("fresh lock not free")
	}
	pid, start := Self()
	ok, _, from := r.LockWait(pid, start, 10*time.Millisecond, 0)
	if !ok || from != dead {
		t.Fatalf("got %v from %d, want recovery from %d", ok, from, dead)
	}
	if atomic.LoadUint32(&r.Word) != pid {
		t.Fatal("word does not name the new owner")
	}
}

func TestLockOfLiveOwnerIsNotTaken(t *testing.T) {
	a, _ := newRecords(t)
	r := LockAt(unsafe.Pointer(&a.Mem[0]))
	pid, start := Self()
	r.TryLock(pid, start)
	if ok, _, _ := r.LockWait(pid, start, 10*time.Millisecond, 0); ok {
		t.Fatal("took a lock its live owner holds")
	}
	// a recycled pid: live process, other start time
	r.Record(pid, start+1)
	if ok, _, from := r.LockWait(pid, start, 10*time.Millisecond, 0); !ok || from != pid {
		t.Fatal("did not recover a lock whose pid was reused")
	}
}

func TestSemaphoreRecoversUnitsOfDeadHolder(t *testing.T) {
	a, _ := newRecords(t)
	s := SemAt(unsafe.Pointer(&a.Mem[0]))
	s.Initial, s.Count = 2, 2
	dead := deadPid(t)
	for i := 0; i < 2; i++ {
		if !s.TryAcquire() {
			t.Fatal("no unit")
		}
		s.Took(dead, 0)
	}
	ok, _, from := s.SemWait(10*time.Millisecond, 0)
	if !ok || from != dead {
		t.Fatalf("got %v from %d", ok, from)
	}
	if c := atomic.LoadUint32(&s.Count); c != 1 {
		t.Fatalf("count %d after recovering 2 and taking 1", c)
	}
}

func TestSemaphoreRecoveryDoesNotInflateSignals(t *testing.T) {
	a, _ := newRecords(t)
	s := SemAt(unsafe.Pointer(&a.Mem[0]))
	// Semaphore(0): a producer released, a consumer (now dead) took it
	s.Release()
	s.TryAcquire()
	s.Took(deadPid(t), 0)
	if ok, _, _ := s.SemWait(10*time.Millisecond, 0); ok {
		t.Fatal("recovery made a unit out of nothing")
	}
}

func TestSemWaitWakes(t *testing.T) {
	a, b := newRecords(t)
	s1, s2 := SemAt(unsafe.Pointer(&a.Mem[0])), SemAt(unsafe.Pointer(&b.Mem[0]))
	done := make(chan bool)
	go func() {
		ok, _, _ := s1.SemWait(time.Second, 0)
		done <- ok
	}()
	time.Sleep(5 * time.Millisecond)
	s2.Release()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("woken without a unit")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not woken")
	}
}

func TestRecordLayout(t *testing.T) {
	// mirrored in pybind/gomp/_gomp_sync.c and gomp/heap.py (REFS)
	if unsafe.Sizeof(LockRecord{}) != 64 || unsafe.Offsetof(LockRecord{}.Refs) != 60 ||
		unsafe.Offsetof(LockRecord{}.Waiters) != 32 {
		t.Fatal("LockRecord layout changed")
	}
	if unsafe.Offsetof(SemRecord{}.Refs) != 60 || unsafe.Offsetof(SemRecord{}.Holders) != 64 ||
		unsafe.Sizeof(SemRecord{}) != 64+SemSlots*16 {
		t.Fatal("SemRecord layout changed")
	}
}
