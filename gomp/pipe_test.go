package gomp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// retry calls step until it is done or fails: the steps never wait (the
// C extension waits between them), so a test polls.
func retry(step func() (bool, error)) error {
	for {
		done, err := step()
		if err != nil || done {
			return err
		}
		time.Sleep(10 * time.Microsecond)
	}
}

func send(t *testing.T, e *PipeEnd, msg []byte, fds ...int) error {
	t.Helper()
	// the writer lock belongs to the thread that takes it
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := 0
	return retry(func() (bool, error) { return e.SendStep(msg, fds, &p) })
}

func recv(t *testing.T, e *PipeEnd) ([]byte, []int, error) {
	t.Helper()
	var n uint64
	var fds []int
	err := retry(func() (done bool, err error) {
		done, n, fds, err = e.RecvHeaderStep()
		return
	})
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, n)
	p := 0
	if err := retry(func() (bool, error) { return e.RecvBodyStep(buf, &p) }); err != nil {
		return nil, nil, err
	}
	return buf, fds, nil
}

func newTestPipe(t *testing.T, duplex bool, size int) (*PipeEnd, *PipeEnd) {
	t.Helper()
	a, b, err := NewPipe(duplex, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestPipeMessagesOfManySizes(t *testing.T) {
	a, b := newTestPipe(t, true, 8192)
	rng := rand.New(rand.NewSource(1))
	sizes := []int{0, 1, 7, 8, 9, 4095, 4096, 8191, 8192, 8193, 100000, 1 << 20}
	for i := 0; i < 200; i++ {
		sizes = append(sizes, rng.Intn(20000))
	}
	done := make(chan error, 1)
	go func() {
		for _, n := range sizes {
			msg := make([]byte, n)
			rng := rand.New(rand.NewSource(int64(n)))
			rng.Read(msg)
			if err := send(t, a, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for _, n := range sizes {
		got, _, err := recv(t, b)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, n)
		rand.New(rand.NewSource(int64(n))).Read(want)
		if !bytes.Equal(got, want) {
			t.Fatalf("message of %d bytes came back as %d different bytes", n, len(got))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPipeWritersDoNotInterleave(t *testing.T) {
	a, b := newTestPipe(t, true, 8192)
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// some messages are larger than the ring: they take
				// several steps, holding the lock in between
				n := 1 + (i*7919)%20000
				msg := bytes.Repeat([]byte{byte(w)}, n)
				if err := send(t, a, msg); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	counts := make([]int, writers)
	for i := 0; i < writers*each; i++ {
		got, _, err := recv(t, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || bytes.Count(got, got[:1]) != len(got) || int(got[0]) >= writers {
			t.Fatalf("message %d is a mix of writers' bytes", i)
		}
		counts[got[0]]++
	}
	wg.Wait()
	for w, c := range counts {
		if c != each {
			t.Fatalf("writer %d: %d messages arrived, want %d", w, c, each)
		}
	}
}

func TestPipeEndOfStream(t *testing.T) {
	a, b := newTestPipe(t, true, 0)
	if err := send(t, a, []byte("last")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, _, err := recv(t, b)
	if err != nil || string(got) != "last" {
		t.Fatalf("a message sent before close must arrive: %q %v", got, err)
	}
	if _, _, err := recv(t, b); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("want ErrPeerClosed once drained, got %v", err)
	}
	if err := send(t, b, []byte("x")); err != unix.EPIPE {
		t.Fatalf("want EPIPE sending to a closed end, got %v", err)
	}
	if _, _, err := recv(t, a); err != unix.EBADF {
		t.Fatalf("want EBADF on a closed end, got %v", err)
	}
}

func TestPipeSimplexDirections(t *testing.T) {
	r, w := newTestPipe(t, false, 0)
	if err := send(t, r, []byte("x")); err != unix.EBADF {
		t.Fatalf("the read end must not send: %v", err)
	}
	if _, _, err := recv(t, w); err != unix.EBADF {
		t.Fatalf("the write end must not receive: %v", err)
	}
	if err := send(t, w, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got, _, err := recv(t, r); err != nil || string(got) != "hi" {
		t.Fatalf("got %q %v", got, err)
	}
}

func readable(t *testing.T, fd int) bool {
	t.Helper()
	ok, err := WaitReadable(fd, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestPipeFilenoReadiness(t *testing.T) {
	a, b := newTestPipe(t, true, 0)
	fd := -1
	// expect checks the descriptor's readiness after what happened
	expect := func(want bool, after string) {
		t.Helper()
		if readable(t, fd) != want {
			t.Fatalf("readable: %v after %s", !want, after)
		}
	}
	take := func() {
		t.Helper()
		if _, _, err := recv(t, b); err != nil {
			t.Fatal(err)
		}
	}
	// a message sent before the descriptor was asked for counts too
	for i, early := 0, true; i < 4; i, early = i+1, false {
		if err := send(t, a, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if early {
			var err error
			if fd, err = b.Fileno(); err != nil {
				t.Fatal(err)
			}
		}
		expect(true, "a send")
		take()
		expect(false, "the message was taken")
	}
	a.Close()
	expect(true, "the peer closed")
}

func TestPipePassesDescriptors(t *testing.T) {
	a, b := newTestPipe(t, true, 0)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	if err := send(t, a, []byte("with fd"), p[1]); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[1])
	msg, fds, err := recv(t, b)
	if err != nil || string(msg) != "with fd" || len(fds) != 1 {
		t.Fatalf("got %q %v %v", msg, fds, err)
	}
	if _, err := unix.Write(fds[0], []byte("!")); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[0])
	buf := make([]byte, 4)
	if n, _ := unix.Read(p[0], buf); n != 1 || buf[0] != '!' {
		t.Fatalf("the passed descriptor is not the pipe's write end")
	}
}

func dupFiles(t *testing.T, f PipeFiles) PipeFiles {
	t.Helper()
	dup := func(fd int) int {
		if fd < 0 {
			return -1
		}
		n, err := unix.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return PipeFiles{Mem: dup(f.Mem), Sock: dup(f.Sock),
		Events: [2]int{dup(f.Events[0]), dup(f.Events[1])}, In: f.In, Out: f.Out}
}

func TestPipeReopenedEndKeepsThePeerAlive(t *testing.T) {
	a, b := newTestPipe(t, true, 0)
	// as when an end is passed to another process: a second copy
	if err := b.Reserve(); err != nil {
		t.Fatal(err)
	}
	b2, err := OpenPipeEnd(dupFiles(t, b.Files()))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := send(t, a, []byte("to the copy")); err != nil {
		t.Fatalf("one copy is still open: %v", err)
	}
	if got, _, err := recv(t, b2); err != nil || string(got) != "to the copy" {
		t.Fatalf("got %q %v", got, err)
	}
	b2.Close()
	if err := send(t, a, []byte("x")); err != unix.EPIPE {
		t.Fatalf("want EPIPE once every copy is closed, got %v", err)
	}
}

func TestOpenPipeEndRejectsOtherSegments(t *testing.T) {
	seg, err := NewSegment("not-a-pipe", 8192)
	if err != nil {
		t.Fatal(err)
	}
	fd, _ := unix.Dup(seg.FD)
	seg.Close()
	s, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	defer unix.Close(s[1])
	ev, _ := unix.Eventfd(0, 0)
	if _, err := OpenPipeEnd(PipeFiles{Mem: fd, Sock: s[0], Events: [2]int{ev, -1}, In: 0, Out: 0}); err != unix.EINVAL {
		t.Fatalf("want EINVAL, got %v", err)
	}
}

// forgeHeader writes a raw message header into the ring e writes, as any
// process that maps the segment can.
func forgeHeader(e *PipeEnd, v uint64) {
	var hdr [PipeMsgHeader]byte
	binary.LittleEndian.PutUint64(hdr[:], v)
	tail := atomic.LoadUint64(e.out.tail)
	e.out.put(tail, hdr[:])
	e.out.publish(tail + PipeMsgHeader)
}

func TestPipeHeaderAnnouncingDescriptorsNeverSentFailsAtOnce(t *testing.T) {
	r, w := newTestPipe(t, false, 8192)
	forgeHeader(w, 1<<63) // 128 descriptors, no payload
	start := time.Now()
	_, _, err := recv(t, r)
	if err != unix.EBADMSG || time.Since(start) > time.Second {
		t.Fatalf("want EBADMSG at once, got %v after %v", err, time.Since(start))
	}
	if err := send(t, w, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if got, _, err := recv(t, r); err != nil || string(got) != "after" {
		t.Fatalf("the pipe goes on: got %q, %v", got, err)
	}
}

func TestPipeMessageCutShortLeavesTheRingEmpty(t *testing.T) {
	r, w := newTestPipe(t, false, 8192)
	forgeHeader(w, 1<<40) // far more than will come
	done, size, _, err := r.RecvHeaderStep()
	if !done || size != 1<<40 || err != nil {
		t.Fatalf("header: %v %d %v", done, size, err)
	}
	go func() {
		send(t, w, make([]byte, 100))
		time.Sleep(50 * time.Millisecond)
		w.Close()
	}()
	buf := make([]byte, 1<<16)
	p := 0
	err = retry(func() (bool, error) { return r.RecvBodyStep(buf, &p) })
	if err != ErrPeerClosed || p != PipeMsgHeader+100 || r.in.used() != 0 {
		t.Fatalf("want the 108 bytes taken, then the end: %v, %d taken, %d left", err, p,
			r.in.used())
	}
}

func BenchmarkPipeRoundTrip(b *testing.B) {
	x, y, err := NewPipe(true, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	defer y.Close()
	t := &testing.T{}
	go func() {
		for {
			msg, _, err := recv(t, y)
			if err != nil {
				return
			}
			if send(t, y, msg) != nil {
				return
			}
		}
	}()
	msg := []byte("ping")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		send(t, x, msg)
		recv(t, x)
	}
}
