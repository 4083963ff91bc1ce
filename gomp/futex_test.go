package gomp

import (
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFutexWaitTimesOut(t *testing.T) {
	seg := newTestSegment(t, 4096)
	start := time.Now()
	if err := FutexWait(seg.Word(0), 0, 20*time.Millisecond); err != unix.ETIMEDOUT {
		t.Fatalf("want ETIMEDOUT, got %v", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond || d > time.Second {
		t.Fatalf("waited %v for a 20ms timeout", d)
	}
}

func TestFutexWaitReturnsWhenValueDiffers(t *testing.T) {
	seg := newTestSegment(t, 4096)
	atomic.StoreUint32(seg.Word(4), 7)
	if err := FutexWait(seg.Word(4), 6, time.Second); err != nil {
		t.Fatalf("want immediate return, got %v", err)
	}
}

func TestFutexWakeAcrossMappings(t *testing.T) {
	// two mappings of one memfd stand for two processes
	a := newTestSegment(t, 4096)
	b, err := MapSegment(dupFD(t, a.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		for atomic.LoadUint32(b.Word(8)) == 0 {
			if err := FutexWait(b.Word(8), 0, 5*time.Second); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(10 * time.Millisecond)
	atomic.StoreUint32(a.Word(8), 1)
	if _, err := FutexWake(a.Word(8), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter was not woken")
	}
}

func TestSegmentRejectsBadSizes(t *testing.T) {
	if _, err := NewSegment("test", 0); err == nil {
		t.Fatal("size 0 accepted")
	}
	if _, err := NewSegment("test", -5); err == nil {
		t.Fatal("negative size accepted")
	}
}
