package main

/*
#include <stddef.h>
#include <stdint.h>

// What the C fast path needs of a pipe end (see gomp.PipeLayout): the
// control block and data of the ring it reads and of the one it writes
// (NULL: none), their size and eventfds (-1: none), the other end's open
// count, the socket.
typedef struct {
	char *in_ctl, *in_data, *out_ctl, *out_data;
	uint64_t size;
	int in_ev, out_ev;
	uint32_t *peer_open;
	int sock;
} gomp_pipe_layout;
*/
import "C"

import (
	"errors"
	"sync"
	"syscall"
	"unsafe"

	"gomp.dev/gomp/gomp"
)

// Pipe ends opened in this process, by handle. Handles of closed ends are
// used again, so that they stay small (the C side indexes a table by them).
var (
	pipeEnds  sync.Map // C.int -> *gomp.PipeEnd
	pipeMu    sync.Mutex
	pipeFree  []C.int
	pipeCount C.int
)

// pipeEOF is what a receive returns at the end of the stream.
const pipeEOF = -C.int(syscall.ECONNRESET)

func pipeAdd(e *gomp.PipeEnd) C.int {
	pipeMu.Lock()
	var h C.int
	if n := len(pipeFree); n > 0 {
		h = pipeFree[n-1]
		pipeFree = pipeFree[:n-1]
	} else {
		pipeCount++
		h = pipeCount
	}
	pipeMu.Unlock()
	pipeEnds.Store(h, e)
	return h
}

func pipeGet(h C.int) *gomp.PipeEnd {
	v, ok := pipeEnds.Load(h)
	if !ok {
		return nil
	}
	return v.(*gomp.PipeEnd)
}

func pipeErr(err error) C.int {
	if errors.Is(err, gomp.ErrPeerClosed) {
		return pipeEOF
	}
	return errno(err)
}

func step(done bool, err error) C.int {
	if err != nil {
		return pipeErr(err)
	}
	if done {
		return 1
	}
	return 0
}

// GompPipeNew creates a pipe; out receives the handles of its two ends.
//
//export GompPipeNew
func GompPipeNew(duplex C.int, ringSize C.longlong, out *C.int) C.int {
	a, b, err := gomp.NewPipe(duplex != 0, int(ringSize))
	if err != nil {
		return errno(err)
	}
	res := unsafe.Slice(out, 2)
	res[0] = pipeAdd(a)
	res[1] = pipeAdd(b)
	return 0
}

// GompPipeOpen opens an end from the six values GompPipeFiles gives:
// memfd, socket, eventfd 0, eventfd 1, in ring, out ring. It owns the
// descriptors from then on. Returns a handle.
//
//export GompPipeOpen
func GompPipeOpen(files *C.int) C.int {
	f := unsafe.Slice(files, 6)
	e, err := gomp.OpenPipeEnd(gomp.PipeFiles{
		Mem: int(f[0]), Sock: int(f[1]), Events: [2]int{int(f[2]), int(f[3])},
		In: int(f[4]), Out: int(f[5]),
	})
	if err != nil {
		return errno(err)
	}
	return pipeAdd(e)
}

//export GompPipeFiles
func GompPipeFiles(h C.int, out *C.int) C.int {
	e := pipeGet(h)
	if e == nil {
		return -C.int(syscall.EBADF)
	}
	f := e.Files()
	res := unsafe.Slice(out, 6)
	res[0], res[1], res[2], res[3] = C.int(f.Mem), C.int(f.Sock), C.int(f.Events[0]), C.int(f.Events[1])
	res[4], res[5] = C.int(f.In), C.int(f.Out)
	return 0
}

//export GompPipeClose
func GompPipeClose(h C.int) C.int {
	v, ok := pipeEnds.LoadAndDelete(h)
	if !ok {
		return -C.int(syscall.EBADF)
	}
	err := v.(*gomp.PipeEnd).Close()
	pipeMu.Lock()
	pipeFree = append(pipeFree, h)
	pipeMu.Unlock()
	if err != nil {
		return errno(err)
	}
	return 0
}

// GompPipeSendStep: see gomp.PipeEnd.SendStep. Returns 1 when the message
// is written, 0 when the caller must wait (for the lock or for room).
//
//export GompPipeSendStep
func GompPipeSendStep(h C.int, buf *C.char, n C.size_t, fds *C.int, nfds C.int,
	progress *C.longlong) C.int {
	e := pipeGet(h)
	if e == nil {
		return -C.int(syscall.EBADF)
	}
	var msg []byte
	if n > 0 {
		msg = unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	}
	p := int(*progress)
	done, err := e.SendStep(msg, intSlice(fds, nfds), &p)
	*progress = C.longlong(p)
	return step(done, err)
}

// GompPipeRecvHeaderStep takes the next message's header, if it arrived:
// its length goes to outLen, its descriptors (at most 255) to outFds.
//
//export GompPipeRecvHeaderStep
func GompPipeRecvHeaderStep(h C.int, outLen *C.longlong, outFds *C.int, outNfds *C.int) C.int {
	e := pipeGet(h)
	if e == nil {
		return -C.int(syscall.EBADF)
	}
	done, n, fds, err := e.RecvHeaderStep()
	if err != nil || !done {
		return step(done, err)
	}
	*outLen = C.longlong(n)
	dst := unsafe.Slice(outFds, 255)
	for i, fd := range fds {
		dst[i] = C.int(fd)
	}
	*outNfds = C.int(len(fds))
	return 1
}

// GompPipeRecvBodyStep copies what arrived of the current payload into buf
// (n bytes) from *progress; a NULL buf discards n bytes.
//
//export GompPipeRecvBodyStep
func GompPipeRecvBodyStep(h C.int, buf *C.char, n C.size_t, progress *C.longlong) C.int {
	e := pipeGet(h)
	if e == nil {
		return -C.int(syscall.EBADF)
	}
	p := int(*progress)
	var done bool
	var err error
	if buf == nil {
		done, err = e.DiscardStep(int(n), &p)
	} else {
		dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
		done, err = e.RecvBodyStep(dst, &p)
	}
	*progress = C.longlong(p)
	return step(done, err)
}

//export GompPipeFileno
func GompPipeFileno(h C.int) C.int {
	e := pipeGet(h)
	if e == nil {
		return -C.int(syscall.EBADF)
	}
	fd, err := e.Fileno()
	if err != nil {
		return errno(err)
	}
	return C.int(fd)
}

// GompPipeReserve counts a copy of the end that is being pickled.
//
//export GompPipeReserve
func GompPipeReserve(h C.int) C.int {
	e := pipeGet(h)
	if e == nil {
		return -C.int(syscall.EBADF)
	}
	if err := e.Reserve(); err != nil {
		return errno(err)
	}
	return 0
}

// GompPipeLayout describes the end's rings to C.
//
//export GompPipeLayout
func GompPipeLayout(h C.int, out *C.gomp_pipe_layout) C.int {
	e := pipeGet(h)
	if e == nil {
		return -C.int(syscall.EBADF)
	}
	l := e.Layout()
	*out = C.gomp_pipe_layout{
		in_ctl: (*C.char)(l.InCtl), in_data: (*C.char)(l.InData),
		out_ctl: (*C.char)(l.OutCtl), out_data: (*C.char)(l.OutData),
		size: C.uint64_t(l.Size), in_ev: C.int(l.InEvent), out_ev: C.int(l.OutEvent),
		peer_open: (*C.uint32_t)(unsafe.Pointer(l.PeerOpen)), sock: C.int(l.Sock),
	}
	return 0
}

// GompPipeSendAbort releases a send that was interrupted between steps.
//
//export GompPipeSendAbort
func GompPipeSendAbort(h C.int) {
	if e := pipeGet(h); e != nil {
		e.SendAbort()
	}
}
