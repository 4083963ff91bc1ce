package gomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// The zygote is a Python process that has not loaded Go and forks children
// on request (the Go runtime does not survive fork, an interpreter that
// never started it does). This file is the parent's side of its protocol,
// spoken over a Unix stream socket:
//
//	request: u32 length, payload; SCM_RIGHTS carries the descriptors the
//	         child gets (its stdout and stderr, then any it inherits)
//	reply:   i32 pid (negative: failure), u32 flags, u32 length, message;
//	         SCM_RIGHTS carries the child's pidfd, then, if flags has
//	         replyStatusPipe, a status pipe
//
// Normally the zygote forks with CLONE_PARENT: the child is our own child,
// and we reap it through its pidfd. Where it cannot, the child is the
// zygote's, which reports the exit code on the status pipe as an i32 and
// closes it.
//
// The caller serialises requests on one socket: a reply answers the oldest
// request.
const replyStatusPipe = 1

// ZygoteChild is a child forked by the zygote.
type ZygoteChild struct {
	Pid      int
	PidFD    int // readable once the child has exited; signals cannot hit a recycled pid
	StatusFD int // -1 when the child is ours to reap; else the zygote's status pipe
}

// ZygoteStart asks the zygote behind sock to fork a child that runs payload
// and waits for its answer.
func ZygoteStart(sock int, payload []byte, fds []int) (ZygoteChild, error) {
	if err := ZygoteSend(sock, payload, fds); err != nil {
		return ZygoteChild{}, err
	}
	return ZygoteReceive(sock)
}

// ZygoteSend sends a request; ZygoteReceive reads its answer, once the
// socket is readable (a caller that must stay interruptible waits for that
// itself).
func ZygoteSend(sock int, payload []byte, fds []int) error {
	msg := make([]byte, 4+len(payload))
	binary.LittleEndian.PutUint32(msg, uint32(len(payload)))
	copy(msg[4:], payload)
	var rights []byte
	if len(fds) > 0 {
		rights = unix.UnixRights(fds...)
	}
	// the descriptors ride on the first chunk; the rest follows plainly
	n, err := sendmsgRetry(sock, msg, rights)
	if err != nil {
		return fmt.Errorf("zygote: send: %w", err)
	}
	if err := writeAll(sock, msg[n:]); err != nil {
		return fmt.Errorf("zygote: send: %w", err)
	}
	return nil
}

// ZygoteReceive reads the zygote's answer to the oldest request.
func ZygoteReceive(sock int) (ZygoteChild, error) {
	head := make([]byte, 12)
	oob := make([]byte, unix.CmsgSpace(2*4))
	got, oobn, err := recvmsgRetry(sock, head, oob)
	if err != nil {
		return ZygoteChild{}, fmt.Errorf("zygote: receive: %w", err)
	}
	if got == 0 {
		return ZygoteChild{}, errors.New("zygote: it exited")
	}
	recvd, err := parseRights(oob[:oobn])
	if err != nil {
		return ZygoteChild{}, err
	}
	if err := readFull(sock, head[got:]); err != nil {
		closeAll(recvd)
		return ZygoteChild{}, fmt.Errorf("zygote: receive: %w", err)
	}
	pid := int(int32(binary.LittleEndian.Uint32(head)))
	flags := binary.LittleEndian.Uint32(head[4:])
	text := make([]byte, binary.LittleEndian.Uint32(head[8:]))
	if err := readFull(sock, text); err != nil {
		closeAll(recvd)
		return ZygoteChild{}, fmt.Errorf("zygote: receive: %w", err)
	}
	if pid <= 0 {
		closeAll(recvd)
		return ZygoteChild{}, fmt.Errorf("zygote: %s", text)
	}
	want := 1
	if flags&replyStatusPipe != 0 {
		want = 2
	}
	if len(recvd) != want {
		closeAll(recvd)
		return ZygoteChild{}, fmt.Errorf("zygote: expected %d descriptors, got %d", want, len(recvd))
	}
	child := ZygoteChild{Pid: pid, PidFD: recvd[0], StatusFD: -1}
	if want == 2 {
		child.StatusFD = recvd[1]
	}
	return child, nil
}

func ReadStatus(statusfd int) (code int, ok bool, err error) {
	buf := make([]byte, 4)
	if err := readFull(statusfd, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, false, nil
		}
		return 0, false, err
	}
	return int(int32(binary.LittleEndian.Uint32(buf))), true, nil
}

func sendmsgRetry(fd int, p, oob []byte) (int, error) {
	for {
		n, err := unix.SendmsgN(fd, p, oob, nil, 0)
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

func recvmsgRetry(fd int, p, oob []byte) (n, oobn int, err error) {
	for {
		n, oobn, _, _, err = unix.Recvmsg(fd, p, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		return
	}
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func readFull(fd int, p []byte) error {
	read := 0
	for read < len(p) {
		n, err := unix.Read(fd, p[read:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			if read == 0 {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		}
		read += n
	}
	return nil
}
