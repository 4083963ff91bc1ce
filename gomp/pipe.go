package gomp

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A pipe carries messages between two processes through shared memory: one
// memfd segment holds a single-producer single-consumer byte ring per
// direction. Copying into and out of the ring needs no system call. The
// steps here never wait: a side that must wait for the other (for a
// message, for room, for the writer lock) is the C extension's caller,
// which spins briefly and then sleeps on a futex (pybind/gomp/_gomp_connection.c,
// pipe_wait); it announces the sleep in a flag of the control block, and
// the side that moves the position it sleeps on clears the flag and wakes
// it (publish, consume). Sleeping in C, not in Go, is what makes a blocked
// receive cheap: a call into Go by a thread that was idle costs 20 us
// (ARCHITECTURE.md).
//
// Besides the segment, the two ends share
//   - a Unix socketpair, one socket per end: its hang-up tells an end that
//     every copy of the other end is closed (or its processes died), and it
//     carries descriptors sent with a message (SCM_RIGHTS);
//   - an eventfd per ring, written by the ring's writer only once the
//     reader asked for it (Fileno), so that select/poll on an end reports a
//     waiting message without costing a system call per message otherwise.
//
// The segment's header counts the open copies of each end (side 0 reads
// ring 0); an end pickled for another process is counted when pickled
// (Reserve), so that a copy on its way keeps the end open. A send to an end
// whose count is 0 fails at once; a copy in a process that died is not
// uncounted, and is detected by the socket's hang-up when a side waits.
//
// A message is an 8-byte little-endian header (payload length in the low
// 56 bits, number of descriptors sent on the socket in the high 8) followed
// by the payload. Payloads larger than the ring stream through it.

const (
	pipeMagic     = 0x676f6d70 // "gomp"
	pipeHeaderLen = 4096
	// DefaultRingSize is the capacity of each direction's ring. Measured
	// with 64 MiB messages on a 2-core VM (benchmarks/run.py): 256 KiB
	// moved 1.7 GB/s, 512 KiB 2.1, 1 MiB 2.3, 2 MiB 1.9 (the ring no longer
	// stays in cache). Pages are touched only as far as messages fill it.
	DefaultRingSize = 1 << 20
)

// The message header: payload length below PipeFDsShift, descriptors above.
const (
	PipeMsgHeader = 8
	PipeFDsShift  = 56
	PipeMaxMsgLen = 1<<PipeFDsShift - 1
)

// Ring i's control block starts at pipeRingCtl + i*pipeRingCtlSize in the
// segment, with these fields, the writer's and the reader's on separate
// cache lines.
const (
	pipeRingCtl     = 64
	pipeRingCtlSize = 256

	PipeOffTail           = 0   // uint64, written by the writer
	PipeOffReaderSleeping = 8   // uint32, a reader sleeps on tail's low word (the writer clears it)
	PipeOffWantFD         = 12  // uint32, the reader wants the eventfd written
	PipeOffSignaled       = 16  // uint32, the eventfd holds a count
	PipeOffHead           = 64  // uint64, written by the reader
	PipeOffWriterSleeping = 72  // uint32, a writer sleeps on head's low word (the reader clears it)
	PipeOffWriterLock     = 128 // uint32, thread id of the writer of a message, 0: none
	PipeOffLockWaiters    = 132 // uint32, a writer sleeps on the lock (its holder clears it)
	PipeOffWriterTid      = 136 // uint32, the writer's record (liveness.go): its thread id,
	PipeOffWriterPid      = 140 // uint32, its process,
	PipeOffWriterStart    = 144 // uint64, and that process's start time

	offOpen = 16 // uint32 per side in the segment header: open copies
)

// ErrPeerClosed is returned when every copy of the other end is closed.
var ErrPeerClosed = errors.New("gomp: the other end of the pipe is closed")

type pipeRing struct {
	ctl                                              unsafe.Pointer // the control block
	tail, head                                       *uint64
	readerSleeping, wantFD, signaled, writerSleeping *uint32
	lock, lockWaiters                                *uint32
	writerTid, writerPid                             *uint32
	writerStart                                      *uint64
	data                                             []byte
	size                                             uint64
	eventFD                                          int
}

func newPipeRing(seg *Segment, i int, size uint64, eventFD int) *pipeRing {
	base := pipeRingCtl + i*pipeRingCtlSize
	w := func(off int) *uint32 { return seg.Word(base + off) }
	return &pipeRing{
		ctl:            unsafe.Pointer(&seg.Mem[base]),
		tail:           (*uint64)(unsafe.Pointer(&seg.Mem[base+PipeOffTail])),
		head:           (*uint64)(unsafe.Pointer(&seg.Mem[base+PipeOffHead])),
		readerSleeping: w(PipeOffReaderSleeping),
		wantFD:         w(PipeOffWantFD),
		signaled:       w(PipeOffSignaled),
		writerSleeping: w(PipeOffWriterSleeping),
		lock:           w(PipeOffWriterLock),
		lockWaiters:    w(PipeOffLockWaiters),
		writerTid:      w(PipeOffWriterTid),
		writerPid:      w(PipeOffWriterPid),
		writerStart:    (*uint64)(unsafe.Pointer(&seg.Mem[base+PipeOffWriterStart])),
		data:           seg.Mem[pipeHeaderLen+i*int(size) : pipeHeaderLen+(i+1)*int(size)],
		size:           size,
		eventFD:        eventFD,
	}
}

// futex words: the low 32 bits of the 64-bit positions (little-endian)
func low(p *uint64) *uint32 { return (*uint32)(unsafe.Pointer(p)) }

func (r *pipeRing) used() uint64 { return atomic.LoadUint64(r.tail) - atomic.LoadUint64(r.head) }

// put copies p into the ring at position pos (wrapping).
func (r *pipeRing) put(pos uint64, p []byte) {
	off := pos % r.size
	n := copy(r.data[off:], p)
	copy(r.data, p[n:])
}

// get copies from the ring at position pos into p (wrapping).
func (r *pipeRing) get(pos uint64, p []byte) {
	off := pos % r.size
	n := copy(p, r.data[off:])
	copy(p[n:], r.data)
}

// wakeSleepers wakes whoever sleeps on word after announcing it in
// sleeping (see pipe_wait in C: it reads word before it sets the flag).
func wakeSleepers(sleeping, word *uint32) {
	if atomic.LoadUint32(sleeping) != 0 {
		atomic.StoreUint32(sleeping, 0)
		FutexWake(word, 1<<30)
	}
}

// publish makes the writer's bytes up to tail visible and wakes the reader
// if it sleeps or asked for the eventfd.
func (r *pipeRing) publish(tail uint64) {
	atomic.StoreUint64(r.tail, tail)
	wakeSleepers(r.readerSleeping, low(r.tail))
	if atomic.LoadUint32(r.wantFD) != 0 && atomic.CompareAndSwapUint32(r.signaled, 0, 1) {
		eventWrite(r.eventFD)
	}
}

// consume frees the reader's bytes up to head and wakes a sleeping writer.
func (r *pipeRing) consume(head uint64) {
	atomic.StoreUint64(r.head, head)
	wakeSleepers(r.writerSleeping, low(r.head))
	if atomic.LoadUint32(r.signaled) != 0 && r.used() == 0 {
		r.drain()
	}
}

// drain empties the eventfd once the ring is empty, keeping "the eventfd
// holds a count" true whenever a message waits.
func (r *pipeRing) drain() {
	atomic.StoreUint32(r.signaled, 0)
	var buf [8]byte
	unix.Read(r.eventFD, buf[:])
	if r.used() != 0 {
		// a message arrived meanwhile, its writer may have seen the flag set
		atomic.StoreUint32(r.signaled, 1)
		eventWrite(r.eventFD)
	}
}

// arm makes the writer signal the eventfd from now on.
func (r *pipeRing) arm() {
	if atomic.LoadUint32(r.wantFD) == 0 {
		atomic.StoreUint32(r.wantFD, 1)
	}
	if r.used() != 0 && atomic.CompareAndSwapUint32(r.signaled, 0, 1) {
		eventWrite(r.eventFD)
	}
}

// tryLockWriter makes the calling thread the ring's only writer until
// unlockWriter, if no live thread holds the lock: several threads or
// processes may send on copies of one end, and each message must go in
// whole. A lock whose thread is dead (liveness.go: its process died, or the
// thread is no longer one of that process's) is taken over. It reports
// whether the thread holds the lock; a waiter sleeps in C on the lock word
// and tries again.
func (r *pipeRing) tryLockWriter() bool {
	tid := uint32(unix.Gettid())
	for {
		cur := atomic.LoadUint32(r.lock)
		if cur == tid {
			// held since an earlier step of this send, or by a dead thread
			// of another process whose id this live one now has
			r.recordWriter(tid)
			return true
		}
		if cur != 0 && !r.writerDead(cur) {
			return false
		}
		if atomic.CompareAndSwapUint32(r.lock, cur, tid) {
			r.recordWriter(tid)
			return true
		}
	}
}

// recordWriter writes the record of the thread that took the lock.
func (r *pipeRing) recordWriter(tid uint32) {
	pid, start := Self()
	atomic.StoreUint64(r.writerStart, start)
	atomic.StoreUint32(r.writerPid, pid)
	atomic.StoreUint32(r.writerTid, tid)
}

// writerDead reports whether the thread cur holding the lock is dead.
func (r *pipeRing) writerDead(cur uint32) bool {
	return recordedDead(cur, r.writerTid, r.writerPid, r.writerStart)
}

// unlockWriter releases the lock if the calling thread holds it.
func (r *pipeRing) unlockWriter() {
	tid := uint32(unix.Gettid())
	if atomic.LoadUint32(r.lock) != tid {
		return
	}
	atomic.StoreUint32(r.writerTid, 0)
	if atomic.CompareAndSwapUint32(r.lock, tid, 0) {
		wakeSleepers(r.lockWaiters, r.lock)
	}
}

func eventWrite(fd int) {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	unix.Write(fd, one[:])
}

// PipeFiles are the descriptors that make up one end of a pipe; they are
// what travels to another process.
type PipeFiles struct {
	Mem    int    // the memfd segment
	Sock   int    // this end's socket of the socketpair
	Events [2]int // eventfd of ring 0 and ring 1 (-1 if there is no ring 1)
	In     int    // the ring this end reads (-1: none)
	Out    int    // the ring this end writes (-1: none)
}

// PipeEnd is one end of a pipe, opened in this process.
type PipeEnd struct {
	mu     sync.RWMutex
	closed bool
	files  PipeFiles
	seg    *Segment
	in     *pipeRing
	out    *pipeRing
	epfd   int

	open, peerOpen *uint32 // open copies of this end and of the other
}

// Reserve counts one more open copy of this end, for a copy that is being
// sent to another process (see OpenPipeEnd).
func (e *PipeEnd) Reserve() error {
	if err := e.acquire(); err != nil {
		return err
	}
	defer e.release()
	atomic.AddUint32(e.open, 1)
	return nil
}

// A PipeLayout is what code that copies small messages in and out of the
// rings itself (the C fast path) needs of an end: the control block and
// data of the ring it reads and of the one it writes (nil: none), their
// size and eventfds (-1: none), the other end's open count, the socket.
type PipeLayout struct {
	InCtl, InData, OutCtl, OutData unsafe.Pointer
	Size                           uint64
	InEvent, OutEvent              int
	PeerOpen                       *uint32
	Sock                           int
}

// Layout describes the end's mapped rings (see PipeLayout).
func (e *PipeEnd) Layout() PipeLayout {
	l := PipeLayout{Size: binary.LittleEndian.Uint64(e.seg.Mem[8:]), InEvent: -1, OutEvent: -1,
		PeerOpen: e.peerOpen, Sock: e.files.Sock}
	if r := e.in; r != nil {
		l.InCtl, l.InData, l.InEvent = r.ctl, unsafe.Pointer(&r.data[0]), r.eventFD
	}
	if r := e.out; r != nil {
		l.OutCtl, l.OutData, l.OutEvent = r.ctl, unsafe.Pointer(&r.data[0]), r.eventFD
	}
	return l
}

// NewPipe creates a pipe. With duplex both ends read and write; otherwise
// the first end only reads and the second only writes, as os.pipe.
func NewPipe(duplex bool, ringSize int) (*PipeEnd, *PipeEnd, error) {
	if ringSize <= 0 {
		ringSize = DefaultRingSize
	}
	ringSize = (ringSize + 4095) &^ 4095
	nrings := 1
	if duplex {
		nrings = 2
	}
	seg, err := NewSegment("pipe", pipeHeaderLen+nrings*ringSize)
	if err != nil {
		return nil, nil, err
	}
	binary.LittleEndian.PutUint32(seg.Mem[0:], pipeMagic)
	binary.LittleEndian.PutUint32(seg.Mem[4:], uint32(nrings))
	binary.LittleEndian.PutUint64(seg.Mem[8:], uint64(ringSize))
	*seg.Word(offOpen) = 1
	*seg.Word(offOpen + 4) = 1
	fds := []int{}
	fail := func(err error) (*PipeEnd, *PipeEnd, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		seg.Close()
		return nil, nil, err
	}
	socks, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	fds = append(fds, socks[0], socks[1])
	events := [2]int{-1, -1}
	for i := 0; i < nrings; i++ {
		ev, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return fail(err)
		}
		fds = append(fds, ev)
		events[i] = ev
	}
	// the second end gets its own descriptors, so that each end owns and
	// closes what it holds
	memB, err := unix.FcntlInt(uintptr(seg.FD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	fds = append(fds, memB)
	eventsB := [2]int{-1, -1}
	for i := 0; i < nrings; i++ {
		ev, err := unix.FcntlInt(uintptr(events[i]), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		fds = append(fds, ev)
		eventsB[i] = ev
	}
	fa := PipeFiles{Mem: seg.FD, Sock: socks[0], Events: events, In: 0, Out: 1}
	fb := PipeFiles{Mem: memB, Sock: socks[1], Events: eventsB, In: 1, Out: 0}
	if !duplex {
		fa.Out, fb.In = -1, -1
		fa.In, fb.Out = 0, 0
	}
	a := openEnd(seg, fa)
	segB, err := mapFD(memB, len(seg.Mem))
	if err != nil {
		a.files.Mem = -1
		return fail(err)
	}
	b := openEnd(segB, fb)
	return a, b, nil
}

// OpenPipeEnd opens an end from descriptors received from another process;
// the end owns them from now on (also when it fails). The copy was counted
// open by Reserve when it was pickled.
func OpenPipeEnd(f PipeFiles) (*PipeEnd, error) {
	closeAll := func() {
		for _, fd := range []int{f.Mem, f.Sock, f.Events[0], f.Events[1]} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	seg, err := MapSegment(f.Mem)
	if err != nil {
		closeAll()
		return nil, err
	}
	bad := len(seg.Mem) < 16 || binary.LittleEndian.Uint32(seg.Mem[0:]) != pipeMagic
	if !bad {
		nrings := int(binary.LittleEndian.Uint32(seg.Mem[4:]))
		size := binary.LittleEndian.Uint64(seg.Mem[8:])
		bad = nrings < 1 || nrings > 2 || uint64(len(seg.Mem)) != pipeHeaderLen+uint64(nrings)*size ||
			f.In >= nrings || f.Out >= nrings || (f.In >= 0 && f.Events[f.In] < 0) ||
			(f.Out >= 0 && f.Events[f.Out] < 0)
	}
	if bad {
		seg.Close()
		f.Mem = -1
		closeAll()
		return nil, unix.EINVAL
	}
	return openEnd(seg, f), nil
}

func openEnd(seg *Segment, f PipeFiles) *PipeEnd {
	size := binary.LittleEndian.Uint64(seg.Mem[8:])
	side := f.In
	if side < 0 {
		side = 1 // the write end of a one-way pipe
	}
	e := &PipeEnd{files: f, seg: seg, epfd: -1,
		open: seg.Word(offOpen + 4*side), peerOpen: seg.Word(offOpen + 4*(1-side))}
	if f.In >= 0 {
		e.in = newPipeRing(seg, f.In, size, f.Events[f.In])
	}
	if f.Out >= 0 {
		e.out = newPipeRing(seg, f.Out, size, f.Events[f.Out])
	}
	return e
}

// Files returns the end's descriptors (still owned by the end), to be
// duplicated for another process.
func (e *PipeEnd) Files() PipeFiles { return e.files }

// acquire holds the end open for an operation.
func (e *PipeEnd) acquire() error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return unix.EBADF
	}
	return nil
}

func (e *PipeEnd) release() { e.mu.RUnlock() }

// useRing holds the end open, as acquire, for an operation on its outgoing
// ring (out) or its incoming one; EBADF when the end has no such ring.
func (e *PipeEnd) useRing(out bool) (*pipeRing, error) {
	if err := e.acquire(); err != nil {
		return nil, err
	}
	r := e.in
	if out {
		r = e.out
	}
	if r == nil {
		e.release()
		return nil, unix.EBADF
	}
	return r, nil
}

// peerAlive reports ErrPeerClosed once the other end's socket hung up.
func (e *PipeEnd) peerAlive() error {
	fds := []unix.PollFd{{Fd: int32(e.files.Sock), Events: unix.POLLIN | unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR) != 0 {
			return ErrPeerClosed
		}
		return nil
	}
}

// SendStep writes msg (preceded by its header) from offset *progress of the
// framed message, as far as the ring has room, without waiting. It reports
// whether the whole message is written; when not, the caller waits for the
// writer lock (*progress still 0) or for room, and calls again. A send
// starts with *progress 0: the thread takes the ring's writer lock (held
// until the message is whole, or SendAbort), and fds are sent on the socket
// and announced in the header; *progress is -1 while the header is still
// to be written. The lock belongs to the OS thread: every step of one send
// must run on the same thread (as a C caller's do; a goroutine calls
// runtime.LockOSThread). A reader that is gone is EPIPE.
func (e *PipeEnd) SendStep(msg []byte, fds []int, progress *int) (bool, error) {
	r, err := e.useRing(true)
	if err != nil {
		return false, err
	}
	defer e.release()
	if uint64(len(msg)) > PipeMaxMsgLen || len(fds) > 255 {
		return false, unix.EMSGSIZE
	}
	total := PipeMsgHeader + len(msg)
	if *progress == 0 {
		if !r.tryLockWriter() {
			return false, nil
		}
		// a send to a closed peer fails at once, as a write to a pipe does
		if atomic.LoadUint32(e.peerOpen) == 0 || e.peerAlive() != nil {
			r.unlockWriter()
			return false, unix.EPIPE
		}
		if len(fds) > 0 {
			rights := unix.UnixRights(fds...)
			if err := unix.Sendmsg(e.files.Sock, []byte{0}, rights, nil, 0); err != nil {
				r.unlockWriter()
				return false, err
			}
		}
		// -1: the lock is held (and the descriptors sent), the header is
		// still to be written
		*progress = -1
	}
	for {
		headerDue := *progress < 0
		written := *progress
		if headerDue {
			written = 0
		}
		tail := atomic.LoadUint64(r.tail)
		free := r.size - (tail - atomic.LoadUint64(r.head))
		if headerDue && free < PipeMsgHeader || free == 0 {
			if e.peerAlive() != nil {
				r.unlockWriter()
				return false, unix.EPIPE
			}
			return false, nil
		}
		n := uint64(total - written)
		if n > free {
			n = free
		}
		pos := tail
		done := uint64(0)
		if headerDue {
			var hdr [PipeMsgHeader]byte
			binary.LittleEndian.PutUint64(hdr[:], uint64(len(msg))|uint64(len(fds))<<PipeFDsShift)
			r.put(pos, hdr[:])
			pos += PipeMsgHeader
			done = PipeMsgHeader
		}
		body := msg[written+int(done)-PipeMsgHeader:]
		r.put(pos, body[:n-done])
		r.publish(tail + n)
		*progress = written + int(n)
		if *progress == total {
			r.unlockWriter()
			return true, nil
		}
	}
}

// SendAbort gives up a send that SendStep did not finish (interrupted):
// the calling thread releases the ring, leaving the message cut short.
func (e *PipeEnd) SendAbort() {
	if e.acquire() != nil {
		return
	}
	defer e.release()
	if e.out != nil {
		e.out.unlockWriter()
	}
}

// RecvHeaderStep consumes the next message's header, if it is there (the
// caller waits for it). It reports whether it got one, the payload length
// and the descriptors sent with it. At end of stream it returns
// ErrPeerClosed.
func (e *PipeEnd) RecvHeaderStep() (bool, uint64, []int, error) {
	r, err := e.useRing(false)
	if err != nil {
		return false, 0, nil, err
	}
	defer e.release()
	if ok, err := e.arrived(r, PipeMsgHeader); !ok {
		return false, 0, nil, err
	}
	head := atomic.LoadUint64(r.head)
	var hdr [PipeMsgHeader]byte
	r.get(head, hdr[:])
	v := binary.LittleEndian.Uint64(hdr[:])
	r.consume(head + PipeMsgHeader)
	n, nfds := v&PipeMaxMsgLen, int(v>>PipeFDsShift)
	var fds []int
	if nfds > 0 {
		fds, err = e.recvFDs(nfds)
		if err != nil {
			return false, 0, nil, err
		}
	}
	return true, n, fds, nil
}

// arrived reports whether at least n bytes wait in r; when not, whether
// the stream ended (ErrPeerClosed: the writer is gone and left fewer).
func (e *PipeEnd) arrived(r *pipeRing, n uint64) (bool, error) {
	if r.used() >= n {
		return true, nil
	}
	if err := e.peerAlive(); err != nil {
		// what the writer published before it hung up counts
		return r.used() >= n, err
	}
	return false, nil
}

// recvFDs takes the descriptors a header announced. Its writer sent them
// before it wrote the header, so they are there already: a header that
// announces descriptors which are not (a forged one) is EBADMSG at once,
// not a wait on the socket.
func (e *PipeEnd) recvFDs(n int) ([]int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*n))
	for {
		k, oobn, _, _, err := unix.Recvmsg(e.files.Sock, buf, oob,
			unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN || err == nil && k == 0 {
			return nil, unix.EBADMSG
		}
		if err != nil {
			return nil, err
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		var fds []int
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, got...)
			}
		}
		if len(fds) != n {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, unix.EBADMSG
		}
		return fds, nil
	}
}

// RecvBodyStep copies what has arrived of the current message's payload
// into buf from offset *progress (the caller waits for more). It reports
// whether buf is full. The end of the stream, once what the writer left
// is taken, is ErrPeerClosed.
func (e *PipeEnd) RecvBodyStep(buf []byte, progress *int) (bool, error) {
	r, err := e.useRing(false)
	if err != nil {
		return false, err
	}
	defer e.release()
	for *progress < len(buf) {
		if ok, err := e.arrived(r, 1); !ok {
			return false, err
		}
		n := uint64(len(buf) - *progress)
		if avail := r.used(); n > avail {
			n = avail
		}
		head := atomic.LoadUint64(r.head)
		r.get(head, buf[*progress:*progress+int(n)])
		r.consume(head + n)
		*progress += int(n)
	}
	return true, nil
}

// DiscardStep skips what has arrived of n bytes of the current payload
// (see RecvBodyStep).
func (e *PipeEnd) DiscardStep(n int, progress *int) (bool, error) {
	var scratch [64 << 10]byte
	for *progress < n {
		k := n - *progress
		if k > len(scratch) {
			k = len(scratch)
		}
		p := 0
		done, err := e.RecvBodyStep(scratch[:k], &p)
		*progress += p
		if err != nil || !done {
			return false, err
		}
	}
	return true, nil
}

// Ready reports, without waiting, whether a receive would not block: a
// message waits, or the stream ended.
func (e *PipeEnd) Ready() (bool, error) {
	r, err := e.useRing(false)
	if err != nil {
		return false, err
	}
	defer e.release()
	ok, err := e.arrived(r, 1)
	if err == ErrPeerClosed {
		return true, nil
	}
	return ok, err
}

// Fileno returns a descriptor that is readable when a message waits or the
// other end is closed: an epoll set of the incoming ring's eventfd and the
// socket. A write-only end returns its socket.
func (e *PipeEnd) Fileno() (int, error) {
	if err := e.acquire(); err != nil {
		return -1, err
	}
	defer e.release()
	if e.in == nil {
		return e.files.Sock, nil
	}
	e.in.arm()
	if e.epfd >= 0 {
		return e.epfd, nil
	}
	e.mu.RUnlock()
	e.mu.Lock()
	defer func() { e.mu.Unlock(); e.mu.RLock() }()
	if e.closed {
		return -1, unix.EBADF
	}
	if e.epfd >= 0 {
		return e.epfd, nil
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, err
	}
	for _, fd := range []int{e.in.eventFD, e.files.Sock} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(ep)
			return -1, err
		}
	}
	e.epfd = ep
	return ep, nil
}

// Close closes this end; a peer waiting on it wakes up and sees the end of
// the stream once every copy of this end is closed.
func (e *PipeEnd) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	atomic.AddUint32(e.open, ^uint32(0))
	// hang up first, then wake the peer so that it sees the hang-up
	err := unix.Close(e.files.Sock)
	for _, r := range []*pipeRing{e.in, e.out} {
		if r != nil {
			FutexWake(low(r.tail), 1<<30)
			FutexWake(low(r.head), 1<<30)
		}
	}
	for _, fd := range []int{e.files.Events[0], e.files.Events[1], e.epfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	if cerr := e.seg.Close(); err == nil {
		err = cerr
	}
	return err
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
