package gomp

import (
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestRingCreateAndMap(t *testing.T) {
	r := newTestRing(t, 1000, 5)
	if r.Capacity() < 65536 || r.Capacity()%uint64(os.Getpagesize()) != 0 {
		t.Fatalf("capacity %d", r.Capacity())
	}
	if r.Load64(RingOffMaxsize) != 5 {
		t.Fatalf("maxsize %d", r.Load64(RingOffMaxsize))
	}
	m, err := MapRing(dupFD(t, r.Seg.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	atomic.StoreUint32(r.Seg.Word(RingOffTasks), 3)
	if got := atomic.LoadUint32(m.Seg.Word(RingOffTasks)); got != 3 {
		t.Fatalf("second mapping sees %d", got)
	}
}

func TestMapRingRejectsOtherSegments(t *testing.T) {
	seg := newTestSegment(t, 8192)
	fd := dupFD(t, seg.FD)
	seg.Close()
	if _, err := MapRing(fd); err == nil {
		t.Fatal("mapped a segment that is not a ring")
	}
}

func TestRingWaitWake(t *testing.T) {
	r := newTestRing(t, 0, 0)
	ok, err := r.Wait(RingOffTail, 0, 10*time.Millisecond)
	if ok || err != nil {
		t.Fatalf("want a timeout, got %v %v", ok, err)
	}
	done := make(chan bool)
	go func() {
		ok, _ := r.Wait(RingOffTail, 0, 5*time.Second)
		done <- ok
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(time.Millisecond)
		atomic.AddUint32(r.Seg.Word(RingOffTail), 1)
		if _, err := r.Wake(RingOffTail, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("woken waiter reported a timeout")
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("waiter never woke")
		}
	}
}
