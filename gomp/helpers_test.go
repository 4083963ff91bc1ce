package gomp

import (
	"testing"

	"golang.org/x/sys/unix"
)

// newTestSegment makes a segment of size bytes that is closed when the test
// ends (closing it sooner is harmless: Close is idempotent).
func newTestSegment(t *testing.T, size int) *Segment {
	t.Helper()
	seg, err := NewSegment("test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	return seg
}

// newTestRing makes a ring (NewRing's arguments) that is closed when the
// test ends.
func newTestRing(t *testing.T, capacity, maxsize int) *Ring {
	t.Helper()
	r, err := NewRing(capacity, maxsize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dupFD returns a second descriptor of fd's file, as another process
// receives it.
func dupFD(t *testing.T, fd int) int {
	t.Helper()
	n, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
