package gomp

import (
	"os"
	"strconv"
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
// wake comes. GOMP_RING_WATCH_SLICE_MS sets it for tests, where a missed
// wake-up must show as a stall rather than as a short delay.
var ringWatchSlice = func() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv("GOMP_RING_WATCH_SLICE_MS")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 200 * time.Millisecond
}()

// Watch starts watching r; eventFD is signalled (written) while the ring
// holds a message and drained while it does not. The caller keeps
// ownership of eventFD and must Stop the watch before closing it.
func (r *Ring) Watch(eventFD int) *RingWatch {
	w := &RingWatch{r: r, fd: eventFD, done: make(chan struct{})}
	// producers that exit wait for open watches to have signalled their
	// last message (see RingOffWatchSeen and the C side's exit_settle)
	atomic.AddUint32(r.Seg.Word(RingOffWatches), 1)
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
	atomic.AddUint32(w.r.Seg.Word(RingOffWatches), ^uint32(0))
}

func (w *RingWatch) run() {
	defer close(w.done)
	r := w.r
	tail := r.Seg.Word(RingOffTail) // the low words of the positions
	head := r.Seg.Word(RingOffHead)
	for !w.stop.Load() {
		// The word to sleep on is read before the waiters word is set: the
		// side that moves it after that finds the waiters word set and
		// wakes us, or our sleep finds it moved already. (Read after, it
		// could take in a move whose wake came before we slept, and that
		// wake cleared the waiters word, so the next move would not wake
		// us.)
		h, t := atomic.LoadUint32(head), atomic.LoadUint32(tail)
		if tail64 := r.Load64(RingOffTail); tail64 != r.Load64(RingOffHead) {
			// until a consumer moves the head
			atomic.StoreUint32(r.Seg.Word(RingOffSpaceWait), 1)
			if r.Load64(RingOffTail) == r.Load64(RingOffHead) {
				continue
			}
			// signalled only now that the ring is known to hold a message
			// past the head we sleep on: a reader that takes the last
			// message drains the eventfd, and a signal written earlier
			// could be drained with it although a newer message waits
			eventWrite(w.fd)
			// what has been signalled: a producer's message up to here may
			// be followed by its exit (concurrent.futures takes a worker's
			// exit that comes before its last result for a crash)
			seen := r.word64(RingOffWatchSeen)
			for old := atomic.LoadUint64(seen); old < tail64 &&
				!atomic.CompareAndSwapUint64(seen, old, tail64); old = atomic.LoadUint64(seen) {
			}
			WaitWord(head, h, ringWatchSlice)
			continue
		}
		var buf [8]byte
		unix.Read(w.fd, buf[:])
		// until a producer moves the tail
		atomic.StoreUint32(r.Seg.Word(RingOffDataWait), 1)
		if r.Load64(RingOffTail) != r.Load64(RingOffHead) {
			continue
		}
		WaitWord(tail, t, ringWatchSlice)
	}
}
