package gomp

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A RingWatch makes a queue waitable with select/poll: it keeps an
// eventfd readable while the ring holds a message. The stdlib's queues are
// pipes, so code written for them waits on a queue's reader descriptor
// (concurrent.futures does, with multiprocessing.connection.wait).
//
// The watch is local to the process that asked for it and costs the
// queue's producers and consumers nothing: a goroutine sleeps on the ring's
// tail while the ring is empty and on its head while it is not, through
// the same waiters words (RingOffDataWait, RingOffSpaceWait) and futexes as
// the C side's sleepers, and sets or drains the eventfd as it finds the
// ring. The reader drains it itself after taking the last message (see
// queues.py), so its own gets never leave the descriptor readable on an
// empty ring; another process's get may, for a moment (as with the
// stdlib's pipe shared by several readers).
type RingWatch struct {
	r    *Ring
	fd   int
	stop atomic.Bool
	done chan struct{}
}

// ringWatchSlice bounds each sleep, so that a stop is seen even if no
// wake comes.
const ringWatchSlice = 200 * time.Millisecond

// Watch starts watching r; eventFD is signalled (written) while the ring
// holds a message and drained while it does not. The caller keeps
// ownership of eventFD and must Stop the watch before closing it.
func (r *Ring) Watch(eventFD int) *RingWatch {
	w := &RingWatch{r: r, fd: eventFD, done: make(chan struct{})}
	go w.run()
	return w
}

// Stop ends the watch and waits for its goroutine.
func (w *RingWatch) Stop() {
	if w.stop.Swap(true) {
		<-w.done
		return
	}
	// wake it wherever it sleeps
	w.r.Wake(RingOffTail, 1<<30)
	w.r.Wake(RingOffHead, 1<<30)
	<-w.done
}

func (w *RingWatch) run() {
	defer close(w.done)
	r := w.r
	tail := r.Seg.Word(RingOffTail) // the low words of the positions
	head := r.Seg.Word(RingOffHead)
	for !w.stop.Load() {
		if r.Load64(RingOffTail) != r.Load64(RingOffHead) {
			eventWrite(w.fd)
			// until a consumer moves the head (it wakes sleepers there)
			atomic.StoreUint32(r.Seg.Word(RingOffSpaceWait), 1)
			h := atomic.LoadUint32(head)
			if r.Load64(RingOffTail) == r.Load64(RingOffHead) {
				continue
			}
			WaitWord(head, h, ringWatchSlice)
			continue
		}
		var buf [8]byte
		unix.Read(w.fd, buf[:])
		// until a producer moves the tail
		atomic.StoreUint32(r.Seg.Word(RingOffDataWait), 1)
		t := atomic.LoadUint32(tail)
		if r.Load64(RingOffTail) != r.Load64(RingOffHead) {
			continue
		}
		WaitWord(tail, t, ringWatchSlice)
	}
}
