package gomp

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// A Supervisor watches the exit sentinels of a pool's workers (a pidfd, or
// the status descriptor a zygote hands out: either becomes readable when
// the worker ends) and reports which worker ended the moment it does, so
// that a pool fails or re-runs that worker's tasks and starts a
// replacement instead of waiting forever for results that cannot come.
//
// It is an epoll set: a worker is watched one-shot under a small integer
// id, and Wait returns the ids whose sentinels fired. The sentinel itself
// is not read, so its owner can still collect the exit status from it.
type Supervisor struct {
	FD int
}

// NewSupervisor makes an empty watch set.
func NewSupervisor() (*Supervisor, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &Supervisor{FD: fd}, nil
}

// Watch reports id from Wait once fd becomes readable or hangs up; id must
// fit in 31 bits. A descriptor is reported once.
func (s *Supervisor) Watch(fd int, id int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLHUP | unix.EPOLLONESHOT, Fd: int32(id)}
	err := unix.EpollCtl(s.FD, unix.EPOLL_CTL_ADD, fd, &ev)
	if errors.Is(err, unix.EEXIST) {
		err = unix.EpollCtl(s.FD, unix.EPOLL_CTL_MOD, fd, &ev)
	}
	return err
}

// Unwatch forgets fd (before its owner closes it). Forgetting a descriptor
// that is not watched is not an error.
func (s *Supervisor) Unwatch(fd int) error {
	err := unix.EpollCtl(s.FD, unix.EPOLL_CTL_DEL, fd, nil)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EBADF) {
		return nil
	}
	return err
}

// Wait blocks for at most timeout (negative: forever) until a watched
// descriptor fires, and fills ids with the ids that did. It returns 0
// when the time ran out or a signal arrived, so callers that honour
// Ctrl-C wait in short slices.
func (s *Supervisor) Wait(timeout time.Duration, ids []int) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	evs := make([]unix.EpollEvent, len(ids))
	n, err := unix.EpollWait(s.FD, evs, ms)
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		ids[i] = int(evs[i].Fd)
	}
	return n, nil
}

// Close releases the watch set.
func (s *Supervisor) Close() error {
	if s.FD < 0 {
		return nil
	}
	err := unix.Close(s.FD)
	s.FD = -1
	return err
}
