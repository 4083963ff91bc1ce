package gomp

import (
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// liveChild starts a process that sleeps until the test ends and returns
// its pid and start time.
func liveChild(t *testing.T) (uint32, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	start, _, ok := procStat(pid)
	if !ok {
		t.Fatal("no /proc entry for a running child")
	}
	return uint32(pid), start
}

func TestProcessDead(t *testing.T) {
	pid, start := Self()
	if ProcessDead(pid, start) || ProcessDead(pid, 0) {
		t.Fatal("this process is dead?")
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	child := uint32(cmd.Process.Pid)
	cstart, _, _ := procStat(int(child))
	if ProcessDead(child, cstart) || ProcessDead(child, 0) {
		t.Fatal("running child reported dead")
	}
	// its pid with another start time: a process that reused the pid
	if !ProcessDead(child, cstart+1) {
		t.Fatal("a recycled pid reported as the recorded process")
	}
	cmd.Process.Kill()
	// a killed, unreaped child is a zombie: dead for lock recovery
	deadline := time.Now().Add(5 * time.Second)
	for !ProcessDead(child, cstart) {
		if time.Now().After(deadline) {
			t.Fatal("zombie reported alive")
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Wait()
	if !ProcessDead(child, cstart) || !ProcessDead(child, 0) {
		t.Fatal("reaped child reported alive")
	}
	if ProcessDead(0, 0) {
		t.Fatal("no holder reported as a dead one")
	}
}

func newHolder(t *testing.T) *Holder {
	return HolderAt(unsafe.Pointer(&newTestSegment(t, 4096).Mem[0]))
}

func TestHolderWithRecycledPidIsDead(t *testing.T) {
	h := newHolder(t)
	pid, start := liveChild(t)
	// the word names a live process, but the record says the holder
	// started at another time: the holder died and its pid was reused
	atomic.StoreUint32(&h.Word, pid|RingLockWaiters)
	h.Record(pid, start+100)
	if !h.Dead(atomic.LoadUint32(&h.Word)) || h.LiveHolder() != 0 {
		t.Fatal("a lock whose holder's pid was reused is held by a live process")
	}
	// the holder itself
	h.Record(pid, start)
	if h.Dead(atomic.LoadUint32(&h.Word)) || h.LiveHolder() != pid {
		t.Fatal("a live holder reported dead")
	}
	// not recorded yet (taken an instant ago): only the pid is tested
	atomic.StoreUint32(&h.Pid, 0)
	if h.Dead(atomic.LoadUint32(&h.Word)) {
		t.Fatal("a holder that has not recorded itself yet reported dead")
	}
	// a record left by the dead holder another process just took over
	// from is not the new holder's
	atomic.StoreUint32(&h.Word, pid)
	h.Record(deadPid(t), 12345)
	if h.Dead(pid) {
		t.Fatal("judged the new holder by the record of the one it replaced")
	}
}

func TestHolderDiedBeforeRecordingIsDead(t *testing.T) {
	// killed between its compare-and-swap and its record: the pid alone
	// shows it dead
	h := newHolder(t)
	dead := deadPid(t)
	atomic.StoreUint32(&h.Word, dead)
	if !h.Dead(dead) {
		t.Fatal("a holder that died before recording itself is alive")
	}
	h.Record(dead, 999)
	if !h.Dead(dead) {
		t.Fatal("a recorded holder that died is alive")
	}
}

func TestRingLockOfRecycledPidIsTakenOver(t *testing.T) {
	r := newTestRing(t, 0, 0)
	pid, start := liveChild(t)
	for _, off := range []int{RingOffPLock, RingOffCLock} {
		l := r.Lock(off)
		atomic.StoreUint32(&l.Word, pid)
		l.Record(pid, start)
		if l.LiveHolder() != pid {
			t.Fatal("a live holder of a ring lock reported dead")
		}
		l.Record(pid, start^1)
		if l.LiveHolder() != 0 {
			t.Fatal("a ring lock whose holder's pid was reused is held")
		}
	}
}

// The pipe's writer lock names a thread; its record, the thread's process.
func TestPipeWriterLockOfDeadThreadIsTakenOver(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b, a := newTestPipe(t, false, 1<<16) // reader, writer
	w := a.out
	pid, start := liveChild(t)
	me, mystart := Self()
	cases := []struct {
		name              string
		tid, rpid         uint32
		rstart            uint64
		dead              bool
		recordedForOthers bool
	}{
		{"live holder", pid, pid, start, false, false},
		{"pid reused", pid, pid, start + 1, true, false},
		{"thread not of the recorded process", pid, me, mystart, true, false},
		{"not recorded yet, live", pid, 0, 0, false, true},
	}
	for _, c := range cases {
		atomic.StoreUint32(w.lock, c.tid)
		atomic.StoreUint64(w.writerStart, c.rstart)
		atomic.StoreUint32(w.writerPid, c.rpid)
		tid := c.tid
		if c.recordedForOthers {
			tid = 0
		}
		atomic.StoreUint32(w.writerTid, tid)
		got := w.tryLockWriter()
		if got != c.dead {
			t.Fatalf("%s: took the lock: %v, want %v", c.name, got, c.dead)
		}
		if got {
			if atomic.LoadUint32(w.writerTid) != uint32(unix.Gettid()) ||
				atomic.LoadUint32(w.writerPid) != me {
				t.Fatalf("%s: the new holder did not record itself", c.name)
			}
			w.unlockWriter()
			if atomic.LoadUint32(w.lock) != 0 || atomic.LoadUint32(w.writerTid) != 0 {
				t.Fatalf("%s: unlock left the lock or its record", c.name)
			}
		}
	}
	// a zombie holder (killed, not reaped) is dead too
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	zpid := uint32(cmd.Process.Pid)
	cmd.Process.Kill()
	defer cmd.Wait()
	for {
		if _, st, ok := procStat(int(zpid)); !ok || st == 'Z' {
			break
		}
		time.Sleep(time.Millisecond)
	}
	atomic.StoreUint32(w.lock, zpid)
	atomic.StoreUint32(w.writerTid, 0)
	if !w.tryLockWriter() {
		t.Fatal("a lock held by a zombie thread was not taken over")
	}
	w.unlockWriter()
	// and the pipe still works
	go func() { send(t, a, []byte("through")) }()
	if got, _, err := recv(t, b); err != nil || string(got) != "through" {
		t.Fatalf("got %q, %v", got, err)
	}
}
