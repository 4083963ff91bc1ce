package gomp

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Ring is the shared memory behind a queue: a header page of counters,
// locks and futex words, then a byte ring of framed records. Go creates
// and maps it and provides the sleeping and waking; the copies in and out
// are done by the C extension on the same mapping (a call into Go per
// message would cost more than the copy). The layout below is the contract
// between the two; C and Python get it from the files go generate writes
// (see doc.go).
//
// Records are frames: a 16-byte header {len, flags, writer pid, 0} and len
// bytes of payload, padded to 8. A message is one or more frames, the first
// flagged RingFirst, the last RingLast. Frames never cross the end of the
// ring: a wrap marker (8 bytes: len 0, flags RingWrap) sends the reader to
// the start. Positions (head, tail) are 64-bit byte counts that only grow.
// A message starts with its own header (part count, kind, part lengths):
// a pickle and its out-of-band buffers, a raw bytes-like, or a marshalled
// small object (Msg*).
//
// Commit protocol: one producer at a time holds the producer lock (word =
// its pid, high bit = waiters) and publishes a frame by advancing tail after
// copying it, so a writer that dies mid-copy leaves nothing visible. A
// writer that dies between frames of one message leaves a partial message:
// the reader drops it when the next frame is a RingFirst, or when the
// writer no longer holds the producer lock (it died, or gave the message
// up). Likewise one consumer at a time holds the consumer lock and
// advances head after copying a frame out, so a consumer that dies
// mid-copy leaves the frame to the next one; frames of a message whose
// first frame was taken by a dead consumer are skipped.
//
// Each lock is a Holder (liveness.go): the word, then the holder's pid and
// start time, recorded after the word is taken and cleared before it is
// released. A lock whose holder died (ProcessDead: gone, a zombie, or its
// pid reused) is taken over by the next process that waits for it.
const (
	RingMagic   = 0x676f6d70 // "gomp"
	RingVersion = 2          // 2: holder records beside the locks

	RingOffMagic     = 0   // u32 magic, u32 version
	RingOffCapacity  = 8   // u64 bytes in the ring
	RingOffMaxsize   = 16  // u64 maximum number of messages, 0: none
	RingOffData      = 24  // u64 offset of the ring from the segment start
	RingOffPLock     = 64  // Holder (16 bytes): producer lock, holder pid, start
	RingOffTail      = 128 // u64 write position; futex on its low word
	RingOffDataWait  = 140 // u32 1: consumers sleep on the tail
	RingOffPuts      = 144 // u64 messages put (or slots taken)
	RingOffCLock     = 192 // Holder (16 bytes): consumer lock, holder pid, start
	RingOffHead      = 256 // u64 read position; futex on its low word
	RingOffSpaceWait = 268 // u32 1: producers sleep on the head
	RingOffGets      = 272 // u64 messages taken (qsize = puts - gets)
	RingOffTasks     = 384 // u32 unfinished tasks (JoinableQueue), futex
	RingOffTaskWait  = 388 // u32 joiners sleeping on Tasks
	RingOffWatches   = 448 // u32 ring watches open on this ring, in any process
	RingOffWatchSeen = 456 // u64 the tail up to which a watch has signalled
	RingHeaderSize   = 4096

	RingFrameHeader = 16
	RingFirst       = 1
	RingLast        = 2
	RingWrap        = 4

	// the bit a lock word adds to its holder's pid while someone sleeps on
	// it; pids fit in 22 bits
	RingLockWaiters = 1 << 31
)

// Message kinds (a message header's kind) and limits, shared by the C
// encoder and decoder and the Python one (queues.py).
const (
	MsgPickle        = 0 // a pickle, then its out-of-band buffers
	MsgRawBytes      = 1 // a bytes put as it is (part 1; part 0 is empty)
	MsgRawBytearray  = 2 // likewise a bytearray
	MsgRawMemoryview = 3 // likewise a memoryview
	// a small object made only of core types, marshalled (part 0): its
	// encoding is several times cheaper than a pickle's
	MsgMarshal = 4

	MsgMaxParts = 64 // parts of a message: a pickle and its buffers
	// top-level bytes and bytearrays at least this long travel raw
	MsgRawMin = 32 << 10
)

// Positions and counters sit on the cache line of the side that writes
// them, so that a put and a get share as few lines as possible.

// Ring is a queue's shared segment.
type Ring struct {
	Seg *Segment
}

// NewRing creates a ring of capacity bytes (rounded up to pages) for at
// most maxsize messages (0: unbounded).
func NewRing(capacity, maxsize int) (*Ring, error) {
	if capacity < 65536 {
		capacity = 65536
	}
	page := os.Getpagesize()
	capacity = (capacity + page - 1) / page * page
	if maxsize < 0 {
		maxsize = 0
	}
	seg, err := NewSegment("queue", RingHeaderSize+capacity)
	if err != nil {
		return nil, err
	}
	r := &Ring{Seg: seg}
	r.store64(RingOffCapacity, uint64(capacity))
	r.store64(RingOffMaxsize, uint64(maxsize))
	r.store64(RingOffData, RingHeaderSize)
	atomic.StoreUint32(seg.Word(RingOffMagic+4), RingVersion)
	atomic.StoreUint32(seg.Word(RingOffMagic), RingMagic)
	return r, nil
}

// MapRing maps a ring from a descriptor received from another process; it
// takes ownership of fd.
func MapRing(fd int) (*Ring, error) {
	seg, err := MapSegment(fd)
	if err != nil {
		return nil, err
	}
	r := &Ring{Seg: seg}
	if len(seg.Mem) < RingHeaderSize ||
		atomic.LoadUint32(seg.Word(RingOffMagic)) != RingMagic ||
		atomic.LoadUint32(seg.Word(RingOffMagic+4)) != RingVersion ||
		uint64(len(seg.Mem)) < RingHeaderSize+r.Capacity() {
		seg.Close()
		return nil, fmt.Errorf("descriptor %d is not a gomp queue: %w", fd, unix.EINVAL)
	}
	return r, nil
}

func (r *Ring) word64(off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&r.Seg.Mem[off]))
}

func (r *Ring) store64(off int, v uint64) { atomic.StoreUint64(r.word64(off), v) }

// Load64 reads a 64-bit header field (RingOff*).
func (r *Ring) Load64(off int) uint64 { return atomic.LoadUint64(r.word64(off)) }

// Lock is the producer (RingOffPLock) or consumer (RingOffCLock) lock.
func (r *Ring) Lock(off int) *Holder { return HolderAt(unsafe.Pointer(&r.Seg.Mem[off])) }

// Capacity is the number of bytes in the ring.
func (r *Ring) Capacity() uint64 { return r.Load64(RingOffCapacity) }

// Base is the start of the mapping, for the C side.
func (r *Ring) Base() unsafe.Pointer { return unsafe.Pointer(&r.Seg.Mem[0]) }

// Wait sleeps while the header word at off holds val, for at most timeout
// (negative: forever). It reports whether it was woken or found the value
// changed (true) rather than timed out or interrupted (false).
func (r *Ring) Wait(off int, val uint32, timeout time.Duration) (bool, error) {
	return WaitWord(r.Seg.Word(off), val, timeout)
}

// Wake wakes up to n sleepers on the header word at off.
func (r *Ring) Wake(off int, n int) (int, error) {
	return FutexWake(r.Seg.Word(off), n)
}

// Close unmaps the ring and closes its descriptor.
func (r *Ring) Close() error { return r.Seg.Close() }

// WaitWord is FutexWait that folds timeouts and signals into false.
func WaitWord(addr *uint32, val uint32, timeout time.Duration) (bool, error) {
	switch err := FutexWait(addr, val, timeout); {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, unix.EINTR):
		return false, nil
	default:
		return false, err
	}
}
